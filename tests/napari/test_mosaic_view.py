"""The mosaic beside the review: candidates as points on the tile, a real click shows one in the review,
stepping the review centres the mosaic, and labels given in the mosaic's viewer are stored."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch._napari.mosaic_layer import MosaicView, viewer_camera

from ..conftest import tiny_config
from ..core.mosaics import tile_wcs as mosaic_wcs
from ..core.mosaics import write_catalogue, write_tile
from .conftest import press

SPOTS = [(30.3, 40.2), (90.6, 70.1), (150.2, 30.4), (200.7, 110.3), (60.1, 120.8), (170.4, 150.6)]


@pytest.fixture
def mosaic_session(tmp_path, widget):
    """A 240 x 180 px tile with a star at each spot, its catalogue, and a session on their cutouts."""
    shape = (180, 240)
    y, x = np.mgrid[:shape[0], :shape[1]]
    rng = np.random.default_rng(0)
    data = rng.normal(10, 1, shape).astype(np.float32)
    for sx, sy in SPOTS:
        data += 200 * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 8.0)
    tile = write_tile(tmp_path / "tile_g.fits", data, mosaic_wcs(shape=shape))
    ra, dec = mosaic_wcs(shape=shape).pixel_to_world_values(*np.array(SPOTS).T)
    catalogue = write_catalogue(tmp_path / "stars.csv", ra, dec)
    widget.controller.load(tmp_path / "session", catalogue, reader="mosaic",
                           options={"mosaic": [str(tile)], "cutout_size": "16px"}, config=tiny_config())
    return widget.controller, tile


def _canvas_point(viewer, row: float, column: float):
    """Where the world point (row, column) is drawn on the viewer's canvas, in widget pixels."""
    from qtpy.QtCore import QPoint

    canvas = viewer.window._qt_viewer.canvas.native
    centre_row, centre_column = viewer_camera(viewer).center[-2:]
    zoom = viewer_camera(viewer).zoom
    return QPoint(int(round(canvas.width() / 2 + (column - centre_column) * zoom)),
                  int(round(canvas.height() / 2 + (row - centre_row) * zoom)))


def test_a_click_on_a_candidate_shows_it_and_steps_centre_the_mosaic(mosaic_session, make_napari_viewer, qtbot):
    from qtpy.QtCore import Qt

    controller, tile = mosaic_session
    mosaic_viewer = make_napari_viewer(show=True)
    view = MosaicView(controller, tile, mosaic_viewer)
    assert len(view.points) == len(SPOTS)
    np.testing.assert_allclose(np.sort(view.points.positions[:, 1]), np.sort([s[0] for s in SPOTS]), atol=0.01)
    assert view.image.metadata["wcs"] is not None and mosaic_viewer.layers[0].data.shape == (180, 240)

    mosaic_viewer.reset_view()
    target = int(np.flatnonzero(view.points.indices == 3)[0])  # image 3: the star at (200.7, 110.3)
    row, column = view.points.positions[target]
    canvas = mosaic_viewer.window._qt_viewer.canvas.native
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=_canvas_point(mosaic_viewer, row, column))
    qtbot.waitUntil(lambda: controller.current is not None and controller.current.index == 3, timeout=3000)

    controller.next()
    now = controller.current.index
    np.testing.assert_allclose(viewer_camera(mosaic_viewer).center[-2:], view.points.place_of(now), atol=1e-6)

    press(qtbot, mosaic_viewer, "A")  # labelled from the mosaic's viewer
    labelled, labels = controller.session.labelled()
    assert now in labelled.tolist()
    view.close()
