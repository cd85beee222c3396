"""The Map panel on a shown viewer: computed after a cycle, hover, click, lasso, review and label a selection."""

from __future__ import annotations

import numpy as np

from napari_anomalymatch.core.labels import ANOMALY

from .conftest import label_both_classes, notifications_during
from .test_closing import labels_in_copy


def _to_qt(panel, xy) -> tuple[int, int]:
    """Widget coordinates (Qt, from the top left) of a point of the map (data coordinates)."""
    canvas = panel.plot.canvas
    x, y = panel.axes.transData.transform(xy)
    ratio = canvas.device_pixel_ratio
    return round(x / ratio), round((canvas.figure.bbox.height - y) / ratio)


def _mouse(qtbot, panel, action: str, xy) -> None:
    from qtpy.QtCore import QPoint, Qt

    x, y = _to_qt(panel, xy)
    canvas = panel.plot.canvas
    if action == "move":
        qtbot.mouseMove(canvas, QPoint(x, y))
    else:
        getattr(qtbot, f"mouse{action}")(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, y))


def isolated_point(xy: np.ndarray, allowed: np.ndarray) -> int:
    """The place in ``xy`` of the ``allowed`` point farthest from every other point."""
    distances = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return int(np.argmax(np.where(allowed, distances.min(axis=1), -np.inf)))


def test_the_map_links_to_the_review(qtbot, viewer, widget, controller, blobs, tmp_path):
    from qtpy.QtCore import QEvent
    from qtpy.QtWidgets import QApplication

    panel, maps = widget.map_panel, controller.embedding_map
    window = viewer.window._qt_window
    screen = window.screen().availableGeometry()
    window.setGeometry(screen)  # the pointer cannot leave Xvfb's screen: keep the canvas on it
    widget.show_panel("Map")
    assert maps.map is None and "no map yet" in panel.status.value
    messages = notifications_during(lambda: panel.compute_button.clicked.emit())  # nothing scored yet
    assert len(messages) == 1 and "anomalymatch score" in messages[0]

    label_both_classes(controller, blobs[1], normal=2)
    controller.train_cycle(iterations=1)  # scores, storing embeddings, then the map follows
    qtbot.waitUntil(lambda: not controller.busy, timeout=900_000)
    qtbot.waitUntil(lambda: maps.map is not None and not maps.busy, timeout=300_000)
    found = maps.map
    assert len(found) == 16 and panel.status.value == "16 of 16 images (cycle 1)"
    QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)  # the status line changed: lay out,
    panel.plot.canvas.draw()  # then place the axes where the pointer will find them

    # a point the review lists (a labelled one would widen it to every image), far from any other
    target = isolated_point(found.xy, np.isin(found.indices, controller.queue.ranking))
    index = int(found.indices[target])
    _mouse(qtbot, panel, "move", found.xy[target])
    assert panel.hovered.value.startswith(f"pointer: {controller.session.collection.id_of(index)}  score ")

    _mouse(qtbot, panel, "Press", found.xy[target])
    _mouse(qtbot, panel, "Release", found.xy[target])
    assert controller.current.index == index  # a click shows that candidate

    (x0, x1), (y0, y1) = panel.axes.get_xlim(), panel.axes.get_ylim()  # a lasso around the left half
    inset, middle = 0.01 * (x1 - x0), (found.xy[:, 0].min() + found.xy[:, 0].max()) / 2
    x0, x1, y0, y1 = x0 + inset, x1 - inset, y0 + inset, y1 - inset
    corners = [(x0, y0), (middle, y0), (middle, y1), (x0, y1), (x0, y0 + inset)]
    _mouse(qtbot, panel, "Press", corners[0])
    for corner in corners[1:]:
        _mouse(qtbot, panel, "move", corner)
    _mouse(qtbot, panel, "Release", corners[-1])
    chosen = found.indices[found.xy[:, 0] < middle]
    assert 0 < len(chosen) < 16
    np.testing.assert_array_equal(np.sort(maps.selected), np.sort(chosen))
    assert panel.review_button.text == f"Review these ({len(chosen)})" and panel.anomaly_button.enabled

    panel.review_button.clicked.emit()
    queue = controller.queue
    assert set(queue.ranking.tolist()) <= set(chosen.tolist()) and len(queue.ranking)
    assert controller.current.index == queue.ranking[0]
    assert f"{len(chosen)} selected on the map by score, unlabelled" in widget.review_panel.candidate.value

    session = controller.session
    before = session.labels.current(include_unsure=True)
    panel.anomaly_button.clicked.emit()
    assert all(session.labels.get(session.collection.id_of(i)) == ANOMALY for i in chosen)
    panel.undo_button.clicked.emit()  # one undo reverts the whole selection
    assert session.labels.current(include_unsure=True) == before
    panel.everything_button.clicked.emit()
    assert queue.selection is None and len(queue.ranking) > len(chosen) - 1

    path = session.path
    controller.close_session()
    controller.load(path)  # reopened: the saved map is shown, not computed again
    assert not maps.busy and maps.map is not None
    np.testing.assert_array_equal(maps.map.xy, found.xy)

    labels = controller.session.labels.current(include_unsure=True)
    maps.compute()
    assert maps.busy
    viewer.close()  # while the map is computed: the session still closes, its labels in labels.sqlite
    assert controller.session is None and not maps.busy
    assert labels_in_copy(path, tmp_path) == labels and labels
