"""The reader registry: which reader opens a source, and opening it.

Readers are named by ``module:function`` and imported when first used, so
that choosing a reader loads no format library (h5py, astropy, zarr).
"""

from __future__ import annotations

import glob
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SourceNotFoundError, UnsupportedSourceError
from .base import ImageCollection
from .paths import (
    CATALOGUE_SUFFIXES,
    FITS_SUFFIXES,
    HDF5_SUFFIXES,
    IMAGE_SUFFIXES,
    Source,
    has_suffix,
    is_zarr,
)
from .shardsource import is_shard_source


@dataclass(frozen=True)
class Reader:
    """A named way of opening a source; ``target`` is ``module:function``."""

    name: str
    target: str
    claims: Callable[[Path], bool]
    description: str

    def open(self, source: Any, **options: Any) -> ImageCollection:
        """Open ``source``; an option this reader does not take is a ``ConfigError`` naming it.

        Raises
        ------
        ConfigError
            For options the reader's function does not take.
        """
        function = self._function()
        accepted = self.option_names()
        unknown = sorted(set(options) - {"on_error"} - set(accepted)) if accepted is not None else []
        if unknown:
            raise ConfigError(f"the {self.name} reader takes no option(s) {unknown}; it takes "
                              f"{sorted(accepted) or 'none'}. Remove the others")
        return function(source, **options)

    def option_names(self) -> tuple[str, ...] | None:
        """The options this reader takes (besides ``on_error``); None when it passes any on (sharded)."""
        parameters = list(inspect.signature(self._function()).parameters.values())[1:]
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return None
        return tuple(p.name for p in parameters if p.kind is not p.VAR_KEYWORD and p.name != "on_error")

    def _function(self) -> Callable[..., ImageCollection]:
        module_name, function_name = self.target.split(":")
        return getattr(importlib.import_module(module_name, package=__package__), function_name)


READERS: tuple[Reader, ...] = (
    Reader("sharded", ".sharded:open_sharded", is_shard_source,
           "many HDF5/Zarr/FITS-cube files (or image folders) as one collection: a glob, "
           "a folder of them or a CSV list of shards"),
    Reader("zarr", ".zarr:open_zarr", is_zarr, "Zarr array of N images"),
    Reader("hdf5", ".hdf5:open_hdf5", lambda p: has_suffix(p, HDF5_SUFFIXES),
           "HDF5 dataset of N images or of encoded image bytes"),
    Reader("fits", ".fits:open_fits", lambda p: has_suffix(p, FITS_SUFFIXES),
           "FITS image, cube or multi-extension file"),
    Reader("catalogue", ".catalogue:open_catalogue",
           lambda p: has_suffix(p, CATALOGUE_SUFFIXES), "CSV/ECSV table of image paths"),
    Reader("mosaic", ".mosaic:open_mosaic", lambda p: False,
           "a catalogue of positions cut out of survey mosaics (FITS tiles per band, option 'mosaic')"),
    Reader("folder", ".files:open_files",
           lambda p: p.is_dir() or has_suffix(p, IMAGE_SUFFIXES),
           "folder, glob or list of PNG/JPEG/TIFF/FITS files"),
)


def reader_names() -> list[str]:
    return [reader.name for reader in READERS]


def find_reader(source: Source, reader: str = "auto") -> Reader:
    """The reader for ``source``: the one named, or the first that claims it."""
    by_name = {r.name: r for r in READERS}
    if reader != "auto":
        if reader not in by_name:
            raise UnsupportedSourceError(
                f"unknown reader {reader!r}; choose one of {sorted(by_name)} or 'auto'"
            )
        return by_name[reader]
    if not isinstance(source, (str, Path)):
        return by_name["folder"]  # an explicit list of files
    text = str(source)
    if glob.has_magic(text):
        return by_name["sharded"] if is_shard_source(Path(text)) else by_name["folder"]
    path = Path(text).expanduser()
    for candidate in READERS:
        if candidate.claims(path):
            if not path.exists() and candidate.name != "zarr":
                raise SourceNotFoundError(f"{path}: no such file or folder")
            return candidate
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such file or folder")
    known = ", ".join(FITS_SUFFIXES + HDF5_SUFFIXES + CATALOGUE_SUFFIXES + (".zarr",)
                      + IMAGE_SUFFIXES)
    raise UnsupportedSourceError(
        f"{path}: no reader for this kind of file; expected a folder or one of {known}"
    )


def open_collection(source: Source, reader: str = "auto", on_error: str = "raise",
                    **options: Any) -> ImageCollection:
    """Open any supported source as an ``ImageCollection`` without reading pixels.

    Parameters
    ----------
    source
        A folder, a file (FITS, HDF5, Zarr, CSV/ECSV catalogue, image), a glob
        pattern or a list of image files.
    reader
        A name from ``reader_names()`` or ``'auto'`` to choose by the source.
    on_error
        ``'raise'`` or ``'skip'`` (see ``ImageCollection.read``).
    **options
        Reader options, e.g. ``hdu=`` for FITS or ``dataset=`` for HDF5.

    Raises
    ------
    SourceNotFoundError, UnsupportedSourceError, CorruptFileError, EmptyCollectionError
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
    return find_reader(source, reader_named(reader, options)).open(source, on_error=on_error, **options)


def reader_named(reader: str, options: dict[str, Any]) -> str:
    """The reader ``reader`` and ``options`` name: 'auto' with mosaic tiles is the mosaic reader (the source is
    then the catalogue of positions to cut from the tiles); otherwise ``reader`` as given."""
    return "mosaic" if reader == "auto" and options.get("mosaic") else reader
