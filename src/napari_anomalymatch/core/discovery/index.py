"""An approximate cosine index over stored embeddings (faiss, IVF lists of fp16 vectors).

Chosen by measurement (``benchmarks/similarity.py``): on 10^6 1280-d embeddings it answered a
query in 61 ms at recall@100 1.0 on 2 busy cores, built in 254 s, where an HNSW graph (usearch)
had added 4 % of the vectors in that time.  faiss is an optional
extra (``pip install napari-anomalymatch[similarity]``); without it search is exact.
The index is built once per score run and saved beside the run's embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import CorruptFileError, MissingDependencyError
from ..scoring.diversity import unit_rows
from .similarity import CHUNK_ROWS, combined_query

TRAIN_PER_LIST = 40  # training vectors per inverted list: enough for k-means to settle
NPROBE = 32  # lists searched per query; recall@100 >= 0.95 on clustered 10^6 (benchmarks/similarity.py)


def faiss_module():
    """faiss, or a clear error naming the extra that installs it."""
    try:
        import faiss
    except ImportError as err:
        raise MissingDependencyError("the approximate similarity index needs faiss: "
                                     "pip install napari-anomalymatch[similarity]") from err
    return faiss


def faiss_available() -> bool:
    try:
        faiss_module()
    except MissingDependencyError:
        return False
    return True


class SimilarityIndex:
    """A faiss IVF index of unit embeddings; ids are collection indices."""

    def __init__(self, index, nprobe: int = NPROBE) -> None:
        self.index = index
        self.nprobe = nprobe
        self.index.nprobe = nprobe

    @property
    def nlist(self) -> int:
        return int(self.index.nlist)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities of the ``top`` nearest images, most similar first."""
        query = combined_query(queries)[None]
        sims, ids = self.index.search(query, top)
        found = ids[0] >= 0
        return ids[0][found].astype(np.int64), sims[0][found].astype(np.float32)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            faiss_module().write_index(self.index, str(tmp))

    @classmethod
    def load(cls, path: Path) -> SimilarityIndex:
        faiss = faiss_module()
        try:
            return cls(faiss.read_index(str(path)))
        except RuntimeError as err:
            raise CorruptFileError(f"{path}: not a readable similarity index ({err}); delete it, the "
                                   "next search builds it again") from err


def build_index(chunks: Callable[[], Iterator[np.ndarray]], n: int, dim: int) -> SimilarityIndex:
    """Build the index from the embeddings that ``chunks()`` yields in collection order (read
    twice: a sample to train the lists, then every row); NaN rows are left out."""
    faiss = faiss_module()
    nlist = max(1, min(int(np.sqrt(n)), n // TRAIN_PER_LIST))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10  # k-means settles in fewer rounds than faiss's 25 on embeddings this clustered
    index.train(_training_sample(chunks(), n, nlist * TRAIN_PER_LIST))
    for start, rows in _usable_rows(chunks()):
        index.add_with_ids(rows[1], start + rows[0])
    return SimilarityIndex(index)


def _training_sample(chunks: Iterator[np.ndarray], n: int, wanted: int) -> np.ndarray:
    """About ``wanted`` usable rows spread evenly over the collection."""
    step = max(1, n // wanted)
    return np.concatenate([rows for _, (_, rows) in _usable_rows(chunks, step)])


def _usable_rows(chunks: Iterator[np.ndarray], step: int = 1):
    """``(offset, (row numbers, unit float32 rows))`` of every ``step``-th row of each block;
    NaN rows (images that could not be embedded) dropped."""
    offset = 0
    for chunk in chunks:
        for start in range(0, len(chunk), CHUNK_ROWS):
            block = np.asarray(chunk[start:start + CHUNK_ROWS:step], dtype=np.float32)
            keep = np.flatnonzero(np.isfinite(block).all(1))
            yield offset + start, (keep.astype(np.int64) * step, unit_rows(block[keep]))
        offset += len(chunk)
