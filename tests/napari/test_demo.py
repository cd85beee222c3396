"""`make demo`'s napari part: the FIRST sample as a session's source, candidates at once, labels kept."""

from __future__ import annotations

import pytest

from napari_anomalymatch._napari.demo import display_available, open_demo

from ..conftest import tiny_config
from .conftest import press

pytest.importorskip("firstgalaxydata")


def test_the_demo_opens_the_sample_as_a_session_ready_to_label(make_napari_viewer, qtbot, tmp_path):
    app = open_demo(tmp_path / "demo", viewer=make_napari_viewer(show=True), config=tiny_config())
    try:
        session = app.controller.session
        assert len(session.collection) == 300 and session.collection.shape == (300, 300, 1)
        assert (tmp_path / "demo" / "layer-images.h5").exists()
        assert not app.viewer.layers["FIRST radio galaxies"].visible  # the candidate layers show its images
        first = app.current
        assert first.rank == 1 and first.image_id == session.collection.ids()[0]  # the sample's order
        assert app.controller.candidate_layer is not None
        assert app.controller.busy  # the ranking without labels runs behind the candidates shown
        app.controller.stop(wait=True)  # (core's tests check the ranking itself; it takes a minute here)
        press(qtbot, app.viewer, "A")
    finally:
        app.close()
    again = open_demo(tmp_path / "demo", viewer=make_napari_viewer(show=True), rank=False)  # run again
    try:
        assert again.controller.session.labels.current() == {first.image_id: 1}
        assert again.current.image_id != first.image_id  # the review goes on among the unlabelled
    finally:
        again.close()


def test_the_display_check_answers_without_aborting():
    assert display_available()  # pytest-xvfb gives this process, and so the probe, a display
