"""The discovery curve from the label store's history, the session's estimate and the stop rule."""

from __future__ import annotations

import csv
import shutil
import sqlite3

import numpy as np
import pytest

from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.labels import ANOMALY, LabelStore, ReviewPlace
from napari_anomalymatch.core.review.discovery import (
    calibration_labels,
    discovery_curve,
    session_estimate,
    stop_suggestion,
)
from napari_anomalymatch.core.review.queue import ReviewQueue
from napari_anomalymatch.core.review.remaining import PLATT_BIASED, Expectation, RemainingEstimate

from .test_review import SCORES, session, write_scores  # noqa: F401  (session is a fixture)
from .test_tags import BEFORE_TAGS, LABELS_BEFORE


def test_labels_given_in_a_review_keep_their_rank_score_and_order(session):  # noqa: F811
    write_scores(session, SCORES)
    queue = ReviewQueue(session)  # score order: indices 1, 4, 7, 2, 3, 5, 0, 6
    queue.label("a")
    queue.label("n")
    queue.set_order("random")
    queue.label("n")
    session.label_index(0, "anomaly")  # outside the review: no place
    places = [e.review for e in session.labels.history()]
    assert places[:2] == [ReviewPlace(1, pytest.approx(0.9), "score"), ReviewPlace(2, pytest.approx(0.8), "score")]
    assert places[2].order == "random" and places[3] is None
    queue.set_order("score", which="all")
    queue.go_to(0)
    queue.label("n")  # re-reviewing among labelled images: not a draw by score
    assert session.labels.history()[-1].review.order == "score:which=all"


def test_the_curve_counts_each_image_once_as_it_is_labelled_now_and_writes_csv(session, tmp_path):  # noqa: F811
    ids = [session.collection.id_of(i) for i in range(8)]
    session.labels.set_many([(ids[0], "anomaly"), (ids[1], "normal")], source="import")
    session.label(ids[2], "normal")
    session.label(ids[2], "anomaly")  # corrected: found, counted once, where first labelled
    session.label(ids[3], "anomaly")
    session.undo()  # ids[3] is unlabelled again: not reviewed
    session.label(ids[4], "unsure")
    curve = discovery_curve(session.labels)
    assert curve.image_ids == [ids[0], ids[1], ids[2], ids[4]]
    assert curve.found.tolist() == [1, 1, 2, 2] and curve.reviewed.tolist() == [1, 2, 3, 4]
    assert curve.recent_yield(2) == (1, 2) and curve.sources == ["import", "import", "user", "user"]
    assert curve.describe() == "2 anomalies found in 4 images labelled; the last 4 yielded 2"
    with open(curve.write_csv(tmp_path / "curve.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["reviewed"], r["found"], r["label"]) for r in rows] == [
        ("1", "1", "anomaly"), ("2", "1", "normal"), ("3", "2", "anomaly"), ("4", "2", "unsure")]
    assert rows[0]["rank"] == "" and rows[0]["source"] == "import"


def test_an_old_store_opens_without_review_columns_and_gets_them_when_written(tmp_path):
    path = tmp_path / "labels.sqlite"
    shutil.copy(BEFORE_TAGS, path)
    with LabelStore(path, read_only=True) as store:
        curve = discovery_curve(store)
        assert set(curve.image_ids) == set(LABELS_BEFORE) and (curve.ranks == -1).all()
    with LabelStore(path) as store:
        event = store.set("img_005.png", "anomaly", review=ReviewPlace(3, 0.7, "score"))
        assert event.review == ReviewPlace(3, 0.7, "score")
        assert store.current(include_unsure=True) == {**LABELS_BEFORE, "img_005.png": ANOMALY}
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(events)")}
    assert {"rank", "score", "review_order"} <= columns


def test_labels_are_sorted_by_how_they_were_chosen(session):  # noqa: F811
    write_scores(session, SCORES)
    queue = ReviewQueue(session)
    for label in "anan":  # indices 1, 4, 7, 2 at scores 0.9, 0.8, 0.55, 0.5
        queue.label(label)
    write_scores(session, SCORES[::-1].copy(), cycle=2)  # newer scores: the labels keep the old ones
    queue.refresh()
    queue.set_order("random")
    queue.label("n")
    session.label_index(0, "normal")  # chosen some other way: scored with the current scores
    index_of = {session.collection.id_of(i): i for i in range(8)}
    labels = calibration_labels(session.labels, index_of.__getitem__, SCORES[::-1].copy())
    assert labels.reviewed_scores.tolist() == pytest.approx([0.9, 0.8, 0.55, 0.5])
    assert labels.reviewed_labels.tolist() == [1, 0, 1, 0]
    assert len(labels.audit_scores) == 1 and labels.audit_labels.tolist() == [0]
    assert labels.other_scores.tolist() == pytest.approx([SCORES[::-1][0]]) and labels.other_labels.tolist() == [0]
    estimate = session_estimate(session, horizons=(2,))
    labelled = {index_of[i] for i in session.labels.current(include_unsure=True)}
    unlabelled = [i for i in range(8) if i not in labelled and np.isfinite(SCORES[::-1][i])]
    assert len(labelled) >= 5 and estimate.total.n_images == len(unlabelled)  # a NaN score is not counted
    assert estimate.n_reviewed_labels == 4 and estimate.n_audit_labels == 1


def test_a_session_estimate_needs_scores_and_says_a_fallback_is_biased(session):  # noqa: F811
    with pytest.raises(ConfigError, match="nothing scored yet"):
        session_estimate(session)
    write_scores(session, SCORES)
    for index, label in ((1, "anomaly"), (4, "anomaly"), (0, "normal"), (5, "normal")):
        session.label_index(index, label)  # none in a review
    estimate = session_estimate(session)
    assert estimate.method == PLATT_BIASED and "BIASED" in estimate.describe()


def _estimate(expected: float, n: int = 1000, high: float | None = None) -> RemainingEstimate:
    nexts = {n: Expectation(n, expected, 0.0, expected * 2 if high is None else high)}
    return RemainingEstimate(Expectation(5000, 50.0, 30, 70), nexts, "platt:reviewed", 100, 0, 0.9, 1.0, 0.0)


def test_the_stop_suggestion_follows_the_rate_the_user_sets():
    assert stop_suggestion(_estimate(2.0)).stop is True  # at most 4 in 1000 < 1 in 200
    going = stop_suggestion(_estimate(3.0))  # expected 3, but up to 6 in 1000: not yet
    assert going.stop is False and "Worth going on" in going.text and "1 in 200" in going.text
    assert stop_suggestion(_estimate(3.0), per_images=100).stop is True
    assert "Consider stopping: the next 1000" in stop_suggestion(_estimate(0.2)).text
    # the point estimate far below the rate, the interval's top above it: the estimate may be too low
    assert stop_suggestion(_estimate(1.9, high=17.0)).stop is False
    with pytest.raises(ConfigError, match="N >= 1"):
        stop_suggestion(_estimate(1.0), per_images=0)
    with pytest.raises(ConfigError, match="next 50"):
        stop_suggestion(_estimate(1.0), horizon=50)

