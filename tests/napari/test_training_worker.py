"""Training and scoring in a worker: the ranking updates, the viewer keeps answering, Stop works."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer

from napari_anomalymatch.core.training import TrainProgress

from .conftest import notifications_during, press


def label_both_classes(controller, truth) -> None:
    ids = controller.session.collection.ids()
    for i in np.flatnonzero(truth)[:2]:
        controller.session.label(ids[i], "anomaly")
    for i in np.flatnonzero(~truth)[:3]:
        controller.session.label(ids[i], "normal")
    controller.refresh()


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
    assert session.cycle == 1 and session.checkpoint_path(1).exists()
    queue = controller.queue
    assert queue.scores_cycle == 1 and np.isfinite(queue.scores).all()
    ranked = queue.scores[queue.ranking]
    assert np.all(np.diff(ranked) <= 0)  # most anomalous first
    assert controller.current.index == answered[0][2]  # re-ranked, still on the image reached by the key
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
