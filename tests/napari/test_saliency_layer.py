"""The saliency layer on a shown viewer: ``x`` shows it over the candidate, it follows the review."""

from __future__ import annotations

import numpy as np

from napari_anomalymatch._napari.review_layers import CANDIDATE_LAYER, SALIENCY_LAYER
from napari_anomalymatch._napari.review_widget import keys_table
from napari_anomalymatch.core.review.saliency import saliency_maps
from napari_anomalymatch.core.review.tiles import frame_width

from .conftest import label_both_classes, notifications_during, press


def _train(qtbot, controller, truth) -> None:
    label_both_classes(controller, truth, normal=2)
    controller.train_cycle()
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)


def test_x_shows_the_map_over_the_candidate_and_it_follows(qtbot, viewer, widget, controller, blobs):
    messages = notifications_during(lambda: press(qtbot, viewer, "X"))  # no model yet
    assert len(messages) == 1 and "no model yet" in messages[0]
    assert SALIENCY_LAYER not in viewer.layers and not controller.saliency_visible

    _train(qtbot, controller, blobs[1])
    press(qtbot, viewer, "X")
    layer = viewer.layers[SALIENCY_LAYER]
    candidate = viewer.layers[CANDIDATE_LAYER]
    width = frame_width(32)
    assert candidate.data.shape[:2] == (32 + 2 * width,) * 2
    assert layer.data.shape == (32, 32)  # the candidate inside its frame
    assert tuple(layer.translate) == (width, width) and tuple(layer.scale) == (1, 1)
    assert viewer.layers.index(layer) > viewer.layers.index(candidate)  # drawn over it
    expected, = saliency_maps(controller.session, [controller.current.index])
    np.testing.assert_allclose(layer.data, expected, atol=1e-6)
    assert layer.blending == "translucent" and layer.colormap.colors[0, 3] == 0  # clear at 0

    first = layer.data.copy()
    press(qtbot, viewer, "Right")
    assert viewer.layers[SALIENCY_LAYER] is layer  # updated in place
    expected, = saliency_maps(controller.session, [controller.current.index])
    np.testing.assert_allclose(layer.data, expected, atol=1e-6)
    assert not np.array_equal(layer.data, first)

    controller.train_cycle(iterations=1, score=False)  # a new model: its map, once it is saved
    assert SALIENCY_LAYER not in viewer.layers and controller.saliency_visible
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    assert controller.session.cycle == 2
    expected, = saliency_maps(controller.session, [controller.current.index])
    np.testing.assert_allclose(viewer.layers[SALIENCY_LAYER].data, expected, atol=1e-6)

    press(qtbot, viewer, "X")
    assert SALIENCY_LAYER not in viewer.layers and not controller.saliency_visible
    press(qtbot, viewer, "Right")
    assert SALIENCY_LAYER not in viewer.layers  # stays off

    assert "<b>x</b>" in keys_table() and "saliency" in keys_table()
    button = widget.review_panel.buttons["saliency"]
    assert button.text == "Saliency (x)"
    button.clicked.emit()
    assert SALIENCY_LAYER in viewer.layers and controller.saliency_visible
    controller.close_session()
    assert SALIENCY_LAYER not in viewer.layers and not controller.saliency_visible
