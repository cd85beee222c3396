"""FITS images, cubes and multi-extension files through ``astropy.io.fits``.

``hdu`` chooses what is read:

* ``None``: the first HDU holding image data (the primary, or the first
  extension of a tile-compressed ``.fz`` file);
* an index or extension name (``1``, ``"SCI"``): that HDU;
* a list (``[1, 2, 3]``, ``["G", "R", "I"]``): those HDUs, combined as channels;
* ``"all"``: every image extension of the file is one image of the stack.

2-D data are one image, 3-D data a stack of images (``section`` slicing, so a
cube is never loaded whole).  BSCALE/BZERO are applied, tile-compressed HDUs
are decompressed by astropy, NaN and inf are kept for normalisation to treat.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFileError, EmptyCollectionError, ShapeMismatchError, SourceNotFoundError
from .base import FITS_SUFFIXES, ImageCollection, Source, expand_source, parse_index_id
from .files import FileListCollection

HduSpec = int | str | Sequence[int | str] | None


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
    with _open(path) as hdul:
        selected = _select_hdus(hdul, hdu, path)
        shape = _common_shape(hdul, selected, path)
    if len(shape) == 2:
        return FileListCollection([path], root=path.parent, on_error=on_error, source=str(path),
                                  fits_options={"hdu": hdu} if hdu is not None else {})
    return FitsCubeCollection(path, selected, shape, on_error=on_error)


def read_fits_image(path: Path, hdu: HduSpec = None) -> np.ndarray:
    """Read one 2-D image (channels from several HDUs) as float32 ``(H, W, C)``."""
    with _open(path) as hdul:
        selected = _select_hdus(hdul, hdu, path)
        shape = _common_shape(hdul, selected, path)
        if len(shape) != 2:
            raise ShapeMismatchError(
                f"{path}: HDU {selected[0]} holds data of shape {shape}; expected a 2-D image "
                "(open a single cube file on its own to read it as a stack)"
            )
        planes = [_data(hdul, i, path) for i in selected]
    return np.stack(planes, axis=-1).astype(np.float32, copy=False)


def fits_stack_length(path: Path, hdu: HduSpec = None) -> int | None:
    """The number of planes when the chosen HDU(s) hold a 3-D cube, else None (a 2-D image)."""
    if hdu == "all":
        return None
    with _open(path) as hdul:
        selected = _select_hdus(hdul, hdu, path)
        shape = _common_shape(hdul, selected, path)
    return int(shape[0]) if len(shape) == 3 else None


def fits_centre_coordinates(path: Path, options: dict[str, Any]) -> tuple[float, float]:
    """RA and Dec (degrees) of the image centre from its WCS, or NaN when there is none."""
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        with _open(path) as hdul:
            index = _select_hdus(hdul, options.get("hdu"), path)[0]
            header = hdul[index].header
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                wcs = WCS(header, naxis=2)
            if not wcs.has_celestial:
                return float("nan"), float("nan")
            ny, nx = hdul[index].shape[-2:]
            sky = wcs.celestial.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
            icrs = sky.icrs
            return float(icrs.ra.deg), float(icrs.dec.deg)
    except (CorruptFileError, SourceNotFoundError, ValueError, MemoryError):
        return float("nan"), float("nan")


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
            self._handle = _open(self.path, memmap=False)  # section reads only the planes asked for
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
        with _open(self.path) as hdul:
            self.hdus = [i for i, h in enumerate(hdul) if _is_image(h) and len(h.shape) == 2]
            if not self.hdus:
                raise EmptyCollectionError(f"{path}: holds no 2-D image extension")
            self._names = [_hdu_label(hdul[i], i) for i in self.hdus]
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
        with _open(self.path) as hdul:
            for position, index in enumerate(indices):
                plane = _data(hdul, self.hdus[int(index)], self.path)
                if plane.shape != self.shape[:2]:
                    batch[position] = self._bad_image(
                        int(index), f"extension is {plane.shape}, expected {self.shape[:2]}",
                        error=ShapeMismatchError)
                else:
                    batch[position, :, :, 0] = plane
        return batch


# -- helpers -------------------------------------------------------------------


class _open:
    """``fits.open`` that turns every failure into an error naming the file."""

    def __init__(self, path: Path, memmap: bool = False) -> None:
        from astropy.io import fits

        path = Path(path)
        if not path.exists():
            raise SourceNotFoundError(f"{path}: no such FITS file")
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message=".*truncated.*")
                self.hdul = fits.open(path, memmap=memmap, lazy_load_hdus=False)
        except Exception as err:
            raise CorruptFileError(
                f"{path}: not a readable FITS file ({type(err).__name__}: {err}); "
                "expected a complete FITS file"
            ) from err

    def __enter__(self):
        return self.hdul

    def __exit__(self, *exc: object) -> None:
        self.hdul.close()

    def __getitem__(self, key):
        return self.hdul[key]

    def close(self) -> None:
        self.hdul.close()


def _is_image(hdu: Any) -> bool:
    from astropy.io import fits

    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and bool(hdu.shape)


def _hdu_label(hdu: Any, index: int) -> str:
    name = (hdu.name or "").strip()
    version = hdu.ver if getattr(hdu, "ver", 1) else 1
    return f"{index}:{name},{version}" if name and name != "PRIMARY" else str(index)


def _select_hdus(hdul: Any, hdu: HduSpec, path: Path) -> list[int]:
    if hdu is None:
        for index, candidate in enumerate(hdul):
            if _is_image(candidate):
                return [index]
        raise EmptyCollectionError(f"{path}: holds no image data in any of its {len(hdul)} HDUs")
    specs = [hdu] if isinstance(hdu, (int, str)) else list(hdu)
    if not specs:
        raise SourceNotFoundError(f"{path}: an empty list of HDUs was asked for")
    return [_hdu_index(hdul, spec, path) for spec in specs]


def _hdu_index(hdul: Any, spec: int | str, path: Path) -> int:
    available = [_hdu_label(h, i) for i, h in enumerate(hdul)]
    try:
        index = hdul.index_of(spec if not (isinstance(spec, str) and spec.isdigit()) else int(spec))
    except (KeyError, IndexError, TypeError):
        raise SourceNotFoundError(
            f"{path}: no HDU {spec!r}; it has {available} (give an index or extension name)"
        ) from None
    if not 0 <= index < len(hdul):
        raise SourceNotFoundError(f"{path}: no HDU {spec!r}; it has {available}")
    if not _is_image(hdul[index]):
        raise SourceNotFoundError(
            f"{path}: HDU {spec!r} ({type(hdul[index]).__name__}) holds no image data; "
            f"image HDUs: {[available[i] for i, h in enumerate(hdul) if _is_image(h)]}"
        )
    return index


def _common_shape(hdul: Any, selected: list[int], path: Path) -> tuple[int, ...]:
    shapes = {tuple(hdul[i].shape) for i in selected}
    if len(shapes) > 1:
        raise ShapeMismatchError(
            f"{path}: HDUs {selected} differ in shape {sorted(shapes)}; channels must match"
        )
    shape = shapes.pop()
    if len(shape) not in (2, 3):
        raise ShapeMismatchError(
            f"{path}: HDU {selected[0]} holds {len(shape)}-D data {shape}; expected a 2-D image "
            "or a 3-D stack of images"
        )
    return shape


def _data(hdul: Any, index: int, path: Path) -> np.ndarray:
    try:
        data = hdul[index].data
        if data is None:
            raise ValueError("the HDU holds no data")
        return np.asarray(data, dtype=np.float32)
    except Exception as err:
        raise CorruptFileError(
            f"{path}: cannot read the data of HDU {index} ({type(err).__name__}: {err}); "
            "the file may be truncated or corrupt"
        ) from err
