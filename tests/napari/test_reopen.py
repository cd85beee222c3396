"""Reopening a session brings back everything it had; a new session starts from the defaults."""

from __future__ import annotations

import csv

import numpy as np

from napari_anomalymatch.core.io.autocrop import choose_crop
from napari_anomalymatch.core.labels import ANOMALY, NORMAL
from napari_anomalymatch.core.review.state import REVIEW_FILE

from .conftest import notifications_during, tiny_config
from .test_training_worker import label_both_classes


def write_labels(path, rows) -> None:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "label"], *rows])


def test_loss_history_test_set_and_display_come_back_on_reopen(qtbot, widget, blobs, tmp_path):
    folder, truth = blobs
    controller = widget.controller
    controller.load(tmp_path / "session", folder, config=tiny_config())
    label_both_classes(controller, truth)
    controller.train_cycle()
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    ids = controller.session.collection.ids()
    write_labels(tmp_path / "test.csv", [[ids[i], "anomaly" if truth[i] else "normal"] for i in range(16)])
    controller.load_test_set(tmp_path / "test.csv")
    widget.display_panel.gamma.value = 0.5
    widget.display_panel.stretch.value = "zscale"
    widget.display_panel.apply()
    losses = list(widget.train_panel.plot.history["loss"])
    assert len(losses) == 2 and "cycle 1" in widget.data_panel.status.value
    shown = controller.candidate_layer.data.copy()

    controller.close_session()
    assert widget.train_panel.plot.history["loss"] == []
    controller.load(tmp_path / "session")
    assert widget.train_panel.plot.history["loss"] == losses  # the loss curve, from the session folder
    assert controller.display.gamma == 0.5 and controller.display.stretch == "zscale"
    assert widget.display_panel.gamma.value == 0.5 and widget.display_panel.stretch.value == "zscale"
    assert controller.test_set is not None and "AUROC" in widget.metrics_panel.summary.value
    np.testing.assert_array_equal(controller.candidate_layer.data, shown)


def test_a_new_session_starts_from_the_defaults(qtbot, widget, blobs, tmp_path):
    folder, _ = blobs
    panel, controller = widget.data_panel, widget.controller
    panel.session_dir.line_edit.value = str(tmp_path / "first")
    panel.source.line_edit.value = str(folder)
    panel.crop.value = 0.25  # chosen for the first session
    assert notifications_during(lambda: panel.load_button.clicked.emit()) == []
    assert controller.session.config.data.normalisation.crop == 0.25
    widget.display_panel.gamma.value = 2.0
    widget.display_panel.apply()
    small = controller.viewer.layers.extent.world[1]

    panel.session_dir.line_edit.value = str(tmp_path / "second")  # the form still shows crop 0.25
    assert notifications_during(lambda: panel.load_button.clicked.emit()) == []
    chosen = choose_crop(controller.session.collection)  # the default: chosen from the images
    assert controller.session.config.data.normalisation.crop == chosen > 0.25 and panel.crop.value == chosen
    assert controller.display.gamma == 1.0 and widget.display_panel.gamma.value == 1.0
    assert not (tmp_path / "second" / REVIEW_FILE).exists()
    assert controller.candidate_layer.rgb  # a small crop is still a colour image, not a stack of planes
    (top, left), (bottom, right) = controller.viewer.layers.extent.world
    assert bottom > small[0]  # the larger crop, and the view fits it
    np.testing.assert_allclose(controller.viewer.scene.camera.center[-2:], ((top + bottom) / 2, (left + right) / 2),
                               atol=0.6)


def test_the_view_is_refitted_after_a_crop(qtbot, widget, controller):
    viewer = controller.viewer
    widget.data_panel.crop.value = 0.5  # candidate and gallery half the size
    (top, left), (bottom, right) = viewer.layers.extent.world
    centre = viewer.scene.camera.center[-2:]
    np.testing.assert_allclose(centre, ((top + bottom) / 2, (left + right) / 2), atol=0.6)  # not in a corner


def test_importing_over_given_labels_asks_reports_and_undoes_as_a_whole(
        qtbot, widget, controller, tmp_path, monkeypatch):
    from napari_anomalymatch._napari import data_widget

    ids = controller.session.collection.ids()
    controller.session.label(ids[0], "anomaly")
    controller.session.label(ids[1], "normal")
    write_labels(tmp_path / "labels.csv", [[ids[0], "normal"], [ids[1], "normal"], [ids[2], "anomaly"]])
    panel = widget.data_panel
    panel.labels_file.line_edit.value = str(tmp_path / "labels.csv")
    questions = []
    monkeypatch.setattr(data_widget, "confirm", lambda parent, title, text: questions.append(text) or False)
    panel.import_button.clicked.emit()  # declined: nothing changes
    assert "changes 2 labels; 1 of them replace labels already given" in questions[0]
    assert controller.session.labels.current() == {ids[0]: ANOMALY, ids[1]: NORMAL}

    monkeypatch.setattr(data_widget, "confirm", lambda parent, title, text: True)
    infos = notifications_during(lambda: panel.import_button.clicked.emit(), severity="info")
    assert any("2 labels imported" in m and "1 replaced" in m for m in infos), infos
    store = controller.session.labels
    assert store.current() == {ids[0]: NORMAL, ids[1]: NORMAL, ids[2]: ANOMALY}
    assert [(e.image_id, e.source) for e in store.history(ids[0])] == [(ids[0], "user"), (ids[0], "import")]
    controller.undo()  # one undo: the whole import
    assert store.current() == {ids[0]: ANOMALY, ids[1]: NORMAL}
    controller.undo()  # then the labels given by hand, one at a time
    assert store.current() == {ids[0]: ANOMALY}


def test_the_review_comes_back_where_it_was_left(qtbot, widget, controller):
    controller.set_order("random", "all")
    controller.go_to(9)
    here, path = controller.current.image_id, controller.session.path
    controller.close_session()
    controller.load(path)
    assert (controller.queue.order, controller.queue.which) == ("random", "all")
    assert controller.current.image_id == here and controller.current.position == 9
    panel = widget.review_panel
    assert panel.order.value == "random" and panel.which.value == "all" and "10 / 16" in panel.candidate.value

    controller.label("a")  # on the next image now; reopened with only the unlabelled listed
    controller.set_order("score", "unlabelled")
    controller.go_to(3)
    here = controller.current.image_id
    controller.close_session()
    controller.load(path)
    assert controller.current.image_id == here and controller.queue.which == "unlabelled"
