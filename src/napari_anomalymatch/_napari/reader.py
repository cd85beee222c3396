"""The napari reader: FITS, HDF5 and Zarr image stacks as lazy layers.

``napari_get_reader`` returns a reader function for the files it can open and
``None`` for anything else (it never raises).  Opening reads metadata and the
first image only; napari then reads the images it shows, a chunk at a time,
so a 10^6-image HDF5 file opens as fast as a small one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import AnomalyMatchError
from ..core.io.base import ImageCollection
from ..core.io.paths import FITS_SUFFIXES, HDF5_SUFFIXES, has_suffix
from ..core.io.registry import open_collection
from .layers import collection_layer_data, source_name

ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")
READABLE = {"fits": FITS_SUFFIXES, "hdf5": HDF5_SUFFIXES, "zarr": (".zarr",)}
# What opening a file that is not an image stack may raise besides the engine's own errors.
_NOT_AN_IMAGE_STACK = (AnomalyMatchError, OSError, ValueError, KeyError, TypeError, IndexError)


def napari_get_reader(path: str | list[str]) -> Callable[[Any], list[tuple]] | None:
    """A reader for one FITS/HDF5/Zarr image stack, or None when ``path`` is not one.

    Parameters
    ----------
    path
        What napari asks about: a path, or a list of paths (only one is accepted).

    Returns
    -------
    A function returning the layer data tuples, or None.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    reader = _reader_name(str(path))
    if reader is None:
        return None
    try:
        collection = open_collection(str(path), reader=reader)
    except _NOT_AN_IMAGE_STACK:
        return None
    return _LayerReader(collection, str(path), reader)


class _LayerReader:
    """The reader napari calls: turns the already opened collection into layers."""

    def __init__(self, collection: ImageCollection, path: str, reader: str) -> None:
        self.collection = collection
        self.path = path
        self.reader = reader

    def __call__(self, path: Any) -> list[tuple]:
        source = {"path": str(Path(self.path).absolute()), "reader": self.reader, "options": {}}
        return collection_layer_data(self.collection, source_name(self.path), source)


def _reader_name(path: str) -> str | None:
    trimmed = path.rstrip("/")
    for name, suffixes in READABLE.items():
        if has_suffix(trimmed, suffixes):
            return name
    folder = Path(trimmed)
    if folder.is_dir() and any((folder / marker).exists() for marker in ZARR_MARKERS):
        return "zarr"
    return None
