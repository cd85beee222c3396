"""The review keys on a real viewer change the session store exactly as expected."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.config import SessionConfig
from napari_anomalymatch.core.labels import ANOMALY, NORMAL, UNLABELED, UNSURE
from napari_anomalymatch.core.session import Session

from .conftest import press, tiny_config


def test_full_keyboard_flow(qtbot, viewer, controller):
    queue = controller.queue
    ids = controller.session.collection.ids()
    order = [ids[i] for i in queue.ranking]  # not scored yet: collection order
    assert controller.current.index == int(queue.ranking[0])

    press(qtbot, viewer, "A", "N", "S")  # three labels, each moving to the next candidate
    assert controller.current.position == 3
    store = controller.session.labels
    assert store.current(include_unsure=True) == {order[0]: ANOMALY, order[1]: NORMAL, order[2]: UNSURE}

    press(qtbot, viewer, "Right", "Right", "Left")
    assert controller.current.position == 4
    press(qtbot, viewer, "Z")  # undo 's': back to that image, label gone
    assert controller.current.position == 2 and store.get(order[2]) == UNLABELED
    press(qtbot, viewer, "Backspace")  # undo 'n'
    assert controller.current.position == 1 and store.get(order[1]) == UNLABELED
    press(qtbot, viewer, "A")
    press(qtbot, viewer, "Left", "Left", "N")  # relabel the first image
    assert store.current(include_unsure=True) == {order[0]: NORMAL, order[1]: ANOMALY}
    history = [(e.image_id, e.label, e.source) for e in store.history()]
    assert history == [
        (order[0], ANOMALY, "user"), (order[1], NORMAL, "user"), (order[2], UNSURE, "user"),
        (order[2], UNLABELED, "undo"), (order[1], UNLABELED, "undo"),
        (order[1], ANOMALY, "user"), (order[0], NORMAL, "user"),
    ]
    path = controller.session.path
    with Session.open(path) as reopened:  # on disk at once, as a second process sees it
        assert reopened.labels.current() == {order[0]: NORMAL, order[1]: ANOMALY}


def test_candidate_layer_follows_the_cursor_and_gallery_click_jumps(qtbot, viewer, controller):
    from napari_anomalymatch._napari.layers import text_overlay
    from napari_anomalymatch._napari.review_layers import CANDIDATE_LAYER, GALLERY_LAYER

    candidate = viewer.layers[CANDIDATE_LAYER]
    first = candidate.data.copy()
    assert candidate.metadata["anomalymatch"]["index"] == controller.current.index
    press(qtbot, viewer, "Right")
    assert viewer.layers[CANDIDATE_LAYER] is candidate  # updated in place
    assert not np.array_equal(candidate.data, first)
    assert candidate.metadata["anomalymatch"]["index"] == controller.current.index
    assert text_overlay(viewer).text.startswith("2/16")

    gallery = viewer.layers[GALLERY_LAYER]
    grid = controller.layers.grid
    rows, cols = grid.cell(7)
    centre = gallery.data_to_world(((rows.start + rows.stop) / 2, (cols.start + cols.stop) / 2))
    controller.click(tuple(centre))
    assert controller.current.position == 7
    controller.click((-100.0, -100.0))  # outside the gallery: nothing happens
    assert controller.current.position == 7

    press(qtbot, viewer, "G")
    assert GALLERY_LAYER not in viewer.layers
    press(qtbot, viewer, "G")
    assert GALLERY_LAYER in viewer.layers


def test_keys_are_released_when_the_session_closes(qtbot, viewer, controller):
    assert controller.keys.bound
    controller.close_session()
    assert not controller.keys.bound
    press(qtbot, viewer, "A")  # no session: nothing to label, nothing raised
    assert controller.session is None


def _controls(widget) -> dict:
    """One control of each kind in the dock, and how to read its setting."""
    return {
        "spin box": (widget.train_panel.form.iterations, lambda w: w.value),
        "combo box": (widget.review_panel.order, lambda w: w.value),
        "check box": (widget.review_panel.advance, lambda w: w.value),
        "button": (widget.review_panel.buttons["next"], lambda w: w.text),
    }


def key_on(qtbot, control, *keys: str) -> None:
    """Press keys while ``control`` has the keyboard focus (the key goes to it, not to the canvas)."""
    from qtpy.QtCore import Qt

    native = control.native
    native.setFocus()
    for key in keys:
        qtbot.keyClick(native, getattr(Qt.Key, f"Key_{key}"))


@pytest.mark.parametrize("kind", ["spin box", "combo box", "check box", "button"])
def test_every_review_key_works_whatever_control_has_focus(qtbot, viewer, widget, controller, kind):
    """Except the keys a spin box edits with (Backspace, arrows, Home ...): test_field_keys.py."""
    from napari_anomalymatch._napari.review_layers import GALLERY_LAYER

    control, setting = _controls(widget)[kind]
    before, config_before = setting(control), controller.session.config
    ids = controller.session.collection.ids()
    order = [ids[i] for i in controller.queue.ranking]
    store = controller.session.labels

    key_on(qtbot, control, "A", "N", "S")
    assert store.current(include_unsure=True) == {order[0]: ANOMALY, order[1]: NORMAL, order[2]: UNSURE}
    assert controller.current.position == 3
    key_on(qtbot, control, "Z")
    assert controller.current.position == 2 and store.get(order[2]) == UNLABELED
    if kind != "spin box":
        key_on(qtbot, control, "Right", "Right", "Left")
        assert controller.current.position == 3
        key_on(qtbot, control, "S", "Backspace")
        assert controller.current.position == 3 and store.get(order[3]) == UNLABELED
        key_on(qtbot, control, "End")
        assert controller.current.position == 15
        key_on(qtbot, control, "Home")
        assert controller.current.position == 0
        key_on(qtbot, control, "PageDown")
        assert controller.current.position == 15  # one page is 25: clipped to the last of 16
        key_on(qtbot, control, "PageUp")
        assert controller.current.position == 0
    key_on(qtbot, control, "G")
    assert GALLERY_LAYER not in viewer.layers
    key_on(qtbot, control, "G")
    assert GALLERY_LAYER in viewer.layers
    key_on(qtbot, control, "R")  # one anomaly and one normal label: a cycle starts
    assert controller.busy
    controller.stop(wait=True)

    assert setting(control) == before  # no key changed the control's setting ...
    assert controller.session.config == config_before  # ... nor the session's
    assert SessionConfig.from_toml(controller.session.path / "session.toml") == config_before


def test_a_text_field_keeps_its_keys(qtbot, viewer, widget, controller):
    box = widget.review_panel.go_to
    key_on(qtbot, box, "A", "N", "S", "Z")
    assert box.value == "ansz"
    assert controller.session.labels.history() == [] and controller.current.position == 0
    box.value = "7"
    key_on(qtbot, box, "Return")  # Enter in the go-to box jumps there
    assert controller.current.rank == 7


def test_opening_a_session_gives_the_canvas_the_keys(qtbot, viewer, widget, blobs, tmp_path):
    from qtpy.QtWidgets import QApplication

    widget.controller.load(tmp_path / "session", blobs[0], config=tiny_config())
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.waitUntil(lambda: QApplication.focusWidget() in (canvas, None))
    assert QApplication.focusWidget() is not widget.train_panel.form.iterations.native
