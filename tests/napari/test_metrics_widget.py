"""The Metrics panel: AUROC/AUPRC and curves on a held-out test set, refreshed after a cycle."""

from __future__ import annotations

import csv

import numpy as np

from .conftest import notifications_during


def test_metrics_after_a_cycle(qtbot, tmp_path, widget, controller, blobs):
    folder, truth = blobs
    panel = widget.metrics_panel
    widget.show_panel("Metrics")
    ids = controller.session.collection.ids()
    test_file = tmp_path / "truth.csv"
    with open(test_file, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "is_anomaly"], *[[ids[i], int(truth[i])] for i in range(16)]])
    panel.test_file.line_edit.value = str(test_file)
    assert notifications_during(lambda: panel.load_button.clicked.emit()) == []
    assert "no scores yet" in panel.summary.value

    for i in np.flatnonzero(truth)[:2]:
        controller.session.label(ids[i], "anomaly")
    for i in np.flatnonzero(~truth)[:2]:
        controller.session.label(ids[i], "normal")
    panel.refresh_button.clicked.emit()  # labelled outside the panels: no signal, so refreshed by hand
    controller.discovery_watch.wait()  # computed in a worker: a label never waits for it
    assert "2 anomalies found in 4 images labelled; the last 4 yielded 2" in panel.discovery.value
    assert "nothing scored yet" in panel.discovery.value  # no estimate before scores
    review = widget.review_panel
    assert "not yet" in review.stop.value
    controller.train_cycle()
    qtbot.waitUntil(lambda: not controller.busy, timeout=400_000)
    controller.discovery_watch.wait()
    assert "AUROC" in panel.summary.value and "4 labelled for training left out" in panel.summary.value
    # after the cycle: the estimate (biased: the labels were chosen by class) and the suggestion
    assert "expected among the 12 unreviewed images" in panel.discovery.value and "BIASED" in panel.discovery.value
    assert review.stop.value.startswith(("<b>Consider stopping", "Worth going on"))
    axes = panel.discovery_plot.axes[0]
    assert axes.lines[0].get_ydata().tolist() == [0, 1, 2, 2, 2] and len(axes.containers) == 1  # + next 1000
    report = controller.test_report()
    assert report.n_evaluated == 12 and 0.0 <= report.metrics["auroc"] <= 1.0
    roc, pr, histogram = panel.plot.axes
    np.testing.assert_allclose(roc.lines[0].get_xdata(), report.fpr)
    np.testing.assert_allclose(pr.lines[0].get_ydata(), report.precision)
    assert sum(patch.get_height() for patch in histogram.patches) == report.n_evaluated
    # a label given in the review: the curve grows by one, the estimate drops the image
    first = controller.current
    review.buttons["anomaly"].clicked.emit()
    assert controller.discovery_watch.busy  # the estimate is made in a worker, never in the label's keystroke
    controller.discovery_watch.wait()
    assert controller.session.labels.history()[-1].review.rank == first.rank == 1
    assert axes.lines[0].get_ydata().tolist() == [0, 1, 2, 2, 2, 3]
    assert "5 images labelled" in panel.discovery.value and "11 unreviewed" in panel.discovery.value
    widget.show_panel("Review")  # hidden, the panel draws nothing on a label; shown again, it catches up
    review.buttons["normal"].clicked.emit()
    controller.discovery_watch.wait()
    assert axes.lines[0].get_ydata().tolist() == [0, 1, 2, 2, 2, 3]
    widget.show_panel("Metrics")
    assert axes.lines[0].get_ydata().tolist() == [0, 1, 2, 2, 2, 3, 3]
    assert "6 images labelled" in panel.discovery.value and "10 unreviewed" in panel.discovery.value
    panel.stop_rate.value = 1  # 1 in 1, set in the Metrics panel: the suggestion follows it
    controller.discovery_watch.wait()
    assert "below 1 in 1" in review.stop.value and controller.stop_rate == 1
    # 6 labels say little of the 10 images left, any of which may be an anomaly: going on is advised,
    # which the Review panel does not say; once every image is reviewed, it says to stop
    assert review.stop.native.isHidden()
    for _ in range(10):
        review.buttons["normal"].clicked.emit()
        controller.discovery_watch.wait()
    assert review.stop.value == "<b>every image is reviewed</b>" and not review.stop.native.isHidden()

    missing = tmp_path / "missing.csv"
    panel.test_file.line_edit.value = str(missing)
    messages = notifications_during(lambda: panel.load_button.clicked.emit())
    assert len(messages) == 1 and "missing.csv" in messages[0]


def test_the_samples_own_truth_is_the_test_set_with_no_file_to_write(qtbot, tmp_path, viewer, widget):
    from ..conftest import blob_images

    images, truth = blob_images(16, anomaly_every=4)
    viewer.add_image(images, name="blobs", metadata={"ids": [f"b{i}" for i in range(16)], "is_anomaly": truth})
    data, panel, controller = widget.data_panel, widget.metrics_panel, widget.controller
    data.session_dir.line_edit.value = str(tmp_path / "session")
    assert notifications_during(lambda: data.from_layer.clicked.emit()) == []  # as the FIRST sample's layer
    assert notifications_during(lambda: data.load_button.clicked.emit()) == []
    assert notifications_during(lambda: panel.truth_button.clicked.emit()) == []
    np.testing.assert_array_equal(controller.test_set.is_anomaly, truth)
    assert "test set: 16 images" in panel.summary.value

    controller.close_session()
    controller.load(tmp_path / "session")  # the choice is kept with the session
    np.testing.assert_array_equal(controller.test_set.is_anomaly, truth)
