"""The review's candidates placed on a mosaic tile: where each lies in the tile's pixels (its WCS), its
rank, score and label colour, for a viewer to draw as points and to find the candidate a click picked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.base import ImageCollection
from ..io.tiles import Tile
from ..labels import UNLABELED
from .sky import sky_positions
from .tiles import label_colour

SMALLEST, LARGEST = 4.0, 12.0  # diameters in tile pixels, last candidate shown and first: small, so sources show


@dataclass(frozen=True)
class MosaicPoints:
    """Candidates on one tile: (row, column) pixel positions, collection indices, 1-based ranks, scores,
    labels and RGB label colours (0..1), sizes by rank."""

    positions: np.ndarray
    indices: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    colours: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def place_of(self, index: int) -> np.ndarray | None:
        """The (row, column) of collection image ``index``, or None when it is not on the tile."""
        found = np.flatnonzero(self.indices == index)
        return self.positions[found[0]] if found.size else None


def candidate_points(tile: Tile, collection: ImageCollection, ranking: np.ndarray, scores: np.ndarray,
                     labels: dict[int, int], top: int = 1000) -> MosaicPoints:
    """The first ``top`` of ``ranking`` that lie on ``tile``, by their RA/Dec and the tile's WCS.

    ``scores`` is indexed by collection index (NaN: unscored); ``labels`` maps labelled indices to labels.
    """
    indices = np.asarray(ranking[:top], dtype=np.int64)
    ra, dec = sky_positions(collection, indices)
    known = np.isfinite(ra) & np.isfinite(dec)
    x, y = np.full(len(indices), np.nan), np.full(len(indices), np.nan)
    if known.any():
        x[known], y[known] = tile.wcs.world_to_pixel_values(ra[known], dec[known])
    ny, nx = tile.shape
    inside = known & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    ranks = np.flatnonzero(inside) + 1
    chosen = indices[inside]
    label_codes = np.array([labels.get(int(i), UNLABELED) for i in chosen], dtype=np.int64)
    return MosaicPoints(np.column_stack([y[inside], x[inside]]), chosen, ranks,
                        np.asarray(scores, dtype=np.float64)[chosen] if len(scores) else np.full(len(chosen), np.nan),
                        label_codes, _colours(label_codes), _sizes(ranks, top))


def _colours(labels: np.ndarray) -> np.ndarray:
    return np.array([label_colour(int(label)) for label in labels], dtype=np.float64).reshape(-1, 3) / 255.0


def _sizes(ranks: np.ndarray, top: int) -> np.ndarray:
    """Larger for better ranks: the first candidate ``LARGEST`` pixels across, the ``top``-th ``SMALLEST``."""
    share = 1.0 - (ranks - 1) / max(top - 1, 1)
    return SMALLEST + (LARGEST - SMALLEST) * share

