"""Cutting sources out of tiles: one band's cutout by array slices (astropy's ``overlap_slices``, as
``Cutout2D`` cuts), or resampled with ``reproject`` onto the first band's cutout grid when the band's
tile lies on another pixel grid.  Pixels beyond a tile's edge are NaN (normalisation treats them as
background) and the cutout is flagged as padded.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from .tiles import Tile

RESAMPLE_MARGIN = 4  # extra input pixels each side, so interpolation at the cutout's edge has neighbours


def cutout_slices(shape: tuple[int, int], x: float, y: float, size: int) -> tuple[tuple, tuple]:
    """The tile's slices and the cutout's slices of a ``size`` x ``size`` cutout centred on pixel (x, y),
    as ``Cutout2D`` cuts (astropy's ``overlap_slices``, partial overlap allowed): ``out[small] = tile[large]``."""
    from astropy.nddata.utils import overlap_slices

    return overlap_slices(shape, (size, size), (y, x), mode="partial")


def cutout_grid(tile: Tile, x: float, y: float, size: int) -> Any:
    """The ``Cutout2D`` of a ``size`` x ``size`` cutout centred on (x, y) of ``tile``, without its pixels:
    its ``wcs`` and ``origin_original`` place the cutout on the sky and on the tile."""
    from astropy.nddata import Cutout2D

    shadow = np.broadcast_to(np.float32(0), tile.shape)  # no memory: Cutout2D needs only its shape here
    return Cutout2D(shadow, (x, y), (size, size), wcs=tile.wcs, mode="partial", fill_value=0.0, copy=False)


def cut_resampled(pixels: Any, tile: Tile, ra: float, dec: float, target: Any, size: int,
                  out: np.ndarray) -> bool:
    """Fill ``out`` with band ``tile``'s pixels resampled onto ``target`` (the first band's ``Cutout2D``).

    Returns whether any output pixel is NaN: beyond ``tile`` (or blank in it).

    Raises
    ------
    MissingDependencyError
        When ``reproject`` is not installed, naming the tile and the fix.
    """
    try:
        from reproject import reproject_interp
    except ImportError as err:
        raise MissingDependencyError(
            f"{tile.path}: this band lies on another pixel grid than the first band's tiles, and resampling it "
            "needs the 'reproject' package: pip install 'napari-anomalymatch[mosaic]' (or give bands on one grid)"
        ) from err
    scale = target.wcs.proj_plane_pixel_scales()[0].to_value("deg") * 3600 / tile.pixel_scale_arcsec()
    side = int(np.ceil(size * scale * 1.5)) + 2 * RESAMPLE_MARGIN  # 1.5: room for a rotated grid
    x, y = (float(v) for v in tile.wcs.world_to_pixel_values(ra, dec))
    region = np.full((side, side), np.nan, dtype=np.float32)
    large, small = cutout_slices(tile.shape, x, y, side)
    region[small] = pixels[large]
    source_wcs = cutout_grid(tile, x, y, side).wcs
    resampled, footprint = reproject_interp((region, source_wcs),
                                            target.wcs, shape_out=(size, size))
    resampled[footprint == 0] = np.nan
    out[...] = resampled
    return not bool(np.isfinite(resampled).all())  # beyond the tile (or blank in it)


def combine_bands(bands: np.ndarray, recipe: list[int | str]) -> np.ndarray:
    """``(B, ..., H, W)`` band cutouts -> ``(..., H, W, C)`` channels: each channel a band number (0-based)
    or ``'mean'`` (the NaN-ignoring mean of all bands)."""
    if "mean" not in recipe:
        return np.moveaxis(bands[recipe], 0, -1)
    channels = []
    for item in recipe:
        if item == "mean":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" beyond a tile's edge
                channels.append(np.nanmean(bands, axis=0))
        else:
            channels.append(bands[int(item)])
    return np.stack(channels, axis=-1).astype(np.float32, copy=False)
