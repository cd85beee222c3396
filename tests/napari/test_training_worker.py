"""Training and scoring in a worker: the ranking updates, the viewer keeps answering, Stop works."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer

from napari_anomalymatch.core.learning.training import TrainProgress

from .conftest import label_both_classes, notifications_during, press


def test_a_cycle_in_a_worker_updates_the_ranking_while_the_viewer_answers_keys(
        qtbot, viewer, widget, controller, blobs):
    label_both_classes(controller, blobs[1])
    assert controller.queue.scores_cycle is None and len(controller.queue) == 11
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(controller.busy))
    timer.start(5)
    answered = []

    def on_progress(event):
        if isinstance(event, TrainProgress) and event.iteration == 1:
            press(qtbot, viewer, "Right")  # a key press handled while the worker trains
            answered.append((controller.busy, controller.current.position, controller.current.index))

    controller.progress.connect(on_progress)
    widget.train_panel.train_button.clicked.emit()  # the Train button's slot
    assert controller.busy and not widget.train_panel.train_button.enabled
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    timer.stop()

    assert [a[:2] for a in answered] == [(True, 1)]
    assert sum(ticks) >= 3  # the event loop kept running while the worker was busy
    session = controller.session
    assert session.cycle == 1 and session.model.checkpoint_path(1).exists()
    queue = controller.queue
    assert queue.scores_cycle == 1 and np.isfinite(queue.scores).all()
    ranked = queue.scores[queue.ranking]
    assert np.all(np.diff(ranked) <= 0)  # most anomalous first
    assert controller.current.index == int(queue.ranking[0])  # re-ranked: back to the new top
    plot = widget.train_panel.plot
    assert len(plot.history["loss"]) == 2 and plot.loss_axes.get_xlim() == (0.5, 2.5)
    assert list(plot.lines["mask_ratio"].get_xdata()) == [1, 2]
    assert widget.train_panel.train_button.enabled


def test_stop_takes_effect_within_an_iteration_and_keeps_a_usable_model(qtbot, widget, controller, blobs):
    label_both_classes(controller, blobs[1])
    seen = []

    def stop_after_first(event):
        if isinstance(event, TrainProgress):
            seen.append(event.iteration)
            controller.stop()

    controller.progress.connect(stop_after_first)
    controller.train_cycle(iterations=50)
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    # the request arrives during iteration 1 or 2 (the worker runs on meanwhile); no more runs after
    assert seen in ([1], [1, 2])
    session = controller.session
    assert session.cycle == 1 and session.trainer.iterations_done == len(seen)
    assert controller.queue.scores_cycle is None  # stopped before scoring
    controller.progress.disconnect(stop_after_first)
    controller.score()
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    assert controller.queue.scores_cycle == 1  # the stopped model scores


def test_training_without_both_classes_is_a_notification(qtbot, widget, controller):
    messages = notifications_during(lambda: widget.train_panel.train_button.clicked.emit())
    assert len(messages) == 1 and "at least one anomaly and one normal" in messages[0]
    assert not controller.busy


def test_after_a_cycle_the_review_starts_at_rank_1_and_long_rankings_are_navigable(
        qtbot, viewer, widget, tmp_path):
    from ..conftest import blob_images, write_pngs
    from .conftest import tiny_config

    images, truth = blob_images(300, anomaly_every=10)
    write_pngs(tmp_path / "many", images)
    controller = widget.controller
    controller.load(tmp_path / "session", tmp_path / "many", config=tiny_config())
    label_both_classes(controller, truth)
    controller.go_to(26)  # somewhere down the list, as after reviewing a while
    controller.train_cycle()
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    queue = controller.queue
    assert queue.scores_cycle == 1
    assert controller.current.rank == 1 and controller.current.index == int(queue.ranking[0])
    from napari_anomalymatch._napari.layers import text_overlay

    assert text_overlay(viewer).text.startswith("1/295")
    press(qtbot, viewer, "End")
    assert controller.current.rank == 295
    press(qtbot, viewer, "Home", "PageDown")
    assert controller.current.rank == 26  # one gallery page (25) on
    press(qtbot, viewer, "PageDown", "PageUp")
    assert controller.current.rank == 26

    panel = widget.review_panel
    panel.go_to.value = "250"
    panel.go_button.clicked.emit()
    assert controller.current.rank == 250
    wanted = controller.session.collection.id_of(int(queue.ranking[100]))
    panel.go_to.value = wanted
    panel.go_button.clicked.emit()
    assert controller.current.rank == 101
    messages = notifications_during(lambda: controller_find(panel, "9999"))
    assert len(messages) == 1 and "rank 9999 is outside the review list (1 to 295)" in messages[0]

    panel.keep_place.value = True  # asked for: the next scores keep the current image
    controller.score()
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    assert controller.current.image_id == wanted


def controller_find(panel, text: str) -> None:
    panel.go_to.value = text
    panel.go_button.clicked.emit()
