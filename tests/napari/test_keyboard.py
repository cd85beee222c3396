"""The review keys on a real viewer change the session store exactly as expected."""

from __future__ import annotations

import numpy as np

from napari_anomalymatch.core.labels import ANOMALY, NORMAL, UNLABELED, UNSURE
from napari_anomalymatch.core.session import Session

from .conftest import press


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
