"""Matplotlib plots inside dock widgets: training losses and test-set metrics.

Drawn with the Qt Agg canvas in napari's dark colours; ``draw_idle`` lets a
fast training run update them without blocking the viewer, and the loss plot is drawn at most
once every ``LIVE_DRAW_MS`` while a cycle runs (a draw costs the GUI thread tens of milliseconds
on a small CPU, more than an iteration's worth of updates is worth).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from ..core.evaluation.testset import TestReport
from ..core.learning.training import TrainProgress
from ..core.review.discovery import DiscoveryState

BACKGROUND = "#262930"
FOREGROUND = "#d1d2d4"
LIVE_DRAW_MS = 1000
COLOURS = {"loss": "#f0f0f0", "sup_loss": "#4aa3ff", "unsup_loss": "#ff9f40", "mask_ratio": "#6fd36f",
           "anomaly": "#e63232", "normal": "#3ca0ff"}


class PlotWidget(QWidget):
    """A matplotlib figure in a widget, styled for napari's dark theme."""

    def __init__(self, rows: int = 1, columns: int = 1, height: float = 2.6) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, height), facecolor=BACKGROUND, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(int(height * 60))
        self.canvas.setMinimumWidth(160)  # the dock decides the width; the figure follows
        self.axes = np.atleast_1d(self.figure.subplots(rows, columns)).ravel().tolist()
        for axes in self.axes:
            style_axes(axes)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self._outdated = False  # changed while hidden: drawn when shown

    def draw(self) -> None:
        """Draw when Qt is idle; a plot on a hidden panel only when it is shown (a draw costs tens
        of milliseconds of the GUI thread)."""
        if self.isVisible():
            self.canvas.draw_idle()
        else:
            self._outdated = True

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._outdated:
            self._outdated = False
            self.canvas.draw_idle()


def style_axes(axes: Any) -> None:
    axes.set_facecolor(BACKGROUND)
    axes.tick_params(colors=FOREGROUND, labelsize=7)
    for spine in axes.spines.values():
        spine.set_color(FOREGROUND)
    axes.xaxis.label.set_color(FOREGROUND)
    axes.yaxis.label.set_color(FOREGROUND)
    axes.title.set_color(FOREGROUND)


class LossPlot(PlotWidget):
    """Losses (left axis) and the pseudo-label mask rate (right axis) per iteration."""

    SERIES = ("loss", "sup_loss", "unsup_loss")

    def __init__(self) -> None:
        super().__init__()
        self.loss_axes = self.axes[0]
        self.mask_axes = self.loss_axes.twinx()
        style_axes(self.mask_axes)
        self.loss_axes.set_xlabel("iteration", fontsize=8)
        self.loss_axes.set_ylabel("loss", fontsize=8)
        self.mask_axes.set_ylabel("mask rate", fontsize=8)
        self.mask_axes.set_ylim(0, 1.02)
        self.lines = {name: self.loss_axes.plot([], [], color=COLOURS[name], lw=1.2, label=name)[0]
                      for name in self.SERIES}
        self.lines["mask_ratio"] = self.mask_axes.plot([], [], color=COLOURS["mask_ratio"], lw=1.0,
                                                       ls="--", label="mask rate")[0]
        legend = self.loss_axes.legend(handles=list(self.lines.values()), fontsize=7, loc="upper right",
                                       facecolor=BACKGROUND, edgecolor=FOREGROUND, labelcolor=FOREGROUND)
        legend.set_draggable(True)
        self.history: dict[str, list[float]] = {name: [] for name in (*self.SERIES, "mask_ratio", "step")}
        self._draw_timer = QTimer(self)
        self._draw_timer.setSingleShot(True)
        self._draw_timer.setInterval(LIVE_DRAW_MS)
        self._draw_timer.timeout.connect(self.draw)
        # The constrained layout measures every text's extent on each draw: half of a live draw's
        # cost. It is laid out once, and again only when the size or the cycles marked change.
        self.canvas.mpl_connect("draw_event", lambda _: self._freeze_layout())
        self.canvas.mpl_connect("resize_event", lambda _: self._relayout())

    def _freeze_layout(self) -> None:
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        if isinstance(self.figure.get_layout_engine(), ConstrainedLayoutEngine):
            self.figure.set_layout_engine("none")  # the axes keep the positions just laid out

    def _relayout(self) -> None:
        self.figure.set_layout_engine("constrained")

    def clear(self) -> None:
        """Forget every iteration (another session is shown)."""
        for values in self.history.values():
            values.clear()
        for line in self.lines.values():
            line.set_data([], [])
        for artist in [*self.loss_axes.lines, *self.loss_axes.texts]:
            if artist not in self.lines.values():
                artist.remove()
        self._relayout()
        self.draw()

    def show_history(self, progress: list[TrainProgress]) -> None:
        """Draw stored iterations (a reopened session's cycles), each cycle marked."""
        for event in progress:
            if event.iteration == 1:
                self.mark_cycle(event.cycle)
            self._append(event)
        if progress:
            self._redraw()

    def add(self, progress: TrainProgress) -> None:
        """Append one iteration; drawn within ``LIVE_DRAW_MS`` with those that follow it."""
        self._append(progress)
        self._redraw(draw=False)
        if not self._draw_timer.isActive():
            self._draw_timer.start()

    def _append(self, progress: TrainProgress) -> None:
        self.history["step"].append(len(self.history["step"]) + 1)
        for name in (*self.SERIES, "mask_ratio"):
            self.history[name].append(float(getattr(progress, name)))

    def _redraw(self, draw: bool = True) -> None:
        steps = self.history["step"]
        for name, line in self.lines.items():
            line.set_data(steps, self.history[name])
        self.loss_axes.set_xlim(0.5, len(steps) + 0.5)  # shared with the mask-rate axes
        self.loss_axes.relim()
        self.loss_axes.autoscale_view(scalex=False)
        if draw:
            self.draw()

    def mark_cycle(self, cycle: int) -> None:
        """A vertical line where a new cycle starts."""
        self._relayout()  # the axes' ranges grew: their tick labels may be wider
        x = len(self.history["step"]) + 0.5
        self.loss_axes.axvline(x, color=FOREGROUND, lw=0.5, alpha=0.5)
        self.loss_axes.text(x, 1.0, f" {cycle}", color=FOREGROUND, fontsize=7, va="top",
                            transform=self.loss_axes.get_xaxis_transform())


class MetricsPlot(PlotWidget):
    """ROC curve, precision-recall curve and the score histograms of both classes."""

    def __init__(self) -> None:
        super().__init__(rows=3, columns=1, height=6.5)
        self.clear()

    def clear(self, message: str = "no test set or no scores yet") -> None:
        for axes in self.axes:
            axes.clear()
            style_axes(axes)
        self.axes[0].text(0.5, 0.5, message, color=FOREGROUND, ha="center", va="center", fontsize=8,
                          transform=self.axes[0].transAxes)
        self.draw()

    def show(self, report: TestReport) -> None:
        roc, pr, histogram = self.axes
        for axes in self.axes:
            axes.clear()
            style_axes(axes)
        m = report.metrics
        roc.plot(report.fpr, report.tpr, color=COLOURS["sup_loss"], lw=1.5)
        roc.plot([0, 1], [0, 1], color=FOREGROUND, lw=0.5, ls=":")
        roc.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
        roc.set_title(f"ROC  AUROC {m['auroc']:.3f}", fontsize=8)
        pr.plot(report.recall, report.precision, color=COLOURS["unsup_loss"], lw=1.5)
        pr.axhline(m["n_anomalies"] / max(1, m["n_scored"]), color=FOREGROUND, lw=0.5, ls=":")  # chance
        pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
        pr.set_title(f"precision-recall  AUPRC {m['auprc']:.3f}", fontsize=8)
        width = np.diff(report.bins)
        histogram.bar(report.bins[:-1], report.normal_counts, width=width, align="edge",
                      color=COLOURS["normal"], alpha=0.7, label="normal")
        histogram.bar(report.bins[:-1], report.anomaly_counts, width=width, align="edge",
                      color=COLOURS["anomaly"], alpha=0.7, label="anomaly")
        histogram.set_yscale("log")
        histogram.set(xlabel="score", ylabel="images", xlim=(0, 1))
        histogram.legend(fontsize=7, facecolor=BACKGROUND, edgecolor=FOREGROUND, labelcolor=FOREGROUND)
        for axes in self.axes:
            axes.xaxis.label.set_fontsize(8)
            axes.yaxis.label.set_fontsize(8)
            style_axes(axes)
        self.draw()


class DiscoveryPlot(PlotWidget):
    """Anomalies found against images labelled (the discovery curve), the cycles it crossed, and
    what the next reviews are expected to add, with its interval."""

    def __init__(self) -> None:
        super().__init__(rows=1, columns=1, height=2.4)
        self.show_state(None)

    def show_state(self, state: DiscoveryState | None) -> None:
        axes = self.axes[0]
        axes.clear()
        style_axes(axes)
        if state is None or not state.curve.image_ids:
            axes.text(0.5, 0.5, "nothing labelled yet", color=FOREGROUND, ha="center", va="center", fontsize=8,
                      transform=axes.transAxes)
            self.draw()
            return
        curve = state.curve
        reviewed, found = np.r_[0, curve.reviewed], np.r_[0, curve.found]
        axes.step(reviewed, found, where="post", color=COLOURS["anomaly"], lw=1.5, label="found")
        for place in np.flatnonzero(np.diff(curve.cycles)) + 1:  # where a new cycle's labels begin
            axes.axvline(place, color=FOREGROUND, lw=0.5, ls=":")
        if state.estimate is not None and state.estimate.next:
            ahead = state.estimate.next[max(state.estimate.next)]
            x, y = reviewed[-1] + ahead.n_images, found[-1]
            axes.errorbar([x], [y + ahead.expected], yerr=[[ahead.expected - ahead.low], [ahead.high - ahead.expected]],
                          fmt="o", color=COLOURS["sup_loss"], ms=4, capsize=3, label=f"next {ahead.n_images}")
            axes.plot([reviewed[-1], x], [y, y + ahead.expected], color=COLOURS["sup_loss"], lw=1, ls="--")
        axes.set(xlabel="images labelled", ylabel="anomalies found")
        axes.xaxis.label.set_fontsize(8)
        axes.yaxis.label.set_fontsize(8)
        axes.legend(fontsize=7, facecolor=BACKGROUND, edgecolor=FOREGROUND, labelcolor=FOREGROUND, loc="upper left")
        style_axes(axes)
        self.draw()
