"""Closing napari or the dock in any state closes the session: every label is in ``labels.sqlite`` itself
(copied without its -wal and -shm files), the workers have stopped, and nothing is raised."""

from __future__ import annotations

import shutil

import pytest

from napari_anomalymatch.core.labels import LabelStore
from napari_anomalymatch.core.session import LABELS_FILE

from .conftest import label_both_classes


def labels_in_copy(session_dir, tmp_path) -> dict:
    """The labels of a copy of ``labels.sqlite`` alone, as a backup of that one file would hold them."""
    copy = tmp_path / "copy" / LABELS_FILE
    copy.parent.mkdir()
    shutil.copyfile(session_dir / LABELS_FILE, copy)
    with LabelStore(copy, read_only=True) as store:
        return store.current(include_unsure=True)


def close_napari(viewer) -> None:
    viewer.close()  # File > Close Window: the viewer first, then its window


def close_window(viewer) -> None:
    viewer.window._qt_window.close()  # the window's close button (napari's fixture then closes the viewer)


def close_dock(viewer) -> None:
    viewer.window.remove_dock_widget("all")  # each dock's close button


@pytest.fixture
def labelled(widget, controller, blobs):
    """The blob session with both classes labelled; returns its labels."""
    label_both_classes(controller, blobs[1])
    return controller.session.labels.current(include_unsure=True)


@pytest.mark.parametrize("close", [close_napari, close_window, close_dock])
def test_closing_with_the_tag_entry_open(qtbot, viewer, widget, controller, labelled, tmp_path, close):
    controller.label("s")
    controller.open_tag_entry()
    entry = controller._tag_entry
    qtbot.waitUntil(entry.hasFocus)
    qtbot.keyClicks(entry, "lens")  # typed, never entered
    expected = controller.session.labels.current(include_unsure=True)
    path = controller.session.path
    close(viewer)
    assert controller.session is None and not controller.keys.bound
    assert labels_in_copy(path, tmp_path) == expected and len(expected) == len(labelled) + 1
    viewer.close()  # at once, while Qt has not deleted a window closed by its button


def test_closing_while_a_cycle_runs(qtbot, viewer, widget, controller, labelled, tmp_path):
    path = controller.session.path
    controller.train_cycle(iterations=50)
    qtbot.waitUntil(lambda: controller.busy)
    close_napari(viewer)
    assert controller.session is None and not controller.busy
    assert labels_in_copy(path, tmp_path) == labelled
