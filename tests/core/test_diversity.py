"""The diverse review order: the top candidates spread over their embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.errors import NoEmbeddingsError
from napari_anomalymatch.core.evaluation.protocol import OracleSettings, oracle_picks
from napari_anomalymatch.core.scoring.diversity import farthest_first, round_robin
from napari_anomalymatch.core.scoring.orders import rank

N, CLUSTERS, DIM = 600, 6, 32


def _clustered(seed: int = 0):
    """600 images in 6 tight clusters; cluster 0 holds the 100 highest scores."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(CLUSTERS), N // CLUSTERS)
    centres = rng.normal(size=(CLUSTERS, DIM)) * 5
    embeddings = (centres[cluster] + rng.normal(size=(N, DIM)) * 0.1).astype(np.float32)
    scores = (1.0 - cluster * 0.15 - rng.uniform(0, 0.1, N)).astype(np.float32)
    return scores, embeddings, cluster


def _lookup(embeddings):
    return lambda indices: embeddings[np.asarray(indices)]


def test_a_diverse_page_shows_every_cluster_where_the_score_page_shows_one():
    scores, embeddings, cluster = _clustered()
    candidates = np.arange(N)
    by_score = rank(scores, candidates, "score")
    diverse = rank(scores, candidates, "diverse", seed=0, embeddings_of=_lookup(embeddings))
    assert len(set(cluster[by_score[:25]])) == 1
    pooled = set(cluster[by_score[:500]].tolist())  # the lowest-scoring cluster is not in the pool
    assert len(pooled) == CLUSTERS - 1
    assert set(cluster[diverse[:len(pooled)]].tolist()) == pooled  # one of each kind first ...
    assert diverse[0] == by_score[0]  # ... the very best first of all
    for c in pooled:  # ... each the best of its kind
        assert by_score[cluster[by_score] == c][0] in diverse[:len(pooled)]
    assert sorted(diverse.tolist()) == list(range(N))
    np.testing.assert_array_equal(diverse[500:], by_score[500:])  # past the pool: score order
    again = rank(scores, candidates, "diverse", seed=0, embeddings_of=_lookup(embeddings))
    np.testing.assert_array_equal(diverse, again)


def test_unscored_images_and_images_without_an_embedding_come_after_the_spread():
    scores, embeddings, _ = _clustered()
    scores[[3, 4]] = np.nan
    embeddings[[0, 5]] = np.nan
    diverse = rank(scores, np.arange(N), "diverse", embeddings_of=_lookup(embeddings))
    assert set(diverse[-2:].tolist()) == {3, 4}
    assert {0, 5} <= set(diverse[490:500].tolist())  # the pool's end, in score order
    few = rank(scores, np.array([7, 150, 300]), "diverse", embeddings_of=_lookup(embeddings))
    assert sorted(few.tolist()) == [7, 150, 300] and few[0] == 7  # fewer than a page: each its own cluster


def test_round_robin_takes_the_best_of_each_cluster_per_round():
    labels = np.array([2, 2, 0, 1, 0, 2])
    place = np.array([1, 2, 0])  # cluster 2 first, then 0, then 1
    np.testing.assert_array_equal(round_robin(labels, place), [0, 2, 3, 1, 4, 5])


def test_clusters_are_placed_farthest_first_from_the_best():
    units = np.array([[1, 0], [0.99, 0.141], [0, 1], [-1, 0]], dtype=np.float32)  # rows in score order
    labels = np.array([0, 1, 2, 3])
    place = farthest_first(units, labels)
    assert place[0] == 0 and place[3] == 1 and place[2] == 2 and place[1] == 3  # the near twin comes last


def test_the_diverse_order_without_embeddings_says_what_to_do():
    with pytest.raises(NoEmbeddingsError, match="score the collection"):
        rank(np.ones(4, np.float32), np.arange(4), "diverse")


def test_the_diverse_oracle_labels_anomalies_of_several_kinds():
    scores, embeddings, cluster = _clustered()
    truth = cluster < 3  # three kinds of anomaly, one of them the highest-scoring
    picks, _ = oracle_picks(scores, truth, np.ones(N, bool), OracleSettings(6, 0, "diverse"), 0, _lookup(embeddings))
    assert set(cluster[picks]) == {0, 1, 2}
    by_score, _ = oracle_picks(scores, truth, np.ones(N, bool), OracleSettings(6, 0, "score"), 0)
    assert set(cluster[by_score]) == {0}
