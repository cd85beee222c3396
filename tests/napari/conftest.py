"""Fixtures for the plugin's tests: real viewers (shown, under Xvfb) and tiny sessions.

Every test here needs napari and an X server (pytest-xvfb starts Xvfb).  The
sessions use tiny settings (32 px, 2 iterations, batch 4) and read images in
the test process (``num_workers=0``: no forking from a Qt process).
"""

from __future__ import annotations

import gc
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


@pytest.fixture(scope="module", autouse=True)
def _collect_only_this_modules_objects():
    """Keep the objects alive before a module's first test out of the collector's sight until its last
    test is done (``gc.freeze``).  napari runs a full collection whenever a layer is removed, twice or
    more a test, and by then the session holds ~10^6 objects (torch, napari, every import of the tests
    before): 0.3-0.5 s each.  Frozen, those collections go only through what the module's tests made;
    at its end everything is collectable again."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _release_closed_windows():
    """Let go of what napari keeps of a test's closed viewers, so the heap stays the size of one test's.

    Each leftover adds to every later full collection, and napari runs one whenever a layer is removed:
    teardowns had grown from ~1.3 s to ~3 s late in the suite. Set up before ``make_napari_viewer``, so
    this runs after it has closed the viewer and destroyed its app model."""
    from napari.utils.theme import _themes

    before = {name: theme.events.canvas.callbacks for name, theme in _themes.items()}
    yield
    _disconnect_new_theme_callbacks(_themes, before)
    _release_menu_actions_of_destroyed_apps()


def _disconnect_new_theme_callbacks(themes, before: dict[str, tuple]) -> None:
    """napari 0.9's ``Window._disconnect_theme`` disconnects a new lambda, not the one ``_connect_theme``
    connected to each global theme's ``canvas`` event: every closed window stays reachable, and with it
    its workers' task list, our dock, controller and session (~6,000 objects a test)."""
    for name, theme in themes.items():
        for callback in theme.events.canvas.callbacks:
            if not any(callback is old for old in before.get(name, ())):
                theme.events.canvas.disconnect(callback)


def _release_menu_actions_of_destroyed_apps() -> None:
    """app_model parents the menus' actions to the QApplication, which outlives the test's app model:
    ~130 actions and their menu items a test (~2,500 objects)."""
    from app_model import Application
    from app_model.backends.qt import QMenuItemAction
    from qtpy.QtWidgets import QApplication

    for action in QApplication.instance().findChildren(QMenuItemAction):
        if Application.get_app(action._app.name) is not action._app:
            action.setParent(None)  # owned by Python alone now: deleted with its last reference


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
