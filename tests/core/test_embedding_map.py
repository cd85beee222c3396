"""The embedding map: UMAP of a score run's stored embeddings, its sample, its selections, its file."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_anomalymatch.core.discovery.embedding_map import (
    MAP_FILE,
    EmbeddingMap,
    MapProgress,
    _usable_rows,
    points_in_polygon,
)
from napari_anomalymatch.core.discovery.map_figure import map_colouring, render_map
from napari_anomalymatch.core.errors import ConfigError, NoEmbeddingsError, SessionError
from napari_anomalymatch.core.labels import ANOMALY, NORMAL, UNLABELED
from napari_anomalymatch.core.runs import run_to_end
from napari_anomalymatch.core.session import Session

from ..conftest import rare_bar_folder, tiny_config

BARS = (7, 23, 31)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """A session trained one cycle and scored, and its map (UMAP's first call compiles: done once)."""
    root = tmp_path_factory.mktemp("map")
    folder, _ = rare_bar_folder(root / "images", anomalies=BARS)
    with Session.create(root / "session", tiny_config(folder)) as s:
        ids = s.collection.ids()
        s.label(ids[7], "anomaly")
        s.label(ids[23], "anomaly")
        for i in (0, 1, 2):
            s.label(ids[i], "normal")
        list(s.train())
        with pytest.raises(NoEmbeddingsError, match="anomalymatch score"):
            run_to_end(s.compute_map())
        assert s.embedding_map() is None
        run_to_end(s.score())
        events = []
        found = run_to_end(s.compute_map(), events.append)
        yield s, found, events


def test_the_map_places_every_embedded_image_and_is_saved_with_its_run(mapped):
    session, found, events = mapped
    assert len(found) == 40 and found.xy.shape == (40, 2) and np.isfinite(found.xy).all()
    np.testing.assert_array_equal(found.indices, np.arange(40))
    assert [e.stage for e in events] == ["reading", "fitting", "saving"]
    assert events[0] == MapProgress("reading", 40, 40)
    assert found.describe() == "40 of 40 images (cycle 1)"
    saved = session.runs.directory(session.cycle) / MAP_FILE
    assert saved.is_file()
    with Session.open(session.path, read_only=True) as reopened:  # shown again, not recomputed
        again = reopened.embedding_map()
    np.testing.assert_array_equal(again.xy, found.xy)
    assert again.cycle == found.cycle and again.seconds == found.seconds


def test_the_bars_lie_together_on_the_map(mapped):
    _, found, _ = mapped
    distances = np.hypot(*(found.xy[:, None, :] - found.xy[None, :, :]).transpose(2, 0, 1))
    between_bars = distances[np.ix_(BARS, BARS)][np.triu_indices(3, 1)]
    assert between_bars.max() < np.median(distances[np.triu_indices(40, 1)])


def test_a_sample_keeps_every_labelled_image_and_says_what_is_left_out(mapped):
    session, found, _ = mapped
    small = run_to_end(session.compute_map(sample=10, seed=3))
    assert len(small) == 10 and {0, 1, 2, 7, 23} <= set(small.indices.tolist())
    assert np.all(np.diff(small.indices) > 0)
    assert small.describe() == "10 of 40 images: every labelled image and a random sample of the rest " \
                               "(30 left out); cycle 1"
    with pytest.raises(ConfigError, match="at least 5"):
        run_to_end(session.compute_map(sample=2))
    run_to_end(session.compute_map())  # the other tests read the whole map from the run's folder


def test_a_lasso_selects_the_images_inside_it_and_a_click_the_nearest():
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], dtype=float)
    u_shape = np.array([[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3]], dtype=float)
    points = np.array([[1, 1], [5, 5], [2, 3.5], [1.5, 2], [0.5, 2], [-1, 2]], dtype=float)
    np.testing.assert_array_equal(points_in_polygon(points, square), [True, False, True, True, True, False])
    np.testing.assert_array_equal(points_in_polygon(points, u_shape), [False, False, False, False, True, False])
    assert not points_in_polygon(points, square[:2]).any()  # a click, not a lasso
    found = EmbeddingMap(np.array([10, 20, 30]), np.array([[0, 0], [1, 1], [3, 3]], np.float32), 50, 50, 2, 1.0)
    np.testing.assert_array_equal(found.inside(np.array([[-0.5, -0.5], [1.5, -0.5], [1.5, 1.5], [-0.5, 1.5]])),
                                  [10, 20])
    assert found.nearest((2.8, 3.1), radius=0.5) == 30
    assert found.nearest((2.0, 2.0), radius=0.5) is None


def test_unreadable_images_are_left_off_the_map():
    embeddings = np.ones((7, 4), dtype=np.float16)
    embeddings[[2, 5]] = np.nan
    events = iter(_usable_rows(embeddings))
    with pytest.raises(StopIteration) as finished:
        while True:
            next(events)
    np.testing.assert_array_equal(finished.value.value, [0, 1, 3, 4, 6])


def test_colours_are_the_latest_scores_and_labels(mapped):
    session, found, _ = mapped
    colouring = map_colouring(session.runs, session.labels, session.collection, found, "label")
    assert colouring.labels[7] == ANOMALY and colouring.labels[0] == NORMAL and colouring.labels[5] == UNLABELED
    np.testing.assert_array_equal(colouring.scores, session.runs.scores()[1])
    with pytest.raises(ConfigError, match="coloured by one of"):
        map_colouring(session.runs, session.labels, session.collection, found, "size")


def test_the_map_renders_to_a_picture(mapped, tmp_path):
    from PIL import Image

    session, found, _ = mapped
    for by in ("score", "label"):
        colouring = map_colouring(session.runs, session.labels, session.collection, found, by)
        path = render_map(found, colouring, tmp_path / f"{by}.png", found.describe())
        picture = np.asarray(Image.open(path).convert("RGB"))
        assert picture.shape[0] > 500 and picture.shape[1] > 600
        assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50  # points, colour bar, text: not blank


def test_labelling_a_selection_is_one_step_that_one_undo_reverts(mapped):
    session, _, _ = mapped
    before = session.labels.current(include_unsure=True)
    events = session.label_indices([30, 31, 32], "anomaly")
    assert [e.image_id for e in events] == [session.collection.id_of(i) for i in (30, 31, 32)]
    session.undo()
    assert session.labels.current(include_unsure=True) == before


def test_a_damaged_map_file_names_itself_and_what_to_do(mapped, tmp_path):
    path = tmp_path / MAP_FILE
    path.write_bytes(b"not a map")
    with pytest.raises(SessionError, match=f"{MAP_FILE}.*delete the file and compute the map again"):
        EmbeddingMap.load(path)


def test_without_umap_the_error_says_what_to_install(mapped, monkeypatch):
    session, _, _ = mapped
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ConfigError, match="pip install umap-learn"):
        run_to_end(session.compute_map(sample=10))


def test_the_diverse_review_order_reads_the_stored_embeddings(mapped, tmp_path):
    from napari_anomalymatch.core.review.queue import ReviewQueue

    session, _, _ = mapped
    by_score = session.ranking("score")
    diverse = session.ranking("diverse")
    assert sorted(diverse.tolist()) == sorted(by_score.tolist()) and diverse[0] == by_score[0]
    queue = ReviewQueue(session, order="diverse")
    np.testing.assert_array_equal(queue.ranking, diverse)
    assert queue.describe_order() == "diverse, unlabelled" and not queue.diverse_fallback

    folder, _ = rare_bar_folder(tmp_path / "images")
    with Session.create(tmp_path / "fresh", tiny_config(folder)) as fresh:  # nothing scored yet
        with pytest.raises(NoEmbeddingsError, match="score the collection|anomalymatch score"):
            fresh.ranking("diverse")
        queue = ReviewQueue(fresh)
        with pytest.raises(NoEmbeddingsError, match="anomalymatch score"):
            queue.set_order("diverse")
        assert queue.order == "score"  # refused: the order is unchanged
        kept = ReviewQueue(fresh, order="diverse")  # e.g. a view that kept its order: score until embedded
        np.testing.assert_array_equal(kept.ranking, fresh.ranking("score"))
        assert kept.diverse_fallback and kept.describe_order().startswith("diverse (score until")
