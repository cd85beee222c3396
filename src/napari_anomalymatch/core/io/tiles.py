"""Survey mosaics on disk: the FITS tiles of each band, their celestial WCS, and which tile holds a position.

A band is one glob (or file) of tiles; each tile is the first 2-D image HDU of its file (tile-compressed
HDUs too) with a celestial WCS in its header.  Nothing here reads pixels but ``TilePixels``, which reads
only the rows and columns asked for (a memory map, or astropy's ``section`` for scaled or compressed data).
"""

from __future__ import annotations

import glob
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeMismatchError, SourceNotFoundError
from .fitsfile import FitsFile, select_hdus
from .paths import FITS_SUFFIXES, has_suffix


@dataclass(frozen=True)
class Tile:
    """One FITS tile of one band: its file, HDU, pixel shape ``(ny, nx)`` and celestial WCS."""

    path: Path
    hdu: int
    shape: tuple[int, int]
    wcs: Any  # astropy.wcs.WCS, celestial axes only
    band: int

    def same_grid(self, other: Tile) -> bool:
        """Whether ``other``'s pixels are this tile's pixels (same shape and WCS): no resampling needed."""
        return self.shape == other.shape and bool(self.wcs.wcs.compare(other.wcs.wcs, tolerance=1e-9))

    def pixel_scale_arcsec(self) -> float:
        """The tile's mean pixel side in arcseconds."""
        from astropy.wcs.utils import proj_plane_pixel_scales

        return float(np.mean(proj_plane_pixel_scales(self.wcs)) * 3600.0)


def band_files(pattern: str, band: int) -> list[Path]:
    """The FITS files a band's pattern (a glob, a file or a folder) names, sorted.

    Raises
    ------
    SourceNotFoundError
        No FITS file matches, naming the pattern and the band.
    """
    text = str(Path(pattern).expanduser())
    if glob.has_magic(text):
        paths = sorted(Path(p) for p in glob.glob(text, recursive=True) if has_suffix(p, FITS_SUFFIXES))
    elif Path(text).is_dir():
        paths = sorted(p for p in Path(text).iterdir() if has_suffix(p, FITS_SUFFIXES))
    else:
        paths = [Path(text)] if Path(text).exists() else []
    if not paths:
        raise SourceNotFoundError(f"{pattern}: no FITS tile matches for band {band + 1}; expected a glob such as "
                                  f"'tiles/*_g.fits', a FITS file or a folder of them ({', '.join(FITS_SUFFIXES)})")
    return paths


def open_band(pattern: str, band: int) -> list[Tile]:
    """The tiles of band ``band`` (0-based) named by ``pattern``, each with its WCS checked."""
    return [read_tile(path, band) for path in band_files(pattern, band)]


def read_tile(path: Path, band: int) -> Tile:
    """One tile's header: its first 2-D image HDU and celestial WCS.

    Raises
    ------
    ConfigError
        The HDU has no WCS, or no celestial axes, naming the file and the fix.
    ShapeMismatchError
        The image is not 2-D.
    """
    from astropy.wcs import FITSFixedWarning

    with FitsFile(path) as hdul:
        index = select_hdus(hdul, None, path)[0]
        header = hdul[index].header
        shape = tuple(int(n) for n in hdul[index].shape)
    if len(shape) != 2:
        raise ShapeMismatchError(f"{path}: HDU {index} holds data of shape {shape}; a mosaic tile is one 2-D "
                                 "image per band (give each band's tiles as their own --mosaic)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # old-style keywords astropy mends itself
        wcs = _header_wcs(header, path, index)
    return Tile(Path(path), index, (shape[0], shape[1]), wcs, band)


def _header_wcs(header: Any, path: Path, index: int) -> Any:
    from astropy.wcs import WCS

    if not any(key in header for key in ("CTYPE1", "CTYPE2")):
        raise ConfigError(f"{path}: HDU {index} has no WCS (no CTYPE1/CTYPE2, CRVAL, CRPIX keywords); a mosaic "
                          "tile needs the survey's calibrated WCS to place catalogue positions. Use the archive's "
                          "calibrated tile, or add a WCS (e.g. with astrometry.net)")
    try:
        wcs = WCS(header, naxis=2)
    except Exception as err:  # astropy raises many kinds for damaged WCS keywords
        raise ConfigError(f"{path}: HDU {index} has a WCS astropy cannot read ({type(err).__name__}: {err}); "
                          "mend its CTYPE/CRVAL/CRPIX/CD keywords") from err
    if not wcs.has_celestial:
        ctypes = [header.get("CTYPE1"), header.get("CTYPE2")]
        raise ConfigError(f"{path}: HDU {index}'s WCS has no celestial axes (CTYPE {ctypes}); expected sky axes "
                          "such as RA---TAN/DEC--TAN, so that RA/Dec can be placed on it")
    return wcs.celestial


@dataclass(frozen=True)
class Placement:
    """Where each catalogue position lies in one band: tile number (-1: in none) and pixel x, y."""

    tile: np.ndarray
    x: np.ndarray
    y: np.ndarray


def place(tiles: list[Tile], ra: np.ndarray, dec: np.ndarray) -> Placement:
    """For each position the tile holding it; where tiles overlap, the one it lies deepest inside
    (so its cutout is padded least).  Positions within half a pixel of a tile's data count as inside."""
    n = len(ra)
    best = np.full(n, -1, dtype=np.int64)
    depth = np.full(n, -np.inf)
    xs, ys = np.full(n, np.nan), np.full(n, np.nan)
    for number, tile in enumerate(tiles):
        near = np.flatnonzero(_near(tile, ra, dec))
        if near.size == 0:
            continue
        x, y = tile.wcs.world_to_pixel_values(ra[near], dec[near])
        ny, nx = tile.shape
        inside_by = np.minimum.reduce([x + 0.5, nx - 0.5 - x, y + 0.5, ny - 0.5 - y])
        better = np.isfinite(inside_by) & (inside_by >= 0) & (inside_by > depth[near])
        chosen = near[better]
        best[chosen], depth[chosen] = number, inside_by[better]
        xs[chosen], ys[chosen] = x[better], y[better]
    return Placement(best, xs, ys)


def _near(tile: Tile, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Positions within the tile's circumscribed circle: a projection far from its centre can fold
    distant positions back onto the tile (TAN maps the antipode too)."""
    from astropy.coordinates import angular_separation

    ny, nx = tile.shape
    corners_x = np.array([-0.5, nx - 0.5, -0.5, nx - 0.5, (nx - 1) / 2])
    corners_y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5, (ny - 1) / 2])
    c_ra, c_dec = tile.wcs.pixel_to_world_values(corners_x, corners_y)
    centre = np.radians([c_ra[-1], c_dec[-1]])
    radius = angular_separation(centre[0], centre[1], np.radians(c_ra[:4]), np.radians(c_dec[:4])).max()
    finite = np.isfinite(ra) & np.isfinite(dec)
    separation = np.full(len(ra), np.inf)
    separation[finite] = angular_separation(centre[0], centre[1], np.radians(ra[finite]), np.radians(dec[finite]))
    return separation <= radius * 1.01


class TilePixels:
    """A tile's pixels as an array-like that reads only what is sliced (float32).

    Uncompressed, unscaled data are memory-mapped; scaled (BZERO/BSCALE) or tile-compressed data are
    read through astropy's ``section``, which decompresses and scales only the tiles touched.
    """

    def __init__(self, tile: Tile) -> None:
        self.tile = tile
        self.shape = tile.shape
        self.ndim = 2
        self.dtype = np.dtype(np.float32)
        self._file = FitsFile(tile.path, memmap=True)
        hdu = self._file[tile.hdu]
        from astropy.io import fits

        if any(key in hdu.header for key in ("BZERO", "BSCALE", "BLANK")) or isinstance(hdu, fits.CompImageHDU):
            self._file.close()  # astropy scales or decompresses only without a memory map
            self._file = FitsFile(tile.path, memmap=False)
            self._pixels = self._file[tile.hdu].section
        else:
            self._pixels = hdu.data

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self._pixels[key], dtype=np.float32)

    def array(self) -> np.ndarray:
        """The whole tile: the memory map itself (nothing read), or, compressed or scaled, read whole."""
        return self._pixels if isinstance(self._pixels, np.ndarray) else self[:, :]

    def gather(self, corner_y: np.ndarray, corner_x: np.ndarray, size: int) -> np.ndarray:
        """``(N, size, size)`` float32 squares whose corners are (``corner_y``, ``corner_x``), all inside the
        tile, copied in the file's type and converted once (a slice copies whole rows; a fancy index is slower)."""
        pixels = self._pixels
        squares = np.empty((len(corner_y), size, size), dtype=getattr(pixels, "dtype", np.float32))
        for position, (y, x) in enumerate(zip(corner_y.tolist(), corner_x.tolist())):
            squares[position] = pixels[y:y + size, x:x + size]
        return squares.astype(np.float32, copy=False)

    def close(self) -> None:
        self._file.close()
