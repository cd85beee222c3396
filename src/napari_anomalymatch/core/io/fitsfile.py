"""One FITS file through ``astropy.io.fits``: choosing HDUs, reading a 2-D image, its WCS centre.

``hdu`` chooses what is read:

* ``None``: the first HDU holding image data (the primary, or the first
  extension of a tile-compressed ``.fz`` file);
* an index or extension name (``1``, ``"SCI"``): that HDU;
* a list (``[1, 2, 3]``, ``["G", "R", "I"]``): those HDUs, combined as channels;
* ``"all"``: every image extension of the file is one image of the stack.

2-D data are one image, 3-D data a stack of images (``section`` slicing, so a
cube is never loaded whole).  A 2-D image larger than ``MAX_SIDE`` pixels a side
is read block-averaged to at most that size, a band of rows at a time.  BSCALE/BZERO are applied, tile-compressed HDUs
are decompressed by astropy, NaN and inf are kept for normalisation to treat.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFileError, EmptyCollectionError, ShapeMismatchError, SourceNotFoundError

HduSpec = int | str | Sequence[int | str] | None
# Larger 2-D images are read block-averaged to at most this many pixels a side (the model sees
# 64-224 pixels): a 20,000^2 survey tile is read a band of rows at a time, never whole.
MAX_SIDE = 4096
# About how many bytes of rows one read of a block-averaged image takes.
BAND_BYTES = 32 << 20


def read_fits_image(path: Path, hdu: HduSpec = None) -> np.ndarray:
    """Read one 2-D image (channels from several HDUs) as float32 ``(H, W, C)``."""
    with FitsFile(path) as hdul:
        selected = select_hdus(hdul, hdu, path)
        shape = common_shape(hdul, selected, path)
        if len(shape) != 2:
            raise ShapeMismatchError(
                f"{path}: HDU {selected[0]} holds data of shape {shape}; expected a 2-D image "
                "(open a single cube file on its own to read it as a stack)"
            )
        factor = binning_factor(shape)
        planes = [hdu_data(hdul, i, path) if factor == 1 else binned_data(hdul, i, path, factor)
                  for i in selected]
    if len(planes) == 1:
        return planes[0][..., None]  # a view: a large image is never held twice
    return np.stack(planes, axis=-1)


def binning_factor(shape: tuple[int, ...]) -> int:
    """By how much a 2-D image of ``shape`` is block-averaged when read: 1 up to ``MAX_SIDE`` pixels a side."""
    return max(1, -(-max(shape[-2:]) // MAX_SIDE))


def binned_data(hdul: Any, index: int, path: Path, factor: int) -> np.ndarray:
    """HDU ``index`` averaged over ``factor`` x ``factor`` blocks (NaN ignored), read a band of rows
    at a time, so the whole image is never in memory; a failed read names ``path``."""
    height, width = hdul[index].shape
    out = np.empty((-(-height // factor), -(-width // factor)), dtype=np.float32)
    rows = factor * max(1, BAND_BYTES // (4 * width * factor))
    try:
        section = hdul[index].section
        for top in range(0, height, rows):
            band = np.asarray(section[top:top + rows], dtype=np.float32)
            out[top // factor:top // factor + -(-len(band) // factor)] = _block_mean(band, factor)
    except Exception as err:
        raise CorruptFileError(
            f"{path}: cannot read the data of HDU {index} ({type(err).__name__}: {err}); "
            "the file may be truncated or corrupt"
        ) from err
    return out


def _block_mean(band: np.ndarray, factor: int) -> np.ndarray:
    """The NaN-ignoring mean of each ``factor`` x ``factor`` block of ``band`` (edges padded with NaN)."""
    height, width = band.shape
    padded = np.full((-(-height // factor) * factor, -(-width // factor) * factor), np.nan, dtype=np.float32)
    padded[:height, :width] = band
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    with warnings.catch_warnings():  # an all-NaN block stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(blocks, axis=(1, 3))


def fits_stack_length(path: Path, hdu: HduSpec = None) -> int | None:
    """The number of planes when the chosen HDU(s) hold a 3-D cube, else None (a 2-D image)."""
    if hdu == "all":
        return None
    with FitsFile(path) as hdul:
        selected = select_hdus(hdul, hdu, path)
        shape = common_shape(hdul, selected, path)
    return int(shape[0]) if len(shape) == 3 else None


def fits_centre_coordinates(path: Path, options: dict[str, Any]) -> tuple[float, float]:
    """RA and Dec (degrees) of the image centre from its WCS, or NaN when there is none."""
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        with FitsFile(path) as hdul:
            index = select_hdus(hdul, options.get("hdu"), path)[0]
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


class FitsFile:
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


def is_image_hdu(hdu: Any) -> bool:
    """Whether ``hdu`` holds image data (a primary, image or tile-compressed HDU with a shape)."""
    from astropy.io import fits

    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and bool(hdu.shape)


def hdu_label(hdu: Any, index: int) -> str:
    """How messages and ids name an HDU: its index, with its extension name and version if it has one."""
    name = (hdu.name or "").strip()
    version = hdu.ver if getattr(hdu, "ver", 1) else 1
    return f"{index}:{name},{version}" if name and name != "PRIMARY" else str(index)


def select_hdus(hdul: Any, hdu: HduSpec, path: Path) -> list[int]:
    """The indices of the HDUs ``hdu`` asks for (see the module docstring); errors name ``path``."""
    if hdu is None:
        for index, candidate in enumerate(hdul):
            if is_image_hdu(candidate):
                return [index]
        raise EmptyCollectionError(f"{path}: holds no image data in any of its {len(hdul)} HDUs")
    specs = [hdu] if isinstance(hdu, (int, str)) else list(hdu)
    if not specs:
        raise SourceNotFoundError(f"{path}: an empty list of HDUs was asked for")
    return [_hdu_index(hdul, spec, path) for spec in specs]


def _hdu_index(hdul: Any, spec: int | str, path: Path) -> int:
    available = [hdu_label(h, i) for i, h in enumerate(hdul)]
    try:
        index = hdul.index_of(spec if not (isinstance(spec, str) and spec.isdigit()) else int(spec))
    except (KeyError, IndexError, TypeError):
        raise SourceNotFoundError(
            f"{path}: no HDU {spec!r}; it has {available} (give an index or extension name)"
        ) from None
    if not 0 <= index < len(hdul):
        raise SourceNotFoundError(f"{path}: no HDU {spec!r}; it has {available}")
    if not is_image_hdu(hdul[index]):
        raise SourceNotFoundError(
            f"{path}: HDU {spec!r} ({type(hdul[index]).__name__}) holds no image data; "
            f"image HDUs: {[available[i] for i, h in enumerate(hdul) if is_image_hdu(h)]}"
        )
    return index


def common_shape(hdul: Any, selected: list[int], path: Path) -> tuple[int, ...]:
    """The one 2-D or 3-D shape the selected HDUs share (they are channels of one image)."""
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


def hdu_data(hdul: Any, index: int, path: Path) -> np.ndarray:
    """The data of HDU ``index`` as float32; a failed read is a ``CorruptFileError`` naming ``path``."""
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
