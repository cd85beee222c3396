"""The AnomalyMatch dock: Data, Train, Review, Display, Metrics and Map panels over one controller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtGui import QShowEvent
from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

from .compact import align_form_labels
from .controller import AnomalyMatchController
from .data_widget import DataWidget
from .display_widget import DisplayWidget
from .editing import apply_when_finished
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
        self.destroyed.connect(self.controller.close)
        self._labels_aligned = False

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


def _scrollable(panel: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(panel)
    return area
