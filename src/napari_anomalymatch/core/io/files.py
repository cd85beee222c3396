"""Collections of one image per file: folders, globs, lists and catalogues.

Each file is decoded on demand by its suffix (PNG/JPEG/TIFF through Pillow or
tifffile, FITS through astropy).  The collection's shape is that of its first
readable image; a grey image in a colour collection is repeated across the
channels, any other difference is a ``ShapeMismatchError`` naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    CorruptFileError,
    DuplicateIdError,
    EmptyCollectionError,
    ShapeMismatchError,
    SourceNotFoundError,
    UnsupportedSourceError,
)
from .base import BadImageWarning, ImageCollection
from .decode import decode_image_file
from .fitsfile import fits_centre_coordinates, read_fits_image
from .paths import FITS_SUFFIXES, IMAGE_SUFFIXES, Source, expand_source, has_suffix

FILE_SUFFIXES = IMAGE_SUFFIXES + FITS_SUFFIXES


class FileListCollection(ImageCollection):
    """Images stored one per file.

    Parameters
    ----------
    paths
        The image files, in collection order.
    root
        Ids are paths relative to ``root`` (POSIX style); without it, the paths as given.
    ids
        Explicit ids (e.g. from a catalogue), overriding the paths.
    columns
        Extra per-image columns (``ra``, ``dec`` ...) returned by ``metadata``.
    fits_options
        ``hdu=`` options for FITS files.
    """

    def __init__(self, paths: Sequence[Path], root: Path | None = None,
                 ids: Sequence[str] | None = None, columns: dict[str, np.ndarray] | None = None,
                 on_error: str = "raise", source: str | None = None,
                 fits_options: dict[str, Any] | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.source = source or (str(root) if root is not None else f"{len(self.paths)} files")
        if not self.paths:
            raise EmptyCollectionError(
                f"{self.source}: no image files found; expected files ending in "
                f"{', '.join(FILE_SUFFIXES)}"
            )
        self.root = root
        self.on_error = on_error
        self.fits_options = dict(fits_options or {})
        self._ids = list(ids) if ids is not None else [self._path_id(p) for p in self.paths]
        if len(self._ids) != len(self.paths):
            raise ValueError(f"{self.source}: {len(self._ids)} ids for {len(self.paths)} files")
        _check_unique(self._ids, self.source, explicit=ids is not None)
        self.columns = {k: np.asarray(v) for k, v in (columns or {}).items()}
        any_fits = any(has_suffix(p, FITS_SUFFIXES) for p in self.paths)
        self.value_range = None if any_fits else (0.0, 1.0)
        self.may_hold_nan = True
        self.shape = self._first_shape()

    def __len__(self) -> int:
        return len(self.paths)

    def id_of(self, index: int) -> str:
        return self._ids[index]

    def ids(self) -> list[str]:
        return list(self._ids)

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def metadata(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        columns = {"path": np.array([str(self.paths[i]) for i in idx], dtype=object)}
        for name, values in self.columns.items():
            columns[name] = values[idx]
        if "ra" not in columns and any(has_suffix(self.paths[i], FITS_SUFFIXES) for i in idx):
            coords = [fits_centre_coordinates(self.paths[i], self.fits_options) for i in idx]
            columns["ra"] = np.array([c[0] for c in coords], dtype=np.float64)
            columns["dec"] = np.array([c[1] for c in coords], dtype=np.float64)
        return columns

    def _read(self, indices: np.ndarray) -> np.ndarray:
        batch = np.empty((len(indices), *self.shape), dtype=np.float32)
        for position, index in enumerate(indices):
            batch[position] = self._read_checked(int(index))
        return batch

    def _decode(self, index: int) -> np.ndarray:
        path = self.paths[index]
        if not path.exists():
            raise SourceNotFoundError(f"{path}: image file is missing (it was listed in {self.source})")
        if has_suffix(path, FITS_SUFFIXES):
            return read_fits_image(path, **self.fits_options)
        return decode_image_file(path)

    def _read_checked(self, index: int) -> np.ndarray:
        try:
            image = self._decode(index)
        except (CorruptFileError, SourceNotFoundError) as err:
            return self._bad_image(index, _strip_path(err, self.paths[index]), error=type(err))
        if image.shape == self.shape:
            return image
        h, w, c = self.shape
        if image.shape[:2] == (h, w) and image.shape[2] == 1 and c > 1:
            return np.repeat(image, c, axis=2)
        return self._bad_image(
            index,
            f"image is {'x'.join(map(str, image.shape))} (HxWxC) but the collection's images are "
            f"{h}x{w}x{c} (set by {self.paths[0].name}); resample the images to one size",
            error=ShapeMismatchError,
        )

    def _first_shape(self) -> tuple[int, int, int]:
        failures = []
        for index in range(len(self.paths)):
            try:
                return tuple(int(s) for s in self._decode(index).shape)  # type: ignore[return-value]
            except (CorruptFileError, SourceNotFoundError) as err:
                if self.on_error == "raise":
                    raise
                failures.append(str(err))
        raise EmptyCollectionError(
            f"{self.source}: none of its {len(self.paths)} files could be read; first error: "
            f"{failures[0] if failures else 'none'}"
        )

    def _path_id(self, path: Path) -> str:
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path.as_posix()


def open_files(source: Source, on_error: str = "raise", hdu: Any = None) -> FileListCollection:
    """Open a folder (searched recursively), a glob pattern or a list of image files."""
    paths, root = expand_source(source, FILE_SUFFIXES)
    description = str(source) if isinstance(source, (str, Path)) else None
    paths = utf8_names(paths, on_error, description or f"{len(paths)} files")
    fits_options = {"hdu": hdu} if hdu is not None else {}
    return FileListCollection(paths, root=root, on_error=on_error, source=description,
                              fits_options=fits_options)


def utf8_names(paths: list[Path], on_error: str, source: str) -> list[Path]:
    """The paths whose names are valid UTF-8 (ids, labels and exports are text).

    A name the OS stores as undecodable bytes is refused with a message naming
    it, or left out with a warning when ``on_error`` is ``skip``.
    """
    kept = []
    for path in paths:
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            raw = os.fsencode(path)
            message = (f"{source}: the file name {raw!r} is not valid UTF-8, which ids, the label store "
                       "and exports need; rename it (e.g. convmv -f latin1 -t utf8 -r --notest FOLDER)")
            if on_error != "skip":
                raise UnsupportedSourceError(message + ", or pass --skip-bad to leave such files out") from None
            warnings.warn(message + "; skipped", BadImageWarning, stacklevel=3)
            continue
        kept.append(path)
    return kept


def _check_unique(ids: Sequence[str], source: str, explicit: bool) -> None:
    """Refuse repeated ids, naming the first few, since labels, scores and exports are keyed by id."""
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    repeated = list(dict.fromkeys(i for i in ids if i in seen or seen.add(i)))  # type: ignore[func-returns-value]
    shown = ", ".join(repr(i) for i in repeated[:SHOWN_DUPLICATES])
    more = f" and {len(repeated) - SHOWN_DUPLICATES} more" if len(repeated) > SHOWN_DUPLICATES else ""
    fix = ("give every row its own id (or leave out the id column to use the file paths)" if explicit
           else "list each file once")
    verb = "appears" if len(repeated) == 1 else "appear"
    raise DuplicateIdError(f"{source}: ids must be unique, but {shown}{more} {verb} more than once; {fix}")


SHOWN_DUPLICATES = 5


def _strip_path(err: Exception, path: Path) -> str:
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text

