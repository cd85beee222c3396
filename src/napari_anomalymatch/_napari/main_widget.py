"""The AnomalyMatch dock: Data, Train, Review, Display, Metrics and Map panels over one controller."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from qtpy.QtCore import QEvent, QObject
from qtpy.QtGui import QShowEvent
from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

from .compact import align_form_labels
from .controller import AnomalyMatchController
from .data_widget import DataWidget
from .display_widget import DisplayWidget
from .editing import apply_when_finished
from .glyphs import GlyphWarmer
from .map_widget import MapWidget
from .metrics_widget import MetricsWidget
from .review_widget import ReviewWidget
from .train_widget import TrainWidget

if TYPE_CHECKING:
    import napari


class AnomalyMatchWidget(QWidget):
    """The plugin's dock widget; ``controller`` drives the viewer (also from scripts)."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.controller = AnomalyMatchController(napari_viewer)
        self.data_panel = DataWidget(self.controller)
        self.train_panel = TrainWidget(self.controller)
        self.review_panel = ReviewWidget(self.controller)
        self.display_panel = DisplayWidget(self.controller)
        self.metrics_panel = MetricsWidget(self.controller)
        self.map_panel = MapWidget(self.controller)
        self.tabs = QTabWidget()
        for title, panel in (("Data", self.data_panel.native), ("Train", self.train_panel),
                             ("Review", self.review_panel.native), ("Display", self.display_panel.native),
                             ("Metrics", self.metrics_panel), ("Map", self.map_panel)):
            self.tabs.addTab(_scrollable(panel), title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        apply_when_finished(self)
        self.controller.session_changed.connect(self._on_session_changed)
        self._closer = SessionCloser(self, napari_viewer)
        self.destroyed.connect(self.controller.close)  # a dock deleted some other way
        self._labels_aligned = False
        self.glyphs = GlyphWarmer(napari_viewer, parent=self)  # the first caption then draws at once

    def showEvent(self, event: QShowEvent) -> None:
        """Align the forms' label columns once the dock is styled (napari's font is larger than Qt's)."""
        super().showEvent(event)
        if not self._labels_aligned:
            align_form_labels(self)
            self._labels_aligned = True

    def show_panel(self, title: str) -> None:
        """Bring a panel to the front by its tab title (Data, Train, Review, Display, Metrics, Map)."""
        titles = [self.tabs.tabText(i) for i in range(self.tabs.count())]
        self.tabs.setCurrentIndex(titles.index(title))

    def _on_session_changed(self, session: object) -> None:
        if session is not None and self.tabs.currentIndex() == 0:
            self.show_panel("Review")


class SessionCloser(QObject):
    """Closes the dock's session (labels checkpointed, workers stopped) when napari closes the viewer
    or its window, or the dock is closed: while every panel and the tag entry still exist."""

    def __init__(self, dock: AnomalyMatchWidget, viewer: napari.Viewer) -> None:
        super().__init__(dock)
        self.close_session = dock.controller.close
        # weak: the dock may outlive the viewer, which must not be kept alive by it
        self._dock, self._qt_viewer = weakref.ref(dock), weakref.ref(viewer.window._qt_viewer)
        self._window = weakref.ref(viewer.window._qt_window)
        for watched in (self._qt_viewer(), self._window(), dock):
            watched.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._window() and event.type() == QEvent.Type.Close:
            watched.event(event)  # napari's handling, once (it may ask first): close only if the window does
            if event.isAccepted():
                self.close_session()
            return True
        if watched is self._qt_viewer() and event.type() == QEvent.Type.Close:
            self.close_session()  # before napari deletes the canvas (viewer.close())
        elif watched is self._dock() and event.type() == QEvent.Type.ParentChange and watched.parent() is None:
            self.close_session()  # the dock's close button takes it out of the window
        return False


def _scrollable(panel: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(panel)
    return area
