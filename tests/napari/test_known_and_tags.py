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
    panel.match_button.clicked.emit()  # as a click does (the match runs before it returns)
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


def test_the_t_key_tags_the_candidate_with_completion(qtbot, viewer, widget, controller):
    from qtpy.QtCore import Qt

    from napari_anomalymatch._napari.review_layers import TAGS_LAYER

    from .conftest import press

    widget.show_panel("Review")
    first = controller.current.image_id
    controller.next()
    controller.edit_tags("lens")  # a tag in use, for the completion
    controller.previous()
    press(qtbot, viewer, "T")
    entry = controller._tag_entry
    assert entry.isVisible()
    qtbot.waitUntil(entry.hasFocus, timeout=2000)
    assert entry.model.stringList() == ["lens"]
    qtbot.keyClicks(entry, "le")  # typed as a person types: the key forwarder leaves text fields alone
    entry.completer().setCompletionPrefix("le")
    assert entry.completer().currentCompletion() == "lens"
    qtbot.keyClicks(entry, "ns, merger")
    qtbot.keyClick(entry, Qt.Key.Key_Return)
    assert not entry.isVisible()
    assert controller.current.image_id == first and controller.current.tags == ("lens", "merger")
    assert controller.session.labels.get(first) == -1  # a tag labels nothing
    assert "tags: lens, merger" in widget.review_panel.candidate.value
    tags_layer = viewer.layers[TAGS_LAYER]
    assert sorted(tags_layer.features["tags"]) == ["lens", "lens, mer…"]  # shortened to fit a tile
    keep_screenshot(viewer, "review-tags.png")  # drawn when taken

    press(qtbot, viewer, "T")
    qtbot.keyClicks(controller._tag_entry, "artefact")
    qtbot.keyClick(controller._tag_entry, Qt.Key.Key_Escape)  # closes without a change
    assert controller.current.tags == ("lens", "merger")
    assert widget.review_panel.tag.choices == ("(any)", "lens", "merger")
    widget.review_panel.which.value = "all"
    widget.review_panel.tag.value = "merger"
    assert len(controller.queue) == 1 and controller.current.image_id == first
    press(qtbot, viewer, "Z")  # undo takes back both tags of the one line
    assert controller.session.labels.tags(first) == ()
