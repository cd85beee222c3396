"""The one interface every image source offers, and the reader registry.

An ``ImageCollection`` is a fixed-shape, random-access, lazily read set of
images.  ``read(indices)`` always returns ``float32`` arrays shaped
``(N, H, W, C)``; ids are stable strings; opening a collection reads no pixels.
Collections are picklable so that loader worker processes can read from them:
open file handles are dropped on pickling and reopened on first use.
"""

from __future__ import annotations

import abc
import glob
import hashlib
import importlib
import inspect
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    BadImageError,
    ConfigError,
    SourceNotFoundError,
    UnknownIdError,
    UnsupportedSourceError,
)

Source = str | Path | Sequence[str | Path]


class BadImageWarning(UserWarning):
    """An image was skipped because it could not be used (``on_error='skip'``)."""


@dataclass(frozen=True)
class NativeFormat:
    """How a collection's stored integers relate to what ``read`` returns.

    ``read(i) == (read_native(i) - offset) * scale`` in float32, so integer
    data can travel to the model as it is stored (4x less than float32) and
    be scaled where the model runs.
    """

    dtype: str
    offset: float = 0.0
    scale: float = 1.0


class ImageCollection(abc.ABC):
    """A fixed-shape set of images with stable ids.

    Subclasses set ``source`` (a description for messages), ``shape``
    (``(H, W, C)``), ``value_range`` (the pixel range when it is fixed by the
    format, e.g. ``(0, 255)`` for 8-bit data, else ``None``) and
    ``may_hold_nan`` (``False`` for integer data), and implement ``__len__``,
    ``id_of`` and ``_read``.  Integer-backed collections also set
    ``native_format`` and implement ``read_native``.
    """

    source: str = ""
    shape: tuple[int, int, int] = (0, 0, 0)
    value_range: tuple[float, float] | None = None
    may_hold_nan: bool = True
    on_error: str = "raise"
    native_format: NativeFormat | None = None

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def id_of(self, index: int) -> str:
        """The stable id of image ``index``."""

    @abc.abstractmethod
    def _read(self, indices: np.ndarray) -> np.ndarray:
        """Read images at ``indices`` (validated, int64) as float32 NHWC."""

    def describe(self, index: int) -> str:
        """Where image ``index`` comes from, for messages (a path, path[hdu], ...)."""
        return f"{self.source}[{index}]"

    def metadata(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Per-image columns such as ``path``, ``ra``, ``dec``; empty when unknown."""
        return {}

    def ids(self) -> list[str]:
        return [self.id_of(i) for i in range(len(self))]

    def index_of(self, image_id: str) -> int:
        """The index of ``image_id``; raises ``UnknownIdError`` naming the source."""
        lookup = self.__dict__.get("_index_by_id")
        if lookup is None:
            lookup = {image_id_: i for i, image_id_ in enumerate(self.ids())}
            self.__dict__["_index_by_id"] = lookup
        try:
            return lookup[image_id]
        except KeyError:
            raise UnknownIdError(
                f"{self.source}: no image with id {image_id!r} among its {len(self)} images"
                f" (ids look like {self.id_of(0)!r})"
            ) from None

    def indices_of(self, image_ids: Sequence[str]) -> np.ndarray:
        return np.array([self.index_of(i) for i in image_ids], dtype=np.int64)

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Read the images at ``indices`` as a float32 ``(N, H, W, C)`` array.

        Images with no finite pixel raise ``BadImageError`` or, with
        ``on_error='skip'``, are returned as NaN after a ``BadImageWarning``.
        """
        idx = self._check_indices(indices)
        if idx.size == 0:
            return np.zeros((0, *self.shape), dtype=np.float32)
        batch = self._read(idx)
        if self.may_hold_nan:
            self._check_finite(batch, idx)
        return batch

    def read_one(self, index: int) -> np.ndarray:
        return self.read([index])[0]

    def read_native(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Images at ``indices`` in their stored integer type, ``(N, H, W, C)``, and a mask
        of the usable ones; ``None`` when these images cannot be given so (use ``read``).

        Unusable images (``on_error='skip'``) are zeros with ``False`` in the mask.
        """
        return None

    def ids_of(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        """The ids of ``indices``, in order."""
        return [self.id_of(int(i)) for i in indices]

    def fingerprint(self) -> str:
        """A short hash of what the collection is: its source, size, shape and ids' ends."""
        n = len(self)
        ends = [self.id_of(i) for i in sorted({0, n // 2, n - 1})] if n else []
        text = f"{type(self).__name__}|{self.source}|{n}|{self.shape}|{ends}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def close(self) -> None:
        """Release open files; the collection reopens them if used again."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in [k for k in state if k.startswith("_handle")]:
            state[key] = None
        state.pop("_index_by_id", None)
        return state

    def __repr__(self) -> str:
        h, w, c = self.shape
        return f"{type(self).__name__}({self.source!r}, {len(self)} images of {h}x{w}x{c})"

    # -- helpers for subclasses -------------------------------------------------

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise IndexError(f"{self.source}: image index {bad} is outside 0..{n - 1}")
        return idx

    def _check_finite(self, batch: np.ndarray, indices: np.ndarray) -> None:
        finite_any = np.isfinite(batch).reshape(len(batch), -1).any(axis=1)
        skipped = self.__dict__.get("_skipped", set())
        for position in np.flatnonzero(~finite_any):
            if int(indices[position]) in skipped:
                continue  # already reported when it failed to decode
            self._bad_image(
                int(indices[position]),
                "has no finite pixel (all NaN or inf); expected at least one finite value",
                already_nan=True,
                batch=batch,
                position=int(position),
            )

    def _bad_image(self, index: int, problem: str, *, error: type[Exception] = BadImageError,
                   already_nan: bool = False, batch: np.ndarray | None = None,
                   position: int | None = None) -> np.ndarray:
        """Raise or, with ``on_error='skip'``, warn and return a NaN image."""
        message = f"{self.describe(index)}: {problem}"
        if self.on_error == "raise":
            raise error(message + ". Pass on_error='skip' (--skip-bad) to leave such images out.")
        self.__dict__.setdefault("_skipped", set()).add(index)
        warnings.warn(message + "; skipped", BadImageWarning, stacklevel=3)
        nan_image = np.full(self.shape, np.nan, dtype=np.float32)
        if batch is not None and position is not None and not already_nan:
            batch[position] = nan_image
        return nan_image


# -- the reader registry -------------------------------------------------------


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


FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fz", ".fits.fz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
CATALOGUE_SUFFIXES = (".csv", ".ecsv")


def has_suffix(path: Path | str, suffixes: Sequence[str]) -> bool:
    return str(path).lower().endswith(tuple(suffixes))


def _claims_shards(path: Path) -> bool:
    from .shardsource import is_shard_source

    return is_shard_source(path)


def _is_zarr(path: Path) -> bool:
    return has_suffix(str(path).rstrip("/"), (".zarr",)) or (
        path.is_dir() and ((path / ".zarray").exists() or (path / "zarr.json").exists()
                           or (path / ".zgroup").exists())
    )


READERS: tuple[Reader, ...] = (
    Reader("sharded", ".sharded:open_sharded", _claims_shards,
           "many HDF5/Zarr/FITS-cube files (or image folders) as one collection: a glob, "
           "a folder of them or a CSV list of shards"),
    Reader("zarr", ".zarr:open_zarr", _is_zarr, "Zarr array of N images"),
    Reader("hdf5", ".hdf5:open_hdf5", lambda p: has_suffix(p, HDF5_SUFFIXES),
           "HDF5 dataset of N images or of encoded image bytes"),
    Reader("fits", ".fits:open_fits", lambda p: has_suffix(p, FITS_SUFFIXES),
           "FITS image, cube or multi-extension file"),
    Reader("catalogue", ".catalogue:open_catalogue",
           lambda p: has_suffix(p, CATALOGUE_SUFFIXES), "CSV/ECSV table of image paths"),
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
        return by_name["sharded"] if _claims_shards(Path(text)) else by_name["folder"]
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
    return find_reader(source, reader).open(source, on_error=on_error, **options)


def expand_source(source: Source, suffixes: Sequence[str]) -> tuple[list[Path], Path | None]:
    """Files named by a folder (recursively), a glob or a list, sorted, and their root."""
    if not isinstance(source, (str, Path)):
        return [Path(p).expanduser() for p in source], None
    text = str(source)
    if glob.has_magic(text):
        paths = sorted(Path(p) for p in glob.glob(text, recursive=True)
                       if has_suffix(p, suffixes))
        return paths, _glob_root(text)
    path = Path(text).expanduser()
    if path.is_dir():
        paths = sorted(p for p in path.rglob("*") if p.is_file() and has_suffix(p, suffixes)
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        return paths, path
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such file or folder")
    return [path], path.parent


def _glob_root(pattern: str) -> Path:
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def parse_index_id(image_id: str, length: int, source: str) -> int:
    """The index named by an id that is a plain image number ("0", "1", ...)."""
    text = str(image_id)
    if text.isdigit() and int(text) < length and str(int(text)) == text:
        return int(text)
    raise UnknownIdError(
        f"{source}: no image with id {image_id!r}; ids here are image numbers 0..{length - 1}"
    )
