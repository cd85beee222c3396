"""Montages of candidates: one PNG of the top of a ranking, bordered by label."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..labels import ANOMALY, NORMAL, UNSURE

BORDER_COLOURS = {ANOMALY: (230, 50, 50), NORMAL: (60, 160, 255), UNSURE: (240, 200, 40)}
UNLABELLED_COLOUR = (90, 90, 90)


def montage(images: np.ndarray, labels: Sequence[int] | None = None, columns: int = 5,
            border: int = 3) -> np.ndarray:
    """Tile ``(N, H, W, C)`` [0, 1] images into one uint8 RGB image with coloured borders."""
    n, h, w, c = images.shape
    rows = max(1, -(-n // columns))
    tile_h, tile_w = h + 2 * border, w + 2 * border
    canvas = np.zeros((rows * tile_h, columns * tile_w, 3), dtype=np.uint8)
    rgb = _as_rgb(images)
    for i in range(n):
        top, left = (i // columns) * tile_h, (i % columns) * tile_w
        colour = BORDER_COLOURS.get(labels[i], UNLABELLED_COLOUR) if labels is not None else UNLABELLED_COLOUR
        canvas[top:top + tile_h, left:left + tile_w] = colour
        canvas[top + border:top + border + h, left + border:left + border + w] = rgb[i]
    return canvas


def save_gallery(path: Path, images: np.ndarray, captions: Sequence[str],
                 labels: Sequence[int] | None = None, columns: int = 5, tile: int = 128) -> Path:
    """Write a captioned montage PNG of ``images`` (each resized to ``tile`` pixels)."""
    from PIL import Image, ImageDraw

    resized = np.stack([_resize(image, tile) for image in images]) if len(images) else images
    grid = Image.fromarray(montage(resized, labels, columns))
    draw = ImageDraw.Draw(grid)
    border = 3
    for i, caption in enumerate(captions):
        top = (i // columns) * (tile + 2 * border) + border + 2
        left = (i % columns) * (tile + 2 * border) + border + 2
        draw.text((left + 1, top + 1), caption, fill=(0, 0, 0))
        draw.text((left, top), caption, fill=(255, 255, 255))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def _as_rgb(images: np.ndarray) -> np.ndarray:
    x = np.clip(images, 0.0, 1.0)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] != 3:
        x = np.repeat(x.mean(axis=-1, keepdims=True), 3, axis=-1)
    return (x * 255 + 0.5).astype(np.uint8)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    rgb = _as_rgb(image[None])[0]
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR)) / 255.0
