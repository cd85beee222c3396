"""The Metrics panel: the discovery curve and what remains to find; AUROC, AUPRC, ROC and
precision-recall curves and score histograms.

The discovery curve (anomalies found against images labelled) and the estimate of the anomalies
still unreviewed need no test set: they come from the session's labels and newest scores
(``core.review.discovery``), redrawn after every label and cycle.

Measured on a held-out test set (a CSV/ECSV with id or path and is_anomaly or
label columns, or the is_anomaly column the data source carries: a benchmark
manifest's, the FIRST sample's), leaving out the images labelled for training;
refreshed after every cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, FileEdit, PushButton, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..core.errors import AnomalyMatchError, ConfigError
from .compact import compact_file_edit, status_label
from .data_widget import text_of
from .notifications import notify_errors
from .plots import DiscoveryPlot, MetricsPlot

if TYPE_CHECKING:
    from .controller import AnomalyMatchController


class MetricsWidget(QWidget):
    """Test-set metrics and curves of the current scores."""

    def __init__(self, controller: AnomalyMatchController) -> None:
        super().__init__()
        self.controller = controller
        self._metrics_outdated = False  # the plots are behind the summary (drawn when shown)
        self._drawn: tuple[Any, str] = (None, "no test set or no scores yet")
        self.test_file = compact_file_edit(FileEdit(mode="r", filter="*.csv *.ecsv", label="Test set"))
        self.load_button = PushButton(text="Load test set")
        self.truth_button = PushButton(text="Use the source's own truth",
                                       tooltip="the is_anomaly column of a manifest, or of the FIRST sample")
        self.refresh_button = PushButton(text="Refresh")
        self.summary = status_label("no test set loaded")
        self.plot = MetricsPlot()
        self.discovery = status_label("no session open")
        self.discovery_plot = DiscoveryPlot()
        self.stop_rate = SpinBox(value=controller.stop_rate, min=1, max=10**7, label="Stop below 1 anomaly in",
                                 tooltip="suggest stopping when the next images are expected to hold fewer "
                                         "anomalies than this rate")
        self.stop_rate.native.setKeyboardTracking(False)  # applied when the typing is done, not per digit
        form = Container(widgets=[self.stop_rate, self.test_file, self.load_button, self.truth_button,
                                  self.refresh_button])
        layout = QVBoxLayout(self)
        layout.addWidget(self.discovery.native)
        layout.addWidget(self.discovery_plot)
        layout.addWidget(form.native)
        layout.addWidget(self.summary.native)  # outside the form: the full width, not the field column
        layout.addWidget(self.plot)
        self.load_button.changed.connect(notify_errors(self._on_load))
        self.truth_button.changed.connect(notify_errors(lambda *_: self.controller.use_source_truth()))
        self.refresh_button.changed.connect(self.refresh)
        self.refresh_button.changed.connect(controller.discovery_watch.request)
        self.stop_rate.changed.connect(lambda value: self.controller.set_stop_rate(value))
        controller.run_finished.connect(self.refresh)
        controller.discovery_watch.changed.connect(self.refresh_discovery)
        controller.test_set_changed.connect(self.refresh)
        controller.session_changed.connect(self._on_session_changed)

    def _on_load(self, *_: Any) -> None:
        path = text_of(self.test_file)
        if not path:
            raise ConfigError("choose a test-set file (CSV/ECSV with id or path, and is_anomaly columns)")
        self.controller.load_test_set(path)

    def _on_session_changed(self, session: Any) -> None:
        if session is None:
            self.controller.test_set = None
        self.refresh()
        self.refresh_discovery()

    def showEvent(self, event: Any) -> None:
        """Shown again: draw what changed while hidden."""
        super().showEvent(event)
        if self._metrics_outdated:
            self._draw(*self._drawn)
        self.refresh_discovery()

    def refresh_discovery(self, *_: Any) -> None:
        """Redraw the discovery curve and the estimate of what remains (``DiscoveryWatch``'s newest),
        while the panel is shown: a label given with the keyboard must not wait for a plot nobody sees."""
        if not self.isVisible():
            return
        state = self.controller.discovery_watch.state
        if state is None:
            self.discovery.value = "no session open" if self.controller.session is None else "estimating ..."
            self.discovery_plot.show_state(None)
            return
        self.discovery.value = state.describe()
        self.discovery_plot.show_state(state)

    def refresh(self, *_: Any) -> None:
        """Recompute the metrics for the current scores; the plots are redrawn while the panel is
        shown (each new ranking redrew three hidden plots on the GUI thread: ~100 ms)."""
        test = self.controller.test_set
        if test is None:
            self.summary.value = "no test set loaded"
            self._draw(None, "no test set or no scores yet")
            return
        try:
            report = self.controller.test_report()
        except AnomalyMatchError as err:
            self.summary.value = str(err)
            self._draw(None, str(err))
            return
        if report is None:
            self.summary.value = f"test set: {len(test.indices)} images; no scores yet (train a cycle)"
            self._draw(None, "no test set or no scores yet")
            return
        m = report.metrics
        cycle = self.controller.queue.scores_cycle
        self.summary.value = (f"cycle {cycle}: AUROC <b>{m['auroc']:.3f}</b>, AUPRC <b>{m['auprc']:.3f}</b> "
                              f"on {report.n_evaluated} test images ({m['n_anomalies']} anomalies; "
                              f"{report.n_left_out} labelled for training left out)")
        self._draw(report)

    def _draw(self, report: Any, message: str = "") -> None:
        self._drawn = (report, message)
        if not self.isVisible():
            self._metrics_outdated = True
            return
        self._metrics_outdated = False
        if report is None:
            self.plot.clear(message)
        else:
            self.plot.show(report)
