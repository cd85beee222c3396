"""Small survey mosaics with known WCS, written by the tests: two tiles side by side per band on one
grid (bands 1 and 2), a third band on another grid, and catalogues of positions placed on them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

CENTRE = (150.0, 2.0)  # RA, Dec of the mosaic's reference point, degrees
SCALE = 0.2 / 3600  # degrees a pixel: 0.2 arcsec
TILE = (60, 80)  # ny, nx of each tile


def tile_wcs(x_offset: float = 0.0, scale: float = SCALE, shape: tuple[int, int] = TILE,
             rotation_deg: float = 0.0) -> WCS:
    """A TAN WCS whose pixel grid continues the first tile's, shifted ``x_offset`` pixels right."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(CENTRE)
    wcs.wcs.crpix = [(shape[1] + 1) / 2 - x_offset, (shape[0] + 1) / 2]
    angle = np.radians(rotation_deg)
    wcs.wcs.cd = scale * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return wcs


def coded_pixels(band: int, tile: int, shape: tuple[int, int] = TILE) -> np.ndarray:
    """Pixel values that say where they come from: band * 1e6 + tile * 1e5 + y * 100 + x."""
    y, x = np.mgrid[:shape[0], :shape[1]]
    return (band * 1e6 + tile * 1e5 + y * 100 + x).astype(np.float32)


def write_tile(path: Path, data: np.ndarray, wcs: WCS | None) -> Path:
    header = wcs.to_header() if wcs is not None else fits.Header()
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return path


def write_two_band_mosaic(folder: Path) -> list[str]:
    """Bands g and r, each two tiles side by side on one grid; returns the bands' globs."""
    folder.mkdir(parents=True, exist_ok=True)
    for band, name in enumerate("gr", start=1):
        for tile in range(2):
            write_tile(folder / f"t{tile}_{name}.fits", coded_pixels(band, tile), tile_wcs(tile * TILE[1]))
    return [str(folder / "t*_g.fits"), str(folder / "t*_r.fits")]


def linear_band(folder: Path) -> tuple[str, WCS]:
    """Band 3: one tile on a coarser, rotated grid covering both tiles, its pixels linear in its pixel
    coordinates (x + 1000 y), so that resampled values can be checked exactly."""
    shape = (120, 200)  # 36 x 60 arcsec about the reference point: both 12 x 32 arcsec tiles lie inside
    wcs = tile_wcs(0.0, scale=0.3 / 3600, shape=shape, rotation_deg=10.0)
    y, x = np.mgrid[:shape[0], :shape[1]]
    write_tile(folder / "wide_i.fits", (x + 1000.0 * y).astype(np.float32), wcs)
    return str(folder / "wide_i.fits"), wcs


def positions(pixels: list[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec of (x, y, tile) pixel positions on the first band's tiles."""
    ra, dec = [], []
    for x, y, tile in pixels:
        r, d = tile_wcs(tile * TILE[1]).pixel_to_world_values(x, y)
        ra.append(float(r))
        dec.append(float(d))
    return np.array(ra), np.array(dec)


def write_catalogue(path: Path, ra: np.ndarray, dec: np.ndarray, ids: list[str] | None = None,
                    extra: dict[str, list] | None = None) -> Path:
    ids = ids or [f"src{i}" for i in range(len(ra))]
    columns = {"id": ids, "RA": list(ra), "DEC": list(dec), **(extra or {})}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values()))
    return path
