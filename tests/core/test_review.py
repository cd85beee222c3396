"""Reviewing: ranked order, cursor, labels written at once, undo, refresh; export."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_anomalymatch.core.config import DataConfig, SessionConfig
from napari_anomalymatch.core.errors import ConfigError, NotTrainedError
from napari_anomalymatch.core.labels import ANOMALY, NORMAL, UNLABELED, UNSURE
from napari_anomalymatch.core.review.export import export_session
from napari_anomalymatch.core.review.queue import ReviewQueue
from napari_anomalymatch.core.scoring.store import ScoreManifest, ScoreStore
from napari_anomalymatch.core.session import Session

SCORES = np.array([0.1, 0.9, 0.5, 0.45, 0.8, 0.2, np.nan, 0.55], dtype=np.float32)


def write_scores(session: Session, scores: np.ndarray, cycle: int = 1) -> None:
    """Store scores as a finished score run of ``cycle`` (the session's own format)."""
    manifest = ScoreManifest(collection=session.collection.fingerprint(), n_images=len(scores),
                             model_hash="test", cycle=cycle, part_size=len(scores), preprocessing="test")
    store = ScoreStore(session.runs.directory(cycle), manifest)
    store.write_part(0, scores)
    store.consolidate()  # a finished run: only those are ranked
    store.mark_complete({})


@pytest.fixture
def session(tmp_path, blob_folder):
    folder, _ = blob_folder
    pngs = sorted(folder.glob("*.png"))[:8]
    with Session.create(tmp_path / "s", SessionConfig(data=DataConfig(source=str(folder / "img_00[0-7].png")))) as s:
        assert len(s.collection) == len(pngs) == 8
        yield s


def ids(session, indices):
    return [session.collection.id_of(int(i)) for i in indices]


def test_without_scores_the_order_is_the_collection_order(session):
    queue = ReviewQueue(session)
    assert len(queue) == 8 and queue.scores_cycle is None
    assert queue.current.index == 0 and np.isnan(queue.current.score)
    assert "not scored" in queue.current.describe()


def test_orders_filters_and_cursor(session):
    write_scores(session, SCORES)
    queue = ReviewQueue(session)
    assert queue.scores_cycle == 1
    assert queue.ranking.tolist() == [1, 4, 7, 2, 3, 5, 0, 6]
    first = queue.current
    assert (first.rank, first.index, first.total, first.label) == (1, 1, 8, UNLABELED)
    assert first.score == pytest.approx(0.9) and "1/8" in first.describe()
    assert queue.move(1) and queue.current.index == 4
    assert queue.move(-5) and queue.position == 0  # clipped to the first
    assert not queue.move(-1)
    assert queue.go_to(100) and queue.current.index == 6  # clipped to the last
    start, page = queue.page(3)
    assert start == 6 and page.tolist() == [0, 6]
    queue.go_to(0)
    assert queue.upcoming(2).tolist() == [4, 7]
    queue.set_order("uncertainty")
    assert queue.ranking.tolist()[:3] == [2, 3, 7] and queue.current.index == 1  # stays on image 1
    with pytest.raises(ConfigError, match="review order must be one of .* got 'best'"):
        queue.set_order("best")


def test_keyboard_labels_go_to_the_store_at_once_and_undo_walks_back(session):
    write_scores(session, SCORES)
    queue = ReviewQueue(session)
    queue.label("a")
    queue.label("n")
    queue.label("s")
    assert queue.current.index == 2  # advanced past the three labelled images
    assert session.labels.current(include_unsure=True) == dict(zip(ids(session, [1, 4, 7]),
                                                                   [ANOMALY, NORMAL, UNSURE], strict=True))
    assert queue.labels_of([1, 4, 7, 2]) == [ANOMALY, NORMAL, UNSURE, UNLABELED]
    event = queue.undo()
    assert event.image_id == ids(session, [7])[0] and event.label == UNLABELED
    assert queue.current.index == 7 and queue.current.label == UNLABELED
    assert session.labels.get(ids(session, [7])[0]) == UNLABELED
    queue.advance_on_label = False
    queue.label("anomaly")
    assert queue.current.index == 7 and queue.current.label == ANOMALY
    history = [(e.image_id, e.label, e.source) for e in session.labels.history()]
    assert [h[1] for h in history] == [ANOMALY, NORMAL, UNSURE, UNLABELED, ANOMALY]
    assert history[3][2] == "undo"


def test_refresh_applies_the_filter_and_keeps_the_cursor(session):
    write_scores(session, SCORES)
    queue = ReviewQueue(session)
    queue.label("a")
    queue.label("n")
    queue.refresh()
    assert queue.ranking.tolist() == [7, 2, 3, 5, 0, 6] and queue.current.index == 7
    queue.set_order(which="labelled")
    assert queue.ranking.tolist() == [1, 4]
    queue.set_order(which="all")
    assert len(queue) == 8
    write_scores(session, SCORES[::-1].copy(), cycle=2)
    queue.refresh()
    assert queue.scores_cycle == 2 and queue.ranking[0] == 6


def test_an_empty_list_has_no_candidate(session):
    queue = ReviewQueue(session, which="labelled")
    assert len(queue) == 0 and queue.current is None
    with pytest.raises(ConfigError, match="the review list is empty"):
        queue.label("a")


def test_export_writes_scores_and_every_label(session, tmp_path):
    with pytest.raises(NotTrainedError, match="nothing scored yet"):
        export_session(session, tmp_path / "r.csv")
    write_scores(session, SCORES)
    queue = ReviewQueue(session)
    queue.label("a")
    queue.label("s")
    path = export_session(session, tmp_path / "out" / "ranking.csv", top=3)
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ids(session, [1, 4, 7])
    assert [r["label"] for r in rows] == ["anomaly", "unsure", "unlabelled"]
    assert float(rows[0]["score"]) == pytest.approx(0.9)


def test_the_caption_is_two_short_lines_for_a_narrow_view():
    from napari_anomalymatch.core.review.queue import Candidate, shorten_middle

    long_id = "images/Bent/" + "x" * 80 + "_3_Proctor_Tab1.png"
    candidate = Candidate(position=2, total=1905, index=7, image_id=long_id, score=0.9449, label=ANOMALY)
    first, second = candidate.caption(id_characters=40).split("\n")
    assert first == "3/1905  score 0.9449  anomaly"
    assert len(second) == 40 and second.startswith("images/Bent/") and second.endswith("_3_Proctor_Tab1.png")
    assert "…" in second
    unscored = Candidate(position=0, total=8, index=0, image_id="a.png", score=float("nan"), label=UNLABELED)
    assert unscored.caption() == "1/8  not scored  unlabelled\na.png"
    assert shorten_middle("short.png", 40) == "short.png"
