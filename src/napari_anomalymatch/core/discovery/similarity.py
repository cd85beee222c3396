"""Exact cosine search over stored embeddings, one chunk at a time.

The embeddings (``float16``, ``(N, D)``, NaN rows for images that could not be embedded) are
read in their memory-mapped parts, so memory stays at one chunk however large the collection.
Several queries are searched as one: the mean of their unit vectors, the direction they share.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

from ..errors import ConfigError
from ..scoring.diversity import unit_rows

CHUNK_ROWS = 16_384  # rows converted to float32 at a time: ~84 MB at 1280 dimensions


def combined_query(queries: np.ndarray) -> np.ndarray:
    """One unit query ``(D,)`` for ``queries`` ``(Q, D)``: the mean of their unit vectors.

    Raises
    ------
    ConfigError
        No query, or queries that are not finite (an image that could not be embedded).
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if queries.size == 0 or not np.isfinite(queries).all():
        raise ConfigError("the query images have no usable embedding (empty, or all-NaN images); "
                          "choose other query images")
    mean = unit_rows(queries).mean(0)
    norm = np.linalg.norm(mean)
    if norm == 0:
        raise ConfigError("the query images cancel out (their embeddings point in opposite directions); "
                          "query them one at a time")
    return mean / norm


def exact_search(chunks: Iterable[np.ndarray], queries: np.ndarray, top: int,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``top`` rows nearest ``queries``, most similar first.

    ``chunks``: the embeddings in collection order (memory-mapped parts); rows with NaN are
    never returned; ties go to the lower index.
    """
    query = combined_query(queries)
    best_index = np.zeros(0, dtype=np.int64)
    best_sim = np.zeros(0, dtype=np.float32)
    offset = 0
    for chunk in chunks:
        for start in range(0, len(chunk), CHUNK_ROWS):
            sims = _cosines(chunk[start:start + CHUNK_ROWS], query)
            index = np.concatenate([best_index, np.arange(offset + start, offset + start + len(sims))])
            sim = np.concatenate([best_sim, sims])
            keep = _best(sim, index, top)
            best_index, best_sim = index[keep], sim[keep]
        offset += len(chunk)
    usable = np.isfinite(best_sim)
    return best_index[usable], best_sim[usable]


def _cosines(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine of each row with the unit ``query``; -inf for rows with NaN.  torch converts
    float16 to float32 with the CPU's vector instructions, many times faster than NumPy."""
    import torch

    with warnings.catch_warnings():  # a read-only memory map: it is only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        block = torch.from_numpy(np.ascontiguousarray(rows)).float()
    sims = (block @ torch.from_numpy(query)) / torch.linalg.vector_norm(block, dim=1).clamp_min(1e-30)
    sims = torch.nan_to_num(sims, nan=-torch.inf)
    return sims.numpy()


def _best(sims: np.ndarray, index: np.ndarray, top: int) -> np.ndarray:
    """Positions of the ``top`` largest ``sims`` in order; ties by lower index."""
    if len(sims) > top:
        threshold = np.partition(sims, len(sims) - top)[len(sims) - top]
        candidates = np.flatnonzero(sims >= threshold)
    else:
        candidates = np.arange(len(sims))
    order = np.lexsort((index[candidates], -sims[candidates].astype(np.float64)))
    return candidates[order][:top]
