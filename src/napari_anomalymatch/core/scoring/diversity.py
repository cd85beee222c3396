"""The ``diverse`` review order: the top candidates spread over the embedding.

The ``DIVERSE_POOL`` highest-scoring candidates are clustered (k-means on their unit
embeddings, ``DIVERSE_CLUSTERS`` clusters: a gallery page) and listed round-robin: first the best
of each cluster (the top candidate's cluster first, then each time the cluster farthest from
those already listed), then the second best of each, and so on; the rest of the candidates
follow in score order.  A page thus shows the best of many
kinds of candidate instead of 25 near-copies of one, which is what an expert (or the oracle of
``anomalymatch evaluate --oracle-order diverse``) labels next.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DIVERSE_POOL = 500  # the top candidates spread over the embedding
DIVERSE_CLUSTERS = 25  # a gallery page: its first page holds the best of 25 clusters
FAR_ENOUGH = 0.9  # clusters this close to the farthest count as far; the best-scoring of them goes next


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float32 rows of unit length (zero rows stay zero)."""
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


# indices -> their embeddings (rows of NaN for images without one)
EmbeddingLookup = Callable[[np.ndarray], np.ndarray]


def diverse_order(by_score: np.ndarray, scores: np.ndarray, embeddings_of: EmbeddingLookup, seed: int = 0,
                  pool: int = DIVERSE_POOL, clusters: int = DIVERSE_CLUSTERS) -> np.ndarray:
    """``by_score`` (candidates most anomalous first) with its scored head of up to ``pool``
    reordered round-robin over ``clusters`` k-means clusters of their embeddings."""
    head = by_score[:pool]
    head = head[np.isfinite(scores[head])]
    vectors = np.asarray(embeddings_of(head), dtype=np.float32) if len(head) else np.zeros((0, 1))
    usable = np.isfinite(vectors).all(axis=1)
    units = unit_rows(vectors[usable])
    labels = cluster_labels(units, clusters, seed)
    spread = head[usable][round_robin(labels, farthest_first(units, labels))]
    return np.concatenate([spread, head[~usable], by_score[len(head):]]).astype(np.int64)


def cluster_labels(vectors: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """k-means cluster of each row (every row its own cluster when there are too few)."""
    k = min(clusters, len(vectors))
    if k <= 1 or len(vectors) <= clusters:
        return np.arange(len(vectors))
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    # One thread: at 500 rows starting threads costs more than they save, the more so while
    # training holds the cores (benchmarks/diverse_order.py).
    with threadpool_limits(1):
        return KMeans(k, n_init=3, random_state=seed).fit_predict(vectors)


def farthest_first(units: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each cluster's place in the round: the best row's cluster first, then each time the
    best-scoring of the clusters whose best row is (nearly) the farthest (cosine) from those placed
    already, so that a kind of candidate split over several clusters does not fill the start of
    the page."""
    names, best = np.unique(labels, return_index=True)  # rows are in score order: first = best
    if len(names) == 0:
        return np.zeros(0, dtype=np.int64)
    representatives = units[best]
    placed = [int(np.argmin(best))]
    nearest = 1.0 - representatives @ representatives[placed[0]]
    while len(placed) < len(names):
        nearest[placed] = -np.inf
        far = np.flatnonzero(nearest >= FAR_ENOUGH * nearest.max())
        chosen = int(far[np.argmin(best[far])])  # of the far clusters, the best-scoring
        placed.append(chosen)
        nearest = np.minimum(nearest, 1.0 - representatives @ representatives[chosen])
    place = np.empty(int(names.max()) + 1, dtype=np.int64)
    place[names[placed]] = np.arange(len(placed))
    return place


def round_robin(labels: np.ndarray, cluster_place: np.ndarray) -> np.ndarray:
    """Positions of ``labels`` (rows in score order) taken one per cluster per round, the
    clusters in the order ``cluster_place[label]``."""
    n = len(labels)
    within = np.zeros(n, dtype=np.int64)  # how many better rows of the same cluster come first
    seen: dict[int, int] = {}
    for position, label in enumerate(labels.tolist()):
        within[position] = seen.get(label, 0)
        seen[label] = within[position] + 1
    return np.lexsort((np.arange(n), cluster_place[labels], within))
