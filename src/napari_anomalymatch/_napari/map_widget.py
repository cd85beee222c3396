"""The Map panel: the embedding map of the collection, linked to the review.

Points are coloured by score or label.  Hovering names an image on the pointer line, a click
shows it in the review, and drawing around points (a lasso) selects them: *Review these* makes
them the review order, *Anomaly*/*Normal* label them all in one step that *Undo* reverts.  The
map is computed in a worker thread (``MapController``) and drawn here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, PushButton
from qtpy.QtWidgets import QProgressBar, QVBoxLayout, QWidget

from ..core.discovery.embedding_map import EmbeddingMap, MapProgress
from ..core.discovery.map_figure import COLOUR_BY, draw_map
from .compact import status_label
from .notifications import notify_errors
from .plots import PlotWidget

if TYPE_CHECKING:
    from .controller import AnomalyMatchController

CLICK_EXTENT = 0.01  # a lasso smaller than this share of the view is a click
PICK_RADIUS = 0.02  # a click or hover names the nearest point within this share of the view


class MapWidget(QWidget):
    """Compute/colour controls, the map, the pointer line and the selection's actions."""

    def __init__(self, controller: AnomalyMatchController) -> None:
        super().__init__()
        self.controller = controller
        self.maps = controller.embedding_map
        self.compute_button = PushButton(text="Compute map", tooltip="UMAP of the embeddings the latest "
                                         "score run stored: every labelled image and up to 50,000 in all")
        self.colour = ComboBox(choices=list(COLOUR_BY), value=COLOUR_BY[0], label="Colour by")
        self.auto = CheckBox(text="After each cycle", value=self.maps.auto_update,
                             tooltip="Compute a new map whenever a cycle has scored the collection")
        self.status = status_label(self.maps.describe())
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.plot = PlotWidget(height=4.0)
        self.axes = self.plot.axes[0]
        self.hovered = status_label("pointer: -")
        self.review_button = PushButton(text="Review these", enabled=False)
        self.everything_button = PushButton(text="All images")
        self.anomaly_button = PushButton(text="Anomaly", enabled=False, tooltip="label every selected image")
        self.normal_button = PushButton(text="Normal", enabled=False, tooltip="label every selected image")
        self.undo_button = PushButton(text="Undo")
        self._lasso = self._make_lasso()
        self._layout_widgets()
        self._connect()
        self.redraw()

    def _layout_widgets(self) -> None:
        top = Container(widgets=[self.compute_button, self.colour, self.auto], layout="horizontal", labels=False)
        selection = Container(widgets=[self.review_button, self.everything_button, self.anomaly_button,
                                       self.normal_button, self.undo_button], layout="horizontal", labels=False)
        layout = QVBoxLayout(self)
        for widget in (top.native, self.status.native, self.progress, self.plot, self.hovered.native,
                       selection.native):
            layout.addWidget(widget)

    def _connect(self) -> None:
        self.compute_button.changed.connect(notify_errors(lambda *_: self.maps.compute()))
        self.colour.changed.connect(lambda *_: self.redraw())
        self.auto.changed.connect(self._on_auto)
        self.review_button.changed.connect(notify_errors(lambda *_: self.maps.review_selection()))
        self.everything_button.changed.connect(notify_errors(lambda *_: self.maps.review_everything()))
        self.anomaly_button.changed.connect(notify_errors(lambda *_: self.maps.label_selection("anomaly")))
        self.normal_button.changed.connect(notify_errors(lambda *_: self.maps.label_selection("normal")))
        self.undo_button.changed.connect(notify_errors(lambda *_: self.controller.undo()))
        self.maps.changed.connect(self._on_map_changed)
        self.maps.progress.connect(self._on_progress)
        self.maps.busy_changed.connect(self._on_busy)
        self.controller.busy_changed.connect(lambda _: self._enable_compute())
        self.maps.selection_changed.connect(self._on_selection)
        self.controller.labels_changed.connect(self._on_labels_changed)
        self.plot.canvas.mpl_connect("motion_notify_event", self._on_motion)

    def _make_lasso(self) -> Any:
        from matplotlib.widgets import LassoSelector

        return LassoSelector(self.axes, self._on_lasso, props={"color": "white", "linewidth": 1.0})

    def showEvent(self, event: Any) -> None:
        """While shown, each cycle that scores draws a new map (and one left to make is made now)."""
        super().showEvent(event)
        self.maps.set_shown(True)

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.maps.set_shown(False)

    # -- drawing --------------------------------------------------------------------

    def redraw(self) -> None:
        found = self.maps.map
        if found is None or self.controller.session is None:
            self.axes.clear()
            self.axes.set_xticks([])
            self.axes.set_yticks([])
        else:
            positions = np.flatnonzero(np.isin(found.indices, self.maps.selected))
            draw_map(self.axes, found, self.maps.colouring(self.colour.value), positions)
        self.plot.draw()

    def _on_map_changed(self, found: EmbeddingMap | None) -> None:
        self.status.value = self.maps.describe()
        self.redraw()

    def _on_labels_changed(self) -> None:
        if self.colour.value == "label" and self.maps.map is not None:
            self.redraw()

    def _on_progress(self, event: MapProgress) -> None:
        if event.stage == "reading":
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.status.value = f"reading embeddings {event.done:,}/{event.total:,}"
        else:
            # UMAP says nothing until it is done; not Qt's busy bar, whose animation (events through
            # the viewer's Python event filters) starves the worker of the GIL
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.status.value = (_fitting_text(event) if event.stage == "fitting" else "saving the map")

    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self._enable_compute()
        if not busy:
            self.status.value = self.maps.describe()

    def _enable_compute(self) -> None:
        """A map is computed between runs, one at a time."""
        self.compute_button.enabled = not (self.maps.busy or self.controller.busy)

    def _on_auto(self, value: bool) -> None:
        self.maps.auto_update = bool(value)

    def _on_selection(self, selected: np.ndarray) -> None:
        count = len(selected)
        self.review_button.text = f"Review these ({count:,})" if count else "Review these"
        for button in (self.review_button, self.anomaly_button, self.normal_button):
            button.enabled = count > 0
        self.redraw()

    # -- the pointer ----------------------------------------------------------------

    def _on_motion(self, event: Any) -> None:
        if event.inaxes is not self.axes or event.xdata is None:
            return
        index = self.maps.image_at((event.xdata, event.ydata), self._pick_radius())
        self.hovered.value = f"pointer: {self.maps.describe_image(index)}" if index is not None else "pointer: -"

    def _on_lasso(self, vertices: list[tuple[float, float]]) -> None:
        if self.maps.map is None:
            return
        polygon = np.asarray(vertices, dtype=np.float64)
        if len(polygon) < 3 or np.ptp(polygon, axis=0).max() < CLICK_EXTENT * self._view_size():
            notify_errors(self._click)(polygon[-1])
        else:
            self.maps.select(polygon)

    def _click(self, point: np.ndarray) -> None:
        index = self.maps.image_at((float(point[0]), float(point[1])), self._pick_radius())
        if index is not None:
            self.maps.show_image(index)

    def _view_size(self) -> float:
        (x0, x1), (y0, y1) = self.axes.get_xlim(), self.axes.get_ylim()
        return max(abs(x1 - x0), abs(y1 - y0))

    def _pick_radius(self) -> float:
        return PICK_RADIUS * self._view_size()


def _fitting_text(event: MapProgress) -> str:
    if event.compiles:
        return (f"compiling UMAP's code (the first map since napari started: a minute or two), "
                f"then fitting it to {event.total:,} images ...")
    return f"fitting UMAP to {event.total:,} images ..."
