"""The first ranking with zero labels (``Session.score_unsupervised``, ``core.scoring.novelty``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.config import DataConfig, SessionConfig
from napari_anomalymatch.core.errors import ConfigError, NoEmbeddingsError, NotTrainedError, SessionError
from napari_anomalymatch.core.runs import run_to_end
from napari_anomalymatch.core.scoring.novelty import EmbedProgress, reference_indices
from napari_anomalymatch.core.scoring.run import ScoreBatch
from napari_anomalymatch.core.session import Session

from ..conftest import TINY_TRAINING, rare_bar_folder

SMALL = SessionConfig().with_settings(image_size=32, **TINY_TRAINING)


def _session(tmp_path, name="session"):
    folder, truth = rare_bar_folder(tmp_path / "images")
    return Session.open_or_create(tmp_path / name, data=DataConfig(source=str(folder)), config=SMALL), truth


@pytest.mark.parametrize("method", ["knn", "isolation-forest"])
def test_the_odd_images_rank_first_and_the_ranking_is_stored(tmp_path, method):
    session, truth = _session(tmp_path)
    events = []
    result = run_to_end(session.score_unsupervised(method), events.append)
    assert {type(e) for e in events} == {EmbedProgress, ScoreBatch}
    assert set(result.top_indices[:3]) == set(np.flatnonzero(truth))
    session.close()
    with Session.open(tmp_path / "session", read_only=True) as again:  # read back from disk
        cycle, scores = again.runs.scores()
        assert cycle == 0 and again.cycle == 0  # a ranking, no checkpoint
        assert again.runs.ranking_method() == f"unsupervised:{method}"
        assert set(again.ranking()[:3]) == set(np.flatnonzero(truth))
        np.testing.assert_array_equal(scores, result.scores)


def test_with_no_labels_yet_more_like_this_the_map_and_the_diverse_order_work(tmp_path):
    session, truth = _session(tmp_path)
    run_to_end(session.score_unsupervised())
    bars = np.flatnonzero(truth)
    found = session.similar([int(bars[0])], top=2)  # the stored novelty features: the other bars
    assert set(found.indices.tolist()) == set(bars[1:].tolist())
    assert len(run_to_end(session.compute_map())) == len(truth)
    assert sorted(session.ranking("diverse").tolist()) == sorted(session.ranking().tolist())
    query = tmp_path / "images" / session.collection.id_of(int(bars[0]))
    with pytest.raises(NoEmbeddingsError, match="query by an image id"):
        session.similar([query])
    session.close()


def test_training_after_it_works_once_labels_exist(tmp_path):
    session, truth = _session(tmp_path)
    run_to_end(session.score_unsupervised())
    with pytest.raises(ConfigError, match="at least one anomaly"):
        run_to_end(session.train())
    top = session.ranking()[0]
    session.label_index(int(top), "anomaly")
    session.label_index(int(np.flatnonzero(~truth)[0]), "normal")
    run_to_end(session.train())
    run_to_end(session.score())
    assert session.runs.scores()[0] == 1 and session.runs.ranking_method() == ""
    with pytest.raises(SessionError, match="trained model"):
        run_to_end(session.score_unsupervised())
    session.close()


def test_bad_method_and_scoring_without_a_model_say_what_to_do(tmp_path):
    session, _ = _session(tmp_path)
    with pytest.raises(ConfigError, match="knn"):
        run_to_end(session.score_unsupervised("lof"))
    with pytest.raises(NotTrainedError, match="--unsupervised"):
        run_to_end(session.score())
    session.close()


def test_the_reference_sample_is_all_of_a_small_collection_and_a_fixed_draw_of_a_large_one():
    np.testing.assert_array_equal(reference_indices(5, seed=0, sample=8), np.arange(5))
    drawn = reference_indices(1000, seed=3, sample=100)
    assert len(np.unique(drawn)) == 100 and np.all(np.diff(drawn) > 0)
    np.testing.assert_array_equal(drawn, reference_indices(1000, seed=3, sample=100))
