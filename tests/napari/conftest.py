"""Fixtures for the plugin's tests: real viewers (shown, under Xvfb) and tiny sessions.

Every test here needs napari and an X server (pytest-xvfb starts Xvfb).  The
sessions use tiny settings (32 px, 2 iterations, batch 4) and read images in
the test process (``num_workers=0``: no forking from a Qt process).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ..conftest import blob_images, tiny_config, write_pngs

if importlib.util.find_spec("napari") is None:  # tests/core runs without napari; these do not
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def blobs(tmp_path) -> tuple[Path, np.ndarray]:
    """16 PNG blobs (every 4th a ring) and the truth."""
    images, truth = blob_images(16, anomaly_every=4)
    write_pngs(tmp_path / "blobs", images)
    return tmp_path / "blobs", truth


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer(show=True)


@pytest.fixture
def widget(viewer):
    """The AnomalyMatch dock widget on a shown viewer."""
    from napari_anomalymatch._napari.main_widget import AnomalyMatchWidget

    dock = AnomalyMatchWidget(viewer)
    viewer.window.add_dock_widget(dock, name="AnomalyMatch", area="right")
    yield dock
    dock.controller.close()


@pytest.fixture
def controller(widget, blobs, tmp_path):
    """A controller with a session on the blob images opened."""
    folder, _ = blobs
    widget.controller.load(tmp_path / "session", folder, config=tiny_config())
    return widget.controller


def press(qtbot, viewer, *keys: str) -> None:
    """Press keys on the viewer's canvas as a person would."""
    from qtpy.QtCore import Qt

    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    for key in keys:
        code = getattr(Qt.Key, f"Key_{key}")
        qtbot.keyClick(canvas, code)  # handled before it returns: nothing to wait for


def notifications_during(action, severity: str = "error") -> list[str]:
    """The messages of the napari notifications of ``severity`` shown while ``action`` runs."""
    from napari.utils.notifications import notification_manager

    seen: list[str] = []

    def collect(notification) -> None:
        if str(notification.severity).lower().endswith(severity):
            seen.append(str(notification.message))

    notification_manager.notification_ready.connect(collect)
    try:
        action()
    finally:
        notification_manager.notification_ready.disconnect(collect)
    return seen


def label_both_classes(controller, truth, normal: int = 3) -> None:
    """Label the first two anomalies and ``normal`` normal images of the blobs; then refresh."""
    ids = controller.session.collection.ids()
    for i in np.flatnonzero(truth)[:2]:
        controller.session.label(ids[i], "anomaly")
    for i in np.flatnonzero(~truth)[:normal]:
        controller.session.label(ids[i], "normal")
    controller.refresh()
