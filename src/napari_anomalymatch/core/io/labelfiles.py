"""Labels into a collection's ids: reading label files (CSV/ECSV: which image, which label), the
labels a catalogue source carries, and where in the collection the labelled images are."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import LabelError, UnknownIdError
from ..labels import LABEL_NAMES, UNLABELED, LabelStore, parse_label
from .base import ImageCollection
from .catalogue import column, read_table
from .columns import COLUMN_NAMES


class UnknownIdWarning(UserWarning):
    """A label file named an image that is not in the collection; the row was skipped."""


class ConflictingLabelsWarning(UserWarning):
    """A label file gives one image different labels in different rows; the last row counts."""


LABEL_COLUMNS = COLUMN_NAMES["label"]


def read_label_file(path: Path, collection: ImageCollection, skip_unknown: bool = False,
                    label_columns: tuple[str, ...] = LABEL_COLUMNS) -> list[tuple[str, int]]:
    """``(id, label)`` pairs of a label file, every id checked against ``collection``.

    The file needs a ``label`` column (or another of ``label_columns``) and an
    ``id`` column (or ``path``, matched against the collection's file paths).
    Empty labels are ignored.

    Raises
    ------
    UnknownIdError
        Naming the file, the row and the id, unless ``skip_unknown``.
    LabelError
        For a label value that is not understood.
    """
    table = read_table(path)
    labels = column(table, label_columns, path)
    if labels is None:
        raise LabelError(f"{path}: no label column (one of {list(label_columns)}); "
                         f"columns found: {table.colnames}")
    ids = column(table, COLUMN_NAMES["id"], path)
    by_path = None
    if ids is None:
        paths = column(table, COLUMN_NAMES["path"], path, required=True)
        by_path = _path_lookup(collection)
        ids = [by_path.get(_normal_path(path.parent, str(p)), f"<path {p}>") for p in paths]
    pairs, rows = [], []
    for row, (image_id, value) in enumerate(zip(ids, labels, strict=True), start=2):
        label = parse_label(value, f"{path}, row {row}")
        if label == UNLABELED:
            continue
        image_id = str(image_id)
        try:
            collection.index_of(image_id)
        except UnknownIdError as err:
            message = f"{path}, row {row}: {err}"
            if not skip_unknown:
                raise UnknownIdError(message + "; fix the id or pass --skip-bad") from None
            warnings.warn(message + "; row skipped", UnknownIdWarning, stacklevel=2)
            continue
        pairs.append((image_id, label))
        rows.append(row)
    _warn_of_conflicts(path, pairs, rows)
    return pairs


def _warn_of_conflicts(path: Path, pairs: list[tuple[str, int]], rows: list[int]) -> None:
    """Warn, naming the rows, of every image given different labels (the last row wins, as it is stored last)."""
    seen: dict[str, list[tuple[int, int]]] = {}
    for (image_id, label), row in zip(pairs, rows, strict=True):
        seen.setdefault(image_id, []).append((row, label))
    for image_id, given in seen.items():
        if len({label for _, label in given}) > 1:
            said = ", ".join(f"{LABEL_NAMES[label]} in row {row}" for row, label in given)
            warnings.warn(f"{path}: {image_id!r} is labelled {said}; the last (row {given[-1][0]}) is kept. "
                          "Fix the file and import it again if another was meant", ConflictingLabelsWarning,
                          stacklevel=3)


def count_changes(pairs: list[tuple[str, int]], current: dict[str, int]) -> tuple[int, int]:
    """How many of ``pairs`` would change a label, and how many of those replace one already given.

    ``current`` holds every image's label (``LabelStore.current(include_unsure=True)``).
    """
    changed = [image_id for image_id, label in pairs if current.get(image_id, UNLABELED) != label]
    return len(changed), sum(1 for image_id in changed if image_id in current)


def _path_lookup(collection: ImageCollection) -> dict[str, str]:
    paths = getattr(collection, "paths", None)
    if paths is None:
        return {}
    return {str(Path(p).resolve()): collection.id_of(i) for i, p in enumerate(paths)}


def _normal_path(base: Path, text: str) -> str:
    candidate = Path(text).expanduser()
    return str((candidate if candidate.is_absolute() else base / candidate).resolve())


def labelled_images(store: LabelStore, collection: ImageCollection) -> tuple[np.ndarray, np.ndarray]:
    """Indices in ``collection`` and labels (0 normal, 1 anomaly) of every image labelled in ``store``."""
    current = store.current()
    if not current:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ids = list(current)
    return collection.indices_of(ids), np.array([current[i] for i in ids], dtype=np.int64)


def import_catalogue_labels(store: LabelStore, collection: ImageCollection) -> int:
    """Store the labels a catalogue ``collection`` carries, into a ``store`` with no label history
    only (so a catalogue label changed or undone since never comes back); returns how many."""
    labels = getattr(collection, "labels", None)
    if not labels or store.history():
        return 0
    return len(store.set_many(labels.items(), source="catalogue"))
