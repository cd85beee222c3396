"""The Display panel changes what is drawn (never the model's input); bad combinations are explained."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_anomalymatch.core.review.display import DisplaySettings

from .conftest import tiny_config


def candidate(controller) -> np.ndarray:
    """The candidate's pixels inside its frame."""
    data = controller.candidate_layer.data
    width = (data.shape[0] - controller.session.collection.shape[0]) // 2
    return data[width:-width, width:-width]


def test_sliders_redraw_the_candidate_but_not_the_model_input(qtbot, widget, controller):
    panel = widget.display_panel
    before = candidate(controller).copy()
    model_view = controller.session.display_image(controller.current.index)
    panel.gamma.value = 0.5
    panel.brightness.value = 0.1
    qtbot.waitUntil(lambda: controller.display.gamma == 0.5 and controller.display.brightness == 0.1)
    brighter = candidate(controller)
    assert brighter.mean() > before.mean() + 10
    np.testing.assert_array_equal(controller.session.display_image(controller.current.index), model_view)
    panel.unsharp_amount.value = 2.0
    panel.stretch.value = "zscale"
    qtbot.waitUntil(lambda: controller.display.stretch == "zscale")
    assert not np.array_equal(candidate(controller), brighter)
    panel.reset.clicked.emit()
    assert controller.display == DisplaySettings(channels=(True,))
    np.testing.assert_array_equal(candidate(controller), before)
    assert not panel.lupton.enabled  # one-channel images: no colour composite


@pytest.fixture
def bands_controller(widget, tmp_path):
    rng = np.random.default_rng(2)
    images = rng.normal(10, 1, (8, 24, 24, 3)).astype(np.float32)
    images[:, 5:9, 5:9, 0] += 40  # a red source ...
    images[:, 15:19, 15:19, 2] += 40  # ... and a blue one in every image
    with h5py.File(tmp_path / "bands.h5", "w") as handle:
        handle["images"] = images
    widget.controller.load(tmp_path / "session", tmp_path / "bands.h5", config=tiny_config())
    return widget.controller


def test_channel_switches_and_lupton_composite(qtbot, widget, bands_controller):
    controller, panel = bands_controller, widget.display_panel
    assert len(panel.channels) == 3 and panel.lupton.enabled
    panel.channels[0].value = False
    qtbot.waitUntil(lambda: controller.display.channels == (False, True, True))
    shown = candidate(controller)
    assert shown[..., 0].max() == 0 and shown[..., 2].max() > 200
    panel.channels[0].value = True
    panel.lupton.value = True
    qtbot.waitUntil(lambda: controller.display.lupton)
    composite = candidate(controller)
    red, blue = composite[7, 7], composite[17, 17]
    assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60
    panel.bands[0].value = 7  # no such band: explained in the panel, the drawing stays
    qtbot.waitUntil(lambda: "three bands" in panel.message.value)
    np.testing.assert_array_equal(candidate(controller), composite)
