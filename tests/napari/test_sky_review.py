"""The candidate on the sky from the Review panel: its position, the o key and button, SAMP both ways."""

from __future__ import annotations

import numpy as np
import pytest

from ..core.test_crossmatch import IMAGE_DEC, IMAGE_RA, NO_COORDINATES, N, write_sky_catalogue
from ..core.test_review import write_scores
from .conftest import notifications_during, press, tiny_config

SCORES = np.linspace(0.1, 0.9, N).astype(np.float32)  # the top one (src7) has no position; then src6 ...


@pytest.fixture
def sky_review(qtbot, widget, tmp_path, monkeypatch):
    """A scored session on 8 images with RA/Dec (the best one without), its Review panel in front;
    ``opened`` collects the addresses given to the browser."""
    source = write_sky_catalogue(tmp_path / "data")
    controller = widget.controller
    controller.load(tmp_path / "session", source, config=tiny_config())
    write_scores(controller.session, SCORES)
    controller.refresh()
    controller.go_to(0)
    widget.show_panel("Review")
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *args, **kwargs: opened.append(url) or True)
    controller.opened = opened
    return controller


def test_the_panel_and_the_o_key_show_and_open_the_position(qtbot, viewer, widget, sky_review):
    panel = widget.review_panel
    assert sky_review.current.index == NO_COORDINATES and "RA, Dec" not in panel.candidate.value
    errors = notifications_during(lambda: press(qtbot, viewer, "O"))
    assert any("image 'src7' has no sky position" in message for message in errors)
    assert sky_review.opened == []
    sky_review.next()
    assert "RA, Dec 150.600000, +2.300000 (10:02:24.00 +02:18:00.0)" in panel.candidate.value
    press(qtbot, viewer, "O")
    assert sky_review.opened == ["https://www.legacysurvey.org/viewer?ra=150.600000&dec=%2B2.300000"
                                 "&layer=ls-dr10&zoom=16"]
    assert (IMAGE_RA[6], IMAGE_DEC[6]) == (150.6, 2.3)


def test_the_sky_viewer_setting_is_kept_and_used_by_the_button(qtbot, widget, sky_review):
    from napari_anomalymatch.core.session import Session

    panel = widget.review_panel
    sky_review.next()
    panel.sky_viewer.value = "aladin"
    panel.buttons["sky"].clicked.emit()
    assert sky_review.opened[-1].startswith("https://aladin.cds.unistra.fr/AladinLite/?target=150.600000%20%2B2.3")
    assert Session.open(sky_review.session.path, read_only=True).config.sky.viewer == "aladin"


def test_samp_sends_the_ranking_follows_the_review_and_shows_a_selected_row(qtbot, widget, sky_review, samp_hub):
    panel = widget.review_panel
    sky_review.next()  # src6, at 150.6, +2.3
    infos = notifications_during(lambda: panel.samp_button.clicked.emit(), severity="info")
    assert any("sent the top 8 candidates to peer" in message for message in infos)
    table_id = samp_hub.wait_for("table.load.votable")["table-id"]
    pointed = samp_hub.wait_for("coord.pointAt.sky")
    assert (float(pointed["ra"]), float(pointed["dec"])) == (150.6, 2.3)
    samp_hub.select_rows(table_id, [5])  # the 6th best: src2
    qtbot.waitUntil(lambda: sky_review.current.image_id == "src2", timeout=10_000)
    assert "src2" in panel.candidate.value


def test_a_selected_row_outside_the_review_list_is_explained(qtbot, widget, sky_review, samp_hub):
    from napari.utils.notifications import notification_manager

    sky_review.send_to_samp()
    table_id = samp_hub.wait_for("table.load.votable")["table-id"]
    sky_review.label("n")
    sky_review.refresh()  # src7 is labelled: re-ranked, the 'unlabelled' list leaves it out
    shown = []

    def collect(notification) -> None:
        shown.append(str(notification.message))

    notification_manager.notification_ready.connect(collect)
    try:
        samp_hub.select_rows(table_id, [0])
        qtbot.waitUntil(lambda: any("image 'src7' is not in this list" in message for message in shown),
                        timeout=10_000)  # it comes through the SAMP thread and the GUI thread's queue
    finally:
        notification_manager.notification_ready.disconnect(collect)
    assert any("show 'all'" in message for message in shown)


def test_send_to_samp_without_a_hub_says_what_to_start(widget, sky_review, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{tmp_path / 'no-hub.lock'}")
    errors = notifications_during(lambda: widget.review_panel.samp_button.clicked.emit())
    assert any("no SAMP hub is running: start TOPCAT or Aladin" in message for message in errors)


def test_hovering_over_a_gallery_tile_names_it_with_its_position(viewer, widget, sky_review):
    from types import SimpleNamespace

    from napari_anomalymatch._napari.review_layers import GALLERY_LAYER

    def move_to(position):
        for callback in viewer.mouse_move_callbacks:  # as napari calls them when the pointer moves
            callback(viewer, SimpleNamespace(position=tuple(position), type="mouse_move"))

    panel = widget.review_panel
    gallery = viewer.layers[GALLERY_LAYER]
    rows, cols = sky_review.layers.grid.cell(1)  # the second best: src6, at 150.6, +2.3
    centre = gallery.data_to_world(((rows.start + rows.stop) / 2, (cols.start + cols.stop) / 2))
    move_to(centre)
    assert panel.hovered.value.startswith("pointer: 2/")
    assert "src6" in panel.hovered.value and "10:02:24.00 +02:18:00.0" in panel.hovered.value
    assert sky_review.current.position == 0  # hovering moves nothing
    move_to((-100.0, -100.0))
    assert panel.hovered.value == ""
