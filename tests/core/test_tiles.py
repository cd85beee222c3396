"""Framed candidates and the gallery grid: geometry, colours, repainting in place."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.labels import ANOMALY, NORMAL, UNLABELED
from napari_anomalymatch.core.review.gallery import BORDER_COLOURS, UNLABELLED_COLOUR
from napari_anomalymatch.core.review.tiles import CURRENT_COLOUR, TileGrid, framed, paint_border, resize_rgb


def test_frame_surrounds_the_image_in_the_label_colour():
    image = np.full((10, 12, 3), 7, dtype=np.uint8)
    out = framed(image, BORDER_COLOURS[ANOMALY], 2)
    assert out.shape == (14, 16, 3)
    assert (out[2:12, 2:14] == 7).all()
    assert (out[0, :] == BORDER_COLOURS[ANOMALY]).all() and (out[:, -1] == BORDER_COLOURS[ANOMALY]).all()
    paint_border(out, BORDER_COLOURS[NORMAL], 2)
    assert (out[1, 5] == BORDER_COLOURS[NORMAL]).all() and (out[2:12, 2:14] == 7).all()


def test_grid_places_tiles_and_finds_them_again():
    grid = TileGrid(columns=3, rows=2, tile=4, border=2)
    assert grid.size == 6 and grid.shape == (16, 24, 3)
    tiles = np.stack([np.full((4, 4, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    canvas = grid.compose(tiles, [ANOMALY, NORMAL, UNLABELED, UNLABELED, NORMAL], current=1)
    for slot in range(5):
        rows, cols = grid.cell(slot)
        assert (canvas[rows, cols][2:6, 2:6] == 10 * (slot + 1)).all()
        centre_y, centre_x = rows.start + 4, cols.start + 4
        assert grid.slot_at(centre_y, centre_x) == slot
    assert (canvas[grid.cell(5)] == 0).all()  # the empty slot stays black
    assert tuple(canvas[grid.cell(0)][0, 0]) == BORDER_COLOURS[ANOMALY]
    current = canvas[grid.cell(1)]
    assert tuple(current[0, 0]) == CURRENT_COLOUR and tuple(current[1, 3]) == BORDER_COLOURS[NORMAL]
    assert tuple(canvas[grid.cell(2)][0, 0]) == UNLABELLED_COLOUR
    assert grid.slot_at(-1, 3) is None and grid.slot_at(3, 24.5) is None
    grid.paint(canvas, 2, ANOMALY, False)
    assert tuple(canvas[grid.cell(2)][1, 1]) == BORDER_COLOURS[ANOMALY]
    with pytest.raises(ConfigError, match="7 tiles do not fit a 2x3 gallery"):
        grid.compose(np.zeros((7, 4, 4, 3), np.uint8), [UNLABELED] * 7)


def test_resize_averages_when_shrinking_by_whole_factors():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[:4, :4] = 200
    small = resize_rgb(image, 2)
    assert small.shape == (2, 2, 3) and small[0, 0, 0] == 200 and small[1, 1, 0] == 0
    assert resize_rgb(image, 5).shape == (5, 5, 3)
    assert resize_rgb(image, 8) is image
