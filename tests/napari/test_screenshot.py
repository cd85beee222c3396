"""What the viewer draws: the candidate is rendered, and its frame turns red after 'a'."""

from __future__ import annotations

import numpy as np

from napari_anomalymatch.core.labels import ANOMALY, NORMAL
from napari_anomalymatch.core.review.gallery import BORDER_COLOURS, UNLABELLED_COLOUR

from .conftest import press


def where_colour(shot: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> np.ndarray:
    """Mask of the screenshot's pixels within ``tolerance`` of ``colour`` in every channel."""
    return (np.abs(shot[..., :3].astype(int) - colour) <= tolerance).all(axis=-1)


def count_colour(shot: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(where_colour(shot, colour).sum())


def test_candidate_is_drawn_and_its_border_follows_the_label(qtbot, viewer, controller):
    controller.queue.advance_on_label = False  # stay on the candidate to see its frame change
    controller.toggle_gallery()  # the candidate alone: no gallery borders in the picture
    before = viewer.screenshot(canvas_only=True, flash=False)
    assert before.shape[0] > 100 and before.shape[1] > 100
    assert before[..., :3].std() > 10  # not blank: a blob on a noisy background
    red, blue = BORDER_COLOURS[ANOMALY], BORDER_COLOURS[NORMAL]
    grey_before = count_colour(before, UNLABELLED_COLOUR)
    assert grey_before > 400 and count_colour(before, red) == 0

    press(qtbot, viewer, "A")
    after = viewer.screenshot(canvas_only=True, flash=False)
    frame = count_colour(after, red)  # the frame, now red; the grey left is image content
    assert frame > 400
    assert abs((grey_before - count_colour(after, UNLABELLED_COLOUR)) - frame) < 0.05 * frame
    red_now, grey_then = where_colour(after, red), where_colour(before, UNLABELLED_COLOUR)
    assert not (red_now & ~grey_then).any()  # red exactly where the grey frame was

    press(qtbot, viewer, "N")
    normal = viewer.screenshot(canvas_only=True, flash=False)
    assert abs(count_colour(normal, blue) - frame) < 0.05 * frame and count_colour(normal, red) == 0


def test_gallery_tiles_are_bordered_by_label(qtbot, viewer, controller):
    from napari_anomalymatch._napari.review_layers import GALLERY_LAYER

    press(qtbot, viewer, "A", "N")
    gallery = viewer.layers[GALLERY_LAYER].data
    grid = controller.layers.grid
    rows, cols = grid.cell(0)
    assert tuple(gallery[rows, cols][grid.border - 1, grid.pitch // 2]) == BORDER_COLOURS[ANOMALY]
    rows, cols = grid.cell(1)
    assert tuple(gallery[rows, cols][grid.border - 1, grid.pitch // 2]) == BORDER_COLOURS[NORMAL]
    rows, cols = grid.cell(2)  # the current tile is ringed in white
    assert tuple(gallery[rows, cols][0, grid.pitch // 2]) == (255, 255, 255)
