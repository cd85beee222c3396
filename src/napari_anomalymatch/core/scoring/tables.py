"""The merged output of a score run: Parquet tables of every score and of the top k.

``scores.parquet`` holds one row per image in collection order (``index``,
``id``, ``shard``, ``score`` and, when the data carry them, ``ra``/``dec``
and ``path``), written part by part so memory stays at one part whatever the
collection's size.  ``top.parquet`` holds the ``k`` best images, best first
(score descending, then index).  Both are derived from the run's parts alone,
so they are the same whatever order the parts (or shards) were scored in.
pyarrow is an optional dependency (``pip install napari-anomalymatch[parquet]``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import ConfigError
from ..io.base import ImageCollection
from .store import ScoreStore

CATALOGUE = "scores.parquet"
TOP = "top.parquet"
OPTIONAL_COLUMNS = ("ra", "dec", "path")


def parquet_available() -> bool:
    """Whether pyarrow is installed (needed to write the Parquet tables)."""
    return importlib.util.find_spec("pyarrow") is not None


def write_score_tables(store: ScoreStore, collection: ImageCollection,
                       top_indices: np.ndarray) -> tuple[Path, Path]:
    """Write ``scores.parquet`` and ``top.parquet`` into the run's folder.

    Parameters
    ----------
    store
        A run whose parts are all written.
    collection
        The collection it scored (for ids, shards and coordinates).
    top_indices
        The top of the ranking, best first (``ScoreStore.top_k``).

    Returns
    -------
    The paths of the catalogue and of the top-k table.

    Raises
    ------
    ConfigError
        When pyarrow is not installed.
    """
    pa, pq = _pyarrow()
    catalogue = store.directory / CATALOGUE
    columns = _optional_columns(collection)
    schema = _schema(pa, columns)
    with atomic_path(catalogue) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for part, scores in store.iter_parts():
            indices = np.arange(part.start, part.stop, dtype=np.int64)
            rows = _rows(collection, indices, scores, columns)
            writer.write_table(pa.Table.from_pydict(rows, schema=schema))
    top = store.directory / TOP
    top_indices = np.asarray(top_indices, dtype=np.int64)
    top_scores = np.asarray(store.scores()[top_indices], dtype=np.float32) if top_indices.size else \
        np.zeros(0, dtype=np.float32)
    rows = {"rank": np.arange(1, len(top_indices) + 1, dtype=np.int64),
            **_rows(collection, top_indices, top_scores, columns)}
    top_schema = pa.schema([pa.field("rank", pa.int64()), *schema])
    with atomic_path(top) as tmp:
        pq.write_table(pa.Table.from_pydict(rows, schema=top_schema), tmp)
    return catalogue, top


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ConfigError(
            "writing the Parquet score tables needs pyarrow: pip install napari-anomalymatch[parquet]"
        ) from err
    return pa, pq


def _optional_columns(collection: ImageCollection) -> list[str]:
    """The optional columns the data carry, judged from the first image."""
    first = collection.metadata([0]) if len(collection) else {}
    return [name for name in OPTIONAL_COLUMNS if name in first]


def _schema(pa: Any, columns: list[str]) -> Any:
    fields = [pa.field("index", pa.int64()), pa.field("id", pa.string()), pa.field("shard", pa.string()),
              pa.field("score", pa.float32())]
    fields += [pa.field(name, pa.string() if name == "path" else pa.float64()) for name in columns]
    return pa.schema(fields)


def _rows(collection: ImageCollection, indices: np.ndarray, scores: np.ndarray,
          columns: list[str]) -> dict[str, Any]:
    meta = collection.metadata(indices) if indices.size else {}
    shard = meta.get("shard")
    rows: dict[str, Any] = {
        "index": indices,
        "id": collection.ids_of(indices),
        "shard": [str(s) for s in shard] if shard is not None else [collection.source] * len(indices),
        "score": np.asarray(scores, dtype=np.float32),
    }
    for name in columns:
        values = meta.get(name)
        if name == "path":
            rows[name] = [str(v) for v in values] if values is not None else [""] * len(indices)
        else:
            rows[name] = np.asarray(values, dtype=np.float64) if values is not None else \
                np.full(len(indices), np.nan)
    return rows
