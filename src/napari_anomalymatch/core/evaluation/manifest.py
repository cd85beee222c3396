"""A labelled benchmark for the protocol (``protocol.run_protocol``): its images, truth and first labels.

The manifest is a CSV/ECSV table with columns ``path,is_anomaly,initial_label`` (``initial_label``:
``anomaly``, ``normal`` or empty), or, with mosaic tiles, a catalogue of positions with ``ra``/``dec``
and the same two columns (CSV, ECSV, FITS table or Parquet), each row cut from the tiles as a mosaic
session cuts it (``core.io.mosaic``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelError
from ..io.base import ImageCollection
from ..io.catalogue import column, open_catalogue, read_table
from ..io.mosaic import open_mosaic
from ..io.skytable import read_sky_table
from ..labels import ANOMALY, NORMAL, UNLABELED, parse_label
from ..learning.progress import check_trainable


@dataclass(frozen=True)
class Benchmark:
    """A manifest's images, ground truth and initial labels (one of each per image)."""

    collection: ImageCollection
    is_anomaly: np.ndarray
    initial_labels: np.ndarray


def read_benchmark(path: str | Path, on_error: str = "raise", options: dict[str, Any] | None = None) -> Benchmark:
    """Open a benchmark manifest; with tiles in ``options`` (``mosaic``, and ``cutout_size``, ``channels``,
    ``resample`` as ``open_mosaic`` takes them) the manifest is a catalogue of positions cut from them, and a
    position in no tile is left out with its truth (a warning counts them, as for a session).

    Raises
    ------
    ConfigError
        No is_anomaly column (or, with tiles, no ra/dec), naming the columns found.
    LabelError
        A truth that is not 1/0, or initial labels without an anomaly and a normal image (of the
        positions in the tiles, with tiles).
    """
    path = Path(path)
    options = dict(options or {})
    mosaic = bool(options.get("mosaic"))
    table = read_sky_table(path) if mosaic else read_table(path)
    truth, initial = _truth(table, path), _initial_labels(table, path)
    if mosaic:
        collection: ImageCollection = open_mosaic(path, on_error=on_error, **options)
        truth, initial = truth[collection.rows], initial[collection.rows]
    else:
        collection = open_catalogue(path, on_error=on_error)
    where = f"the initial_label column of {path}" + (" (its positions in the tiles)" if mosaic else "")
    check_trainable(initial, where, "Mark some rows anomaly and some normal")
    return Benchmark(collection, truth.astype(bool), initial)


def _truth(table: Any, path: Path) -> np.ndarray:
    truth_column = column(table, ("is_anomaly", "anomaly", "truth"), path, required=True)
    truth = np.array([parse_label(v, f"{path}, row {i + 2}, is_anomaly") for i, v in
                      enumerate(truth_column)], dtype=np.int64)
    if not np.isin(truth, (NORMAL, ANOMALY)).all():
        bad = int(np.flatnonzero(~np.isin(truth, (NORMAL, ANOMALY)))[0])
        raise LabelError(f"{path}, row {bad + 2}: is_anomaly must be 1/0 (or true/false); "
                         f"got {truth_column[bad]!r}")
    return truth


def _initial_labels(table: Any, path: Path) -> np.ndarray:
    initial_column = column(table, ("initial_label",), path)
    if initial_column is None:
        return np.full(len(table), UNLABELED, dtype=np.int64)
    return np.array([parse_label(v, f"{path}, row {i + 2}, initial_label")
                     for i, v in enumerate(initial_column)], dtype=np.int64)
