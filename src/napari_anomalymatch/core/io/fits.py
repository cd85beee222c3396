"""FITS sources as collections: single images, cubes and multi-extension files.

``open_fits`` reads one image per file, the planes of a 3-D cube, or (``hdu="all"``)
every image extension of one file; ``fitsfile`` describes the ``hdu`` choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import CorruptFileError, EmptyCollectionError, ShapeMismatchError
from .base import ImageCollection, parse_index_id
from .files import FileListCollection
from .fitsfile import FitsFile, HduSpec, common_shape, hdu_data, hdu_label, is_image_hdu, select_hdus
from .paths import FITS_SUFFIXES, Source, expand_source


def open_fits(source: Source, hdu: HduSpec = None, on_error: str = "raise") -> ImageCollection:
    """Open FITS file(s): one image per file, a cube, or extensions as a stack."""
    paths, root = expand_source(source, FITS_SUFFIXES)
    if not paths:
        raise EmptyCollectionError(f"{source}: no FITS files found (expected {', '.join(FITS_SUFFIXES)})")
    if len(paths) > 1:
        return FileListCollection(paths, root=root, on_error=on_error, source=str(source),
                                  fits_options={"hdu": hdu} if hdu is not None else {})
    path = paths[0]
    if hdu == "all":
        return FitsExtensionsCollection(path, on_error=on_error)
    with FitsFile(path) as hdul:
        selected = select_hdus(hdul, hdu, path)
        shape = common_shape(hdul, selected, path)
    if len(shape) == 2:
        return FileListCollection([path], root=path.parent, on_error=on_error, source=str(path),
                                  fits_options={"hdu": hdu} if hdu is not None else {})
    return FitsCubeCollection(path, selected, shape, on_error=on_error)


class FitsCubeCollection(ImageCollection):
    """The planes of a 3-D FITS cube (one HDU, or several as channels) as images."""

    def __init__(self, path: Path, hdus: list[int], shape: tuple[int, ...],
                 on_error: str = "raise") -> None:
        self.path = Path(path)
        self.hdus = list(hdus)
        self.source = str(path)
        self.on_error = on_error
        self._length = int(shape[0])
        self.shape = (int(shape[1]), int(shape[2]), len(self.hdus))
        self._handle = None
        if self._length == 0:
            raise EmptyCollectionError(f"{path}: the cube holds no planes")

    def __len__(self) -> int:
        return self._length

    def id_of(self, index: int) -> str:
        return str(index)

    def index_of(self, image_id: str) -> int:
        return parse_index_id(image_id, len(self), self.source)

    def describe(self, index: int) -> str:
        return f"{self.path}[{self.hdus[0]}][plane {index}]"

    def channel_name(self, channel: int) -> str:
        return f"channel {channel} (HDU {self.hdus[channel]})"

    def metadata(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        return {"path": np.array([self.describe(int(i)) for i in idx], dtype=object)}

    def _read(self, indices: np.ndarray) -> np.ndarray:
        hdul = self._open_handle()
        batch = np.empty((len(indices), *self.shape), dtype=np.float32)
        order = np.argsort(indices, kind="stable")
        start, stop = int(indices.min()), int(indices.max()) + 1
        contiguous = stop - start == len(indices) and np.all(np.diff(indices[order]) == 1)
        for channel, hdu_index in enumerate(self.hdus):
            section = hdul[hdu_index].section
            try:
                if contiguous:
                    block = np.asarray(section[start:stop], dtype=np.float32)
                    batch[order, :, :, channel] = block
                else:
                    for position, index in enumerate(indices):
                        batch[position, :, :, channel] = section[int(index)]
            except Exception as err:
                raise CorruptFileError(
                    f"{self.path}: cannot read planes {start}..{stop - 1} of HDU {hdu_index} "
                    f"({type(err).__name__}: {err}); the file may be truncated"
                ) from err
        return batch

    def _open_handle(self):
        if self._handle is None:
            self._handle = FitsFile(self.path, memmap=False)  # section reads only the planes asked for
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class FitsExtensionsCollection(ImageCollection):
    """Every 2-D image extension of one multi-extension FITS file as an image."""

    def __init__(self, path: Path, on_error: str = "raise") -> None:
        self.path = Path(path)
        self.source = str(path)
        self.on_error = on_error
        with FitsFile(self.path) as hdul:
            self.hdus = [i for i, h in enumerate(hdul) if is_image_hdu(h) and len(h.shape) == 2]
            if not self.hdus:
                raise EmptyCollectionError(f"{path}: holds no 2-D image extension")
            self._names = [hdu_label(hdul[i], i) for i in self.hdus]
            first = hdul[self.hdus[0]].shape
        self.shape = (int(first[0]), int(first[1]), 1)

    def __len__(self) -> int:
        return len(self.hdus)

    def id_of(self, index: int) -> str:
        return self._names[index]

    def describe(self, index: int) -> str:
        return f"{self.path}[{self.hdus[index]}]"

    def _read(self, indices: np.ndarray) -> np.ndarray:
        batch = np.empty((len(indices), *self.shape), dtype=np.float32)
        with FitsFile(self.path) as hdul:
            for position, index in enumerate(indices):
                plane = hdu_data(hdul, self.hdus[int(index)], self.path)
                if plane.shape != self.shape[:2]:
                    batch[position] = self._bad_image(
                        int(index), f"extension is {plane.shape}, expected {self.shape[:2]}",
                        error=ShapeMismatchError)
                else:
                    batch[position, :, :, 0] = plane
        return batch
