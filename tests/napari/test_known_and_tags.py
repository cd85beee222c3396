"""The review on a shown viewer: known objects of a cross-match, and free tags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..core.test_crossmatch import known_table, write_sky_catalogue
from .conftest import tiny_config

SCREENSHOTS = os.environ.get("ANOMALYMATCH_SCREENSHOTS")  # set to keep the pictures a person looks at


def keep_screenshot(viewer, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(Path(SCREENSHOTS) / name), canvas_only=False, flash=False)


@pytest.fixture
def sky_controller(qtbot, widget, tmp_path):
    """A controller on 8 images with RA/Dec (the last one without), its Review panel in front."""
    source = write_sky_catalogue(tmp_path / "data")
    widget.controller.load(tmp_path / "session", source, config=tiny_config())
    widget.show_panel("Review")
    return widget.controller


def test_the_review_shows_known_objects_and_can_hide_them(qtbot, viewer, widget, sky_controller, tmp_path):
    catalogue = tmp_path / "known.vot"
    known_table().write(catalogue, format="votable")
    panel = widget.review_panel
    assert "known" not in panel.candidate.value  # no cross-match yet: nothing said
    panel.catalogue.value = str(catalogue)
    panel.radius.value = "3arcsec"
    panel.match_button.clicked.emit()  # as a click does
    qtbot.wait(20)
    assert "known: lens-A (1.00″)" in panel.candidate.value
    sky_controller.next()
    assert "not yet known (nearest: merger-B, 5.00″)" in panel.candidate.value
    keep_screenshot(viewer, "review-known.png")
    panel.known.value = "hide"  # the widget only passes the choice on; the queue hides them
    assert sky_controller.queue.known == "hide" and len(sky_controller.queue) == 7
    assert sky_controller.current.image_id != "src0"
    panel.radius.value = "3"
    from .conftest import notifications_during

    errors = notifications_during(lambda: panel.match_button.clicked.emit())
    assert any("radius '3' is not an angle" in message for message in errors)
