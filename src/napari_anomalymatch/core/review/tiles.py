"""Framed candidates and the review gallery: uint8 RGB canvases with label-coloured borders.

A frame's colour says the image's label (``gallery.BORDER_COLOURS``); the
gallery's current tile is ringed with ``CURRENT_COLOUR``.  Borders are
repainted in place, so changing a label or moving the cursor never re-renders
an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .gallery import BORDER_COLOURS, UNLABELLED_COLOUR

CURRENT_COLOUR = (255, 255, 255)


def label_colour(label: int) -> tuple[int, int, int]:
    """The border colour of a label code (unlabelled: grey)."""
    return BORDER_COLOURS.get(int(label), UNLABELLED_COLOUR)


def frame_width(height: int) -> int:
    """A frame a few percent of the image: visible at 32 px, not heavy at 512 px."""
    return max(2, int(round(height / 24)))


def framed(rgb: np.ndarray, colour: Sequence[int], width: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 image inside a border of ``width`` pixels of ``colour``."""
    h, w = rgb.shape[:2]
    out = np.empty((h + 2 * width, w + 2 * width, 3), dtype=np.uint8)
    out[width:width + h, width:width + w] = rgb
    paint_border(out, colour, width)
    return out


def paint_border(canvas: np.ndarray, colour: Sequence[int], width: int) -> None:
    """Paint the outer ``width`` pixels of ``canvas`` (a view is fine) in ``colour``."""
    colour = np.asarray(colour, dtype=np.uint8)
    canvas[:width] = colour
    canvas[-width:] = colour
    canvas[:, :width] = colour
    canvas[:, -width:] = colour


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 RGB image to ``size`` x ``size`` (box-averaged when shrinking)."""
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb))
    if h == w and h % size == 0:
        return np.asarray(image.reduce(h // size))
    return np.asarray(image.resize((size, size), Image.BOX if h > size else Image.BILINEAR))


@dataclass(frozen=True)
class TileGrid:
    """Geometry of a ``rows`` x ``columns`` gallery of square tiles with borders."""

    columns: int = 5
    rows: int = 5
    tile: int = 64
    border: int = 4

    def __post_init__(self) -> None:
        for name in ("columns", "rows", "tile", "border"):
            if getattr(self, name) < 1:
                raise ConfigError(f"gallery {name} must be at least 1; got {getattr(self, name)!r}")

    @property
    def size(self) -> int:
        """Tiles per page."""
        return self.columns * self.rows

    @property
    def pitch(self) -> int:
        return self.tile + 2 * self.border

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.rows * self.pitch, self.columns * self.pitch, 3

    def cell(self, slot: int) -> tuple[slice, slice]:
        """Canvas rows and columns of tile ``slot`` including its border."""
        top, left = (slot // self.columns) * self.pitch, (slot % self.columns) * self.pitch
        return slice(top, top + self.pitch), slice(left, left + self.pitch)

    def slot_at(self, y: float, x: float) -> int | None:
        """The tile under canvas position ``(y, x)``, or None outside the grid."""
        row, column = int(np.floor(y / self.pitch)), int(np.floor(x / self.pitch))
        if 0 <= row < self.rows and 0 <= column < self.columns:
            return row * self.columns + column
        return None

    def compose(self, tiles: np.ndarray, labels: Sequence[int], current: int | None = None) -> np.ndarray:
        """A canvas of up to ``size`` uint8 RGB tiles ``(n, tile, tile, 3)``; empty slots are black."""
        if len(tiles) > self.size:
            raise ConfigError(f"{len(tiles)} tiles do not fit a {self.rows}x{self.columns} gallery")
        canvas = np.zeros(self.shape, dtype=np.uint8)
        b = self.border
        for slot, tile in enumerate(tiles):
            rows, cols = self.cell(slot)
            canvas[rows, cols][b:b + self.tile, b:b + self.tile] = tile
            self.paint(canvas, slot, labels[slot], current == slot)
        return canvas

    def paint(self, canvas: np.ndarray, slot: int, label: int, is_current: bool) -> None:
        """Repaint tile ``slot``'s border in its label's colour, ringed in white when current."""
        rows, cols = self.cell(slot)
        cell = canvas[rows, cols]
        paint_border(cell, label_colour(label), self.border)
        if is_current:
            paint_border(cell, CURRENT_COLOUR, max(1, self.border // 2))
