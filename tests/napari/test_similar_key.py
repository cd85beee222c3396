"""``f`` on a shown viewer: the review lists the current candidate's look-alikes, ``f`` again the ranking."""

from __future__ import annotations

import numpy as np

from napari_anomalymatch._napari.review_widget import keys_table
from napari_anomalymatch.core.labels import ANOMALY

from .conftest import label_both_classes, notifications_during, press


def test_f_orders_the_review_by_similarity_and_back(qtbot, viewer, widget, controller, blobs):
    messages = notifications_during(lambda: press(qtbot, viewer, "F"))  # nothing scored yet
    assert len(messages) == 1 and "anomalymatch score" in messages[0]
    assert controller.queue.similar_to is None

    label_both_classes(controller, blobs[1], normal=2)
    controller.train_cycle(iterations=1)  # then scores, storing the embeddings
    qtbot.waitUntil(lambda: not controller.busy, timeout=900_000)  # a shared 2-core machine is slow
    queue, session = controller.queue, controller.session
    by_score = queue.ranking.copy()
    press(qtbot, viewer, "Right")
    query = controller.current.index
    press(qtbot, viewer, "F")
    assert queue.similar_to == query and controller.current.index == query  # the query first
    assert f"look-alikes of {session.collection.id_of(query)}, unlabelled" in widget.review_panel.candidate.value
    alike = session.similar([query], top=2000)
    listed = set(by_score.tolist())  # the unlabelled ones: the filter still applies
    np.testing.assert_array_equal(queue.ranking[1:], [i for i in alike.indices if i in listed])

    press(qtbot, viewer, "A")  # labelling keys unchanged: label, then the next look-alike
    assert session.labels.get(session.collection.id_of(query)) == ANOMALY
    assert controller.current.index == queue.ranking[1]
    here = controller.current.index
    press(qtbot, viewer, "F")  # back to the score order, on the same image
    assert queue.similar_to is None and controller.current.index == here
    assert query not in queue.ranking and set(queue.ranking) == listed - {query}

    assert "<b>f</b>" in keys_table()
    assert widget.review_panel.buttons["similar"].text == "More like this (f)"


def test_the_diverse_order_is_refused_until_embeddings_are_stored(qtbot, viewer, widget, controller, blobs):
    panel = widget.review_panel
    messages = notifications_during(lambda: setattr(panel.order, "value", "diverse"))
    assert len(messages) == 1 and "anomalymatch score" in messages[0]
    assert controller.queue.order == "score" and panel.order.value == "score"  # the panel shows what is kept
    label_both_classes(controller, blobs[1], normal=2)
    controller.train_cycle(iterations=1)
    qtbot.waitUntil(lambda: not controller.busy, timeout=900_000)
    panel.order.value = "diverse"
    assert controller.queue.order == "diverse" and "(diverse, unlabelled;" in panel.candidate.value
    np.testing.assert_array_equal(controller.queue.ranking, controller.session.ranking("diverse"))
