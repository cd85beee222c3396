"""'More like this': the images of a session nearest some query images.

Queries are collection indices, image ids, or image files the user brings, embedded on the
fly by the network that scored the run through the same preprocessing.  The run's stored
embeddings (``scoring.store``) are searched exactly up to ``EXACT_LIMIT`` images and through an
approximate faiss index above it (``index``), built once per score run and kept in its folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DiskFullError, NoEmbeddingsError, ReadOnlyError, ShapeMismatchError, UnknownIdError
from ..io.base import ImageCollection
from ..io.registry import open_collection
from ..loading import load_images
from ..runs import run_to_end
from ..scoring.run import embedding_network
from ..scoring.runs import ScoreRunStatus, embedded_run
from ..scoring.store import ScoreStore
from ..transforms import Normaliser
from .index import SimilarityIndex, build_index, faiss_available
from .similarity import exact_search

# Above this many embeddings the approximate index answers: exact search costs about 5 ms per
# 1,000 embeddings on 2 cores (benchmarks/similarity.py), so 250 ms here and seconds at 10^6.
EXACT_LIMIT = 50_000
INDEX_FILE = "similarity.faiss"

Query = int | str | Path


class ExactSearchWarning(UserWarning):
    """A large collection is searched exactly (slowly) because faiss is not installed."""


@dataclass(frozen=True)
class SimilarImages:
    """The images nearest the queries, most similar first."""

    indices: np.ndarray
    ids: list[str]
    similarities: np.ndarray
    cycle: int
    method: str  # "exact" or "faiss"


@dataclass(frozen=True)
class SearchedSession:
    """What a search needs of a session: its folder (named in messages), collection and
    preprocessing, its model's cycle and the model itself, built only when a file is queried."""

    folder: Path
    collection: ImageCollection
    normaliser: Normaliser
    image_size: int
    cycle: int
    scoring_model: Callable[[], tuple[torch.nn.Module, Any]]  # -> (model, device)
    runs: Sequence[ScoreRunStatus]


def similar_images(session: SearchedSession, queries: Sequence[Query], top: int = 100) -> SimilarImages:
    """The ``top`` images of ``session`` most similar (cosine) to ``queries`` together, the
    query images themselves left out.

    Raises
    ------
    NoEmbeddingsError
        No complete score run stored embeddings yet.
    UnknownIdError
        A query is neither an image id of the collection nor an existing file.
    ShapeMismatchError
        A query file's images have another number of channels than the collection's.
    """
    if not queries:
        raise UnknownIdError("no query given: name an image id of the collection or an image file")
    store = embedded_run(session.runs, session.folder)
    embeddings = store.embeddings()
    vectors, own = query_embeddings(session, store, embeddings, queries)
    indices, sims, method = search(store, embeddings, vectors, top + len(own))
    keep = ~np.isin(indices, own)
    indices, sims = indices[keep][:top], sims[keep][:top]
    ids = session.collection.ids()
    return SimilarImages(indices, [ids[i] for i in indices], sims, store.manifest.cycle, method)


def query_embeddings(session: SearchedSession, store: ScoreStore, embeddings: np.ndarray,
                     queries: Sequence[Query]) -> tuple[np.ndarray, np.ndarray]:
    """The queries' embeddings ``(Q, D)`` and the collection indices among the queries."""
    rows, own = [], []
    for query in queries:
        index = _collection_index(session, query)
        if index is not None:
            own.append(index)
            found = np.asarray(embeddings[index:index + 1], dtype=np.float32)
        elif Path(query).is_file():
            found = embed_file(session, store, Path(query))
        else:
            raise UnknownIdError(f"{query!r}: neither an image id of {session.collection.source} nor an "
                                 "image file; give an id shown in the review or export, or a file's path")
        if not np.isfinite(found).all():
            raise UnknownIdError(f"{query}: no embedding (the image could not be read or scored); "
                                 "choose another query image")
        rows.append(found)
    return np.concatenate(rows), np.asarray(own, dtype=np.int64)


def _collection_index(session: SearchedSession, query: Query) -> int | None:
    n = len(session.collection)
    if isinstance(query, (int, np.integer)):
        if not 0 <= int(query) < n:
            raise UnknownIdError(f"image index {query} is outside the collection (0 to {n - 1})")
        return int(query)
    if isinstance(query, Path):
        return None
    try:
        return session.collection.index_of(str(query))
    except UnknownIdError:
        return None


def embed_file(session: SearchedSession, store: ScoreStore, path: Path) -> np.ndarray:
    """Embeddings ``(N, D)`` of every image in the file ``path``, preprocessed as the collection's
    and embedded by the model that scored ``store``'s run."""
    if store.manifest.method:
        raise NoEmbeddingsError(f"{path}: the stored embeddings are those of the ranking without labels "
                                f"({store.manifest.method}), which a file cannot be embedded like; query by "
                                "an image id of the collection, or train a cycle and score first")
    if store.manifest.cycle != session.cycle:
        raise NoEmbeddingsError(f"{session.folder}: the stored embeddings are cycle {store.manifest.cycle}'s "
                                f"and the model is cycle {session.cycle}'s; run 'anomalymatch score "
                                f"{session.folder}' so a file is embedded by the model that embedded the rest")
    images_in = open_collection(path)
    channels = session.collection.shape[2]
    if images_in.shape[2] != channels:
        raise ShapeMismatchError(f"{path}: images with {images_in.shape[2]} channels; the collection's "
                                 f"have {channels}: give an image of the same bands")
    images, valid = run_to_end(load_images(images_in, session.normaliser, session.image_size,
                                           np.arange(len(images_in)), num_workers=0))
    model, device = session.scoring_model()
    network = embedding_network(model, device)
    with torch.inference_mode():
        out = network.embed(images.to(device).float()).float().cpu().numpy()
    out[~valid] = np.nan
    return out


def search(store: ScoreStore, embeddings: np.ndarray, queries: np.ndarray, top: int,
           ) -> tuple[np.ndarray, np.ndarray, str]:
    """Exact search for a small run, the run's approximate index for a large one."""
    n = len(embeddings)
    if n > EXACT_LIMIT and faiss_available():
        indices, sims = run_index(store, embeddings).search(queries, top)
        return indices, sims, "faiss"
    if n > EXACT_LIMIT:
        warnings.warn(f"faiss is not installed, so the {n:,} embeddings are searched exactly (about "
                      f"{n / 200_000:.1f} s a query); pip install napari-anomalymatch[similarity] for "
                      "an index answering in milliseconds", ExactSearchWarning, stacklevel=3)
    chunks = [embeddings[start:start + part] for start, part in _part_starts(store)]
    indices, sims = exact_search(chunks, queries, top)
    return indices, sims, "exact"


def _part_starts(store: ScoreStore) -> list[tuple[int, int]]:
    return [(p.start, len(p)) for p in store.manifest.parts]


def run_index(store: ScoreStore, embeddings: np.ndarray) -> SimilarityIndex:
    """The run's saved index, built (and saved in its folder) the first time it is asked for."""
    path = store.directory / INDEX_FILE
    if path.exists():  # a rescore replaces the run's folder, and the index with it
        return SimilarityIndex.load(path)
    index = build_index(lambda: iter([embeddings]), len(embeddings), embeddings.shape[1])
    try:
        index.save(path)
    except (DiskFullError, ReadOnlyError) as err:  # a reader on a read-only or full disk still searches
        warnings.warn(f"{err}; the index was not saved and is built again next time", stacklevel=3)
    return index
