"""CSV/ECSV catalogues: one row per image file, with optional ids, labels and coordinates.

Columns (in any case, each also by the other names ``columns.COLUMN_NAMES`` gives): ``path`` (required;
relative paths are relative to the catalogue), ``id``, ``label`` (``anomaly``,
``normal``, ``1``, ``0`` or empty) and ``ra``/``dec`` in degrees.  Any other
column is kept and returned by ``metadata``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SourceNotFoundError
from ..labels import UNLABELED, parse_label
from .columns import COLUMN_NAMES
from .csvtable import read_text_table
from .files import FileListCollection


class CatalogueCollection(FileListCollection):
    """A ``FileListCollection`` built from a table; ``labels`` holds the table's labels."""

    labels: dict[str, int]
    table_path: Path


def read_table(path: Path) -> Any:
    """Read a CSV or ECSV file into an astropy ``Table`` (see ``csvtable``), naming the file on failure."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such catalogue file")
    return read_text_table(path)


def column(table: Any, names: tuple[str, ...], path: Path, required: bool = False) -> np.ndarray | None:
    """A column by any of its accepted names (case-insensitive), as a NumPy array."""
    lower = {name.lower(): name for name in table.colnames}
    for name in names:
        if name in lower:
            values = table[lower[name]]
            mask = np.ma.getmaskarray(values)
            if mask.any():
                return np.array(["" if m else v for v, m in zip(np.asarray(values), mask, strict=True)],
                                dtype=object)
            return np.asarray(values)
    if required:
        raise ConfigError(
            f"{path}: no column {names[0]!r} (also accepted: {list(names[1:])}); "
            f"columns found: {table.colnames}"
        )
    return None


def open_catalogue(source: str | Path, on_error: str = "raise", hdu: Any = None) -> CatalogueCollection:
    """Open a catalogue of image paths as a collection carrying its labels."""
    path = Path(source)
    table = read_table(path)
    raw_paths = column(table, COLUMN_NAMES["path"], path, required=True)
    files = [_resolve(path.parent, str(p)) for p in raw_paths]
    id_values = column(table, COLUMN_NAMES["id"], path)
    ids = [str(v) for v in id_values] if id_values is not None else None
    columns = {}
    for name in ("ra", "dec"):
        values = column(table, COLUMN_NAMES[name], path)
        if values is not None:
            columns[name] = _degrees(values, name, path)
    truth = column(table, ("is_anomaly",), path)  # a benchmark manifest's: the Metrics panel may use it
    if truth is not None:
        columns["is_anomaly"] = np.asarray(truth)
    collection = CatalogueCollection(files, root=path.parent, ids=ids, columns=columns,
                                     on_error=on_error, source=str(path),
                                     fits_options={"hdu": hdu} if hdu is not None else {})
    collection.table_path = path
    collection.labels = _labels(table, collection, path)
    return collection


def _degrees(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A coordinate column as float degrees (NaN where empty); text that is no number is named."""
    out = np.full(len(values), np.nan)
    for row, value in enumerate(values):
        text = str(value).strip()
        try:
            out[row] = float(text) if text else np.nan
        except ValueError:
            raise ConfigError(f"{path}, row {row + 2}: {name} {text!r} is not a number; "
                              "expected degrees such as 150.1") from None
    return out


def _resolve(base: Path, text: str) -> Path:
    candidate = Path(text).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def _labels(table: Any, collection: FileListCollection, path: Path) -> dict[str, int]:
    values = column(table, COLUMN_NAMES["label"], path)
    if values is None:
        return {}
    labels = {}
    for row, value in enumerate(values):
        label = parse_label(value, f"{path}, row {row + 2}")
        if label != UNLABELED:
            labels[collection.id_of(row)] = label
    return labels
