"""A mosaic session from the dock: the Data panel's mosaic fields (or an opened FITS layer as a band, or
sources detected in a worker) make it, a bad catalogue or tile is one notification, and the dock's button
and the Python API show the candidates on the tile, where a click shows one in the review."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from astropy.table import Table

from napari_anomalymatch._napari.api import AnomalyMatchApp
from napari_anomalymatch.cli import main
from napari_anomalymatch.core.errors import ConfigError, SessionError
from napari_anomalymatch.core.io import detect
from napari_anomalymatch.core.io.detect import DETECTED_CATALOGUE, DetectConfig, saved_detection
from napari_anomalymatch.core.labels import ANOMALY
from napari_anomalymatch.core.session import Session

from ..core.mosaics import tile_wcs, write_catalogue, write_tile
from .conftest import notifications_during, tiny_config
from .test_mosaic_view import SPOTS, _canvas_point

SHAPE = (180, 240)
OUTSIDE = (400.0, 300.0)  # a catalogue position beyond the tile: left out of the session


def write_band(path, brightness: float):
    """A tile with a star at each of ``SPOTS``."""
    y, x = np.mgrid[:SHAPE[0], :SHAPE[1]]
    data = np.random.default_rng(int(brightness)).normal(10, 1, SHAPE).astype(np.float32)
    for sx, sy in SPOTS:
        data += brightness * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 8.0)
    return write_tile(path, data, tile_wcs(shape=SHAPE))


@pytest.fixture
def sky(tmp_path):
    """Bands g and r (one tile each), and a catalogue of the stars and one position outside the tile."""
    tiles = [write_band(tmp_path / "m_g.fits", 200.0), write_band(tmp_path / "m_r.fits", 300.0)]
    ra, dec = tile_wcs(shape=SHAPE).pixel_to_world_values(*np.array([*SPOTS, OUTSIDE]).T)
    catalogue = write_catalogue(tmp_path / "stars.csv", ra, dec)
    return tiles, catalogue


@pytest.fixture
def panel(widget):
    widget.controller.defaults = tiny_config()
    return widget.data_panel


def fill_mosaic(panel, tmp_path, catalogue) -> None:
    panel.session_dir.line_edit.value = str(tmp_path / "sky")
    panel.reader.value = "mosaic"
    panel.source.line_edit.value = str(catalogue)
    panel.mosaic.value = f"{tmp_path}/*_g.fits; {tmp_path}/*_r.fits"
    panel.cutout_size.value = "16px"
    panel.channels.value = "1,2,2"


def click(button) -> list[str]:
    return notifications_during(lambda: button.clicked.emit())


def test_the_mosaic_fields_make_a_session_and_the_button_shows_it_on_the_tile(panel, widget, sky, tmp_path, qtbot):
    from qtpy.QtCore import Qt

    tiles, catalogue = sky
    fill_mosaic(panel, tmp_path, catalogue)
    assert not panel.show_mosaic.enabled
    assert click(panel.load_button) == []
    controller = widget.controller
    collection = controller.session.collection
    assert len(collection) == len(SPOTS) and collection.shape == (16, 16, 3)  # the position outside is left out
    assert controller.current is not None and "images of 16x16x3" in panel.status.value
    assert panel.show_mosaic.enabled

    assert click(panel.show_mosaic) == []
    view = panel.mosaic_view
    try:
        assert view.tile.path == tiles[0] and len(view.points) == len(SPOTS)
        view.viewer.reset_view()
        wanted = next(i for i in view.points.indices.tolist() if i != controller.current.index)
        place = view.points.positions[int(np.flatnonzero(view.points.indices == wanted)[0])]
        canvas = view.viewer.window._qt_viewer.canvas.native
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=_canvas_point(view.viewer, *place))
        qtbot.waitUntil(lambda: controller.current.index == wanted, timeout=3000)

        train = dataclasses.replace(controller.session.config.train, iterations=3)
        controller.configure(train=train)  # new settings, the same session: the view stays
        assert panel.mosaic_view is view
        controller.close_session()  # the view no longer follows a review that is gone
        assert panel.mosaic_view is None and not panel.show_mosaic.enabled
    finally:
        view.viewer.close()


def test_a_catalogue_without_ra_dec_is_one_notification_naming_it(panel, widget, sky, tmp_path):
    bad = tmp_path / "names.csv"
    bad.write_text("id,flux\na,1\nb,2\n")
    fill_mosaic(panel, tmp_path, bad)
    messages = click(panel.load_button)
    assert len(messages) == 1 and str(bad) in messages[0], messages
    assert widget.controller.session is None and not panel.show_mosaic.enabled


def test_tiles_without_a_catalogue_ask_for_one_or_detection(panel, widget, sky, tmp_path):
    fill_mosaic(panel, tmp_path, sky[1])
    panel.source.line_edit.value = ""
    messages = click(panel.load_button)
    assert len(messages) == 1 and "give a catalogue" in messages[0] and "Detect sources" in messages[0], messages
    assert widget.controller.session is None


def test_detect_sources_runs_in_a_worker_and_its_catalogue_becomes_the_source(panel, widget, sky, tmp_path, qtbot,
                                                                              monkeypatch):
    pytest.importorskip("sep")
    from qtpy.QtCore import Qt, QTimer

    fill_mosaic(panel, tmp_path, sky[1])
    panel.source.line_edit.value = ""
    panel.detect_threshold.value, panel.detect_min_area.value = 4.0, 3
    detection = widget.controller.detection
    ticked, release, waited = threading.Event(), threading.Event(), []
    search = detect._detect_on

    def search_after_a_tick(*args):
        waited.append(ticked.wait(60))  # set only by the GUI thread's timer, while the detection runs
        release.wait(60)  # the test looks at the panel meanwhile
        return search(*args)

    monkeypatch.setattr(detect, "_detect_on", search_after_a_tick)
    timer = QTimer()
    timer.timeout.connect(lambda: detection.busy and ticked.set())
    timer.start(10)
    try:
        qtbot.mouseClick(panel.detect_button.native, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(ticked.is_set, timeout=60_000)  # the event loop ran while sep was to search
        assert not panel.detect_button.enabled and not panel.load_button.enabled
        assert panel.detect_button.text.startswith("Detecting")
        with pytest.raises(SessionError, match="being detected already"):
            detection.start(tmp_path / "sky", panel.options()["mosaic"], panel.detect_config())
    finally:
        release.set()
        timer.stop()
    messages = notifications_during(detection.wait)
    assert messages == [] and waited == [True]
    catalogue = tmp_path / "sky" / DETECTED_CATALOGUE
    assert panel.source.value == catalogue and panel.reader.value == "mosaic"
    assert panel.detect_button.enabled and panel.load_button.enabled
    assert f"{len(SPOTS)} sources found on 1 tile(s)" in panel.status.value
    assert len(Table.read(catalogue)) == len(SPOTS)  # the six stars, found on band g
    assert saved_detection(catalogue) == DetectConfig(threshold=4.0, min_area=3)

    assert click(panel.load_button) == []
    session = widget.controller.session
    assert len(session.collection) == len(SPOTS)
    assert session.config.data.source == str(catalogue)


def test_detection_on_a_tile_without_a_celestial_wcs_is_one_notification(panel, widget, tmp_path, qtbot):
    from astropy.wcs import WCS
    from qtpy.QtCore import Qt

    flat = WCS(naxis=2)
    flat.wcs.ctype = ["LINEAR", "LINEAR"]
    tile = write_tile(tmp_path / "lab.fits", np.ones(SHAPE, dtype=np.float32), flat)
    panel.session_dir.line_edit.value = str(tmp_path / "lab")
    panel.mosaic.value = str(tile)
    panel.status.value = "no session open"

    def detect_and_wait():
        qtbot.mouseClick(panel.detect_button.native, Qt.MouseButton.LeftButton)
        widget.controller.detection.wait()

    messages = notifications_during(detect_and_wait)
    assert len(messages) == 1 and str(tile) in messages[0] and "no celestial axes" in messages[0], messages
    assert panel.status.value == "no session open" and panel.detect_button.enabled
    assert not (tmp_path / "lab" / DETECTED_CATALOGUE).exists() and widget.controller.session is None


def test_detection_is_refused_into_a_session_folder(panel, widget, sky, tmp_path):
    fill_mosaic(panel, tmp_path, sky[1])
    assert click(panel.load_button) == []
    messages = click(panel.detect_button)
    assert len(messages) == 1 and "a session exists here already" in messages[0], messages
    assert not widget.controller.detection.busy


def test_an_opened_fits_layer_becomes_a_mosaic_band(panel, viewer, sky):
    tiles, _ = sky
    for tile in tiles:
        [layer] = viewer.open(str(tile), plugin="napari-anomalymatch")
        viewer.layers.selection.active = layer
        assert click(panel.layer_as_mosaic) == []
    assert panel.reader.value == "mosaic"
    assert panel.options()["mosaic"] == [str(tile) for tile in tiles]

    viewer.layers.selection.active = viewer.add_image(np.zeros((8, 8)), name="pixels only")
    messages = click(panel.layer_as_mosaic)
    assert len(messages) == 1 and "'pixels only'" in messages[0] and "open the FITS file itself" in messages[0]


def test_a_layer_another_reader_opened_from_fits_is_a_band_and_other_files_are_refused(panel, viewer, sky, tmp_path):
    from napari.layers._source import layer_source

    tiles, _ = sky
    with layer_source(path=str(tiles[1]), reader_plugin="another-fits-reader"):
        viewer.layers.selection.active = viewer.add_image(np.zeros((8, 8)), name="r band")
    assert click(panel.layer_as_mosaic) == []
    assert panel.options()["mosaic"] == [str(tiles[1])]

    with layer_source(path=str(tmp_path / "photo.png")):
        viewer.layers.selection.active = viewer.add_image(np.zeros((8, 8)), name="photo")
    messages = click(panel.layer_as_mosaic)
    assert len(messages) == 1 and "photo.png, not a FITS file" in messages[0], messages


def test_show_mosaic_from_python(widget, viewer, sky, tmp_path, make_napari_viewer):
    tiles, catalogue = sky
    app = AnomalyMatchApp(viewer, widget)
    widget.controller.defaults = tiny_config()
    app.load(catalogue, session_dir=tmp_path / "sky", options={"mosaic": [str(tiles[0])], "cutout_size": "16px"})
    view = app.show_mosaic(viewer=make_napari_viewer(show=True))
    assert view.tile.path == tiles[0] and sorted(view.points.indices.tolist()) == list(range(len(SPOTS)))
    view.close()


def test_show_mosaic_refuses_a_session_of_cutouts(widget, viewer, controller):
    with pytest.raises(ConfigError, match="do not come from a mosaic"):
        AnomalyMatchApp(viewer, widget).show_mosaic()


def reopen(panel, folder) -> None:
    """Open the session in ``folder`` in a dock that never saw it, by its folder alone."""
    panel.session_dir.line_edit.value = str(folder)
    assert click(panel.load_button) == []


def test_a_reopened_mosaic_session_fills_its_fields_and_shows_its_candidates(panel, widget, sky, tmp_path):
    tiles, catalogue = sky
    folder = tmp_path / "sky"
    assert main(["init", str(folder), "--mosaic", str(tiles[0]), "--mosaic", str(tiles[1]), "--catalogue",
                 str(catalogue), "--cutout-size", "16px", "--channels", "1,2,2", "--crop", "1"]) == 0
    with Session.open(folder) as session:
        session.label("src2", "anomaly")
    reopen(panel, folder)
    assert panel.reader.value == "mosaic" and panel.source.value == catalogue
    assert panel.mosaic.value == f"{tiles[0]}; {tiles[1]}"
    assert (panel.cutout_size.value, panel.channels.value, panel.hdu.value) == ("16px", "1,2,2", "")
    assert (panel.detect_threshold.value, panel.detect_min_area.value) == (DetectConfig.threshold,
                                                                           DetectConfig.min_area)
    assert panel.show_mosaic.enabled
    assert click(panel.show_mosaic) == []  # no file chosen again
    view = panel.mosaic_view
    try:
        assert view.tile.path == tiles[0] and len(view.points) == len(SPOTS) - 1  # src2 is reviewed already
    finally:
        view.viewer.close()

    assert click(panel.load_button) == []  # the fields as filled open the same session again
    session = widget.controller.session
    assert session.path == folder and session.collection.shape == (16, 16, 3)
    assert session.labels.current() == {"src2": ANOMALY}


def test_a_reopened_detected_session_shows_its_detection_settings(panel, widget, sky, tmp_path):
    pytest.importorskip("sep")
    tiles, _ = sky
    folder = tmp_path / "found"
    assert main(["init", str(folder), "--mosaic", str(tiles[0]), "--detect", "--detect-threshold", "4",
                 "--detect-min-area", "3", "--cutout-size", "16px", "--crop", "1"]) == 0
    reopen(panel, folder)
    assert panel.source.value == folder / DETECTED_CATALOGUE and panel.mosaic.value == str(tiles[0])
    assert (panel.detect_threshold.value, panel.detect_min_area.value) == (4.0, 3)
    assert panel.show_mosaic.enabled
    assert click(panel.show_mosaic) == []
    view = panel.mosaic_view
    try:
        assert len(view.points) == len(SPOTS)
    finally:
        view.viewer.close()
