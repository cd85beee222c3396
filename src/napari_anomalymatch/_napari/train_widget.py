"""The Train panel: the training and scoring settings as a magicgui form, Train/Score/Stop, live losses.

Training and scoring run in a worker thread (``controller.train_cycle``); the
viewer keeps drawing and answering keys meanwhile.  Stop acts after the
current iteration and keeps the model trained so far.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, PushButton, SpinBox
from qtpy.QtWidgets import QProgressBar, QVBoxLayout, QWidget

from ..core.config import DEVICES, SessionConfig
from ..core.learning.progress import TrainProgress, TrainStage
from ..core.loading import LoadProgress
from ..core.scoring.novelty import EmbedProgress
from ..core.scoring.run import ScoreBatch
from .compact import status_label
from .editing import edit_finished
from .notifications import notify_errors
from .plots import LossPlot

if TYPE_CHECKING:
    from .controller import AnomalyMatchController
    from .workers import RunOutcome


class TrainSettingsForm(Container):
    """The training settings of ``SessionConfig``, and how images are scored, as form fields."""

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(labels=True)
        self.iterations = SpinBox(min=1, max=1_000_000, label="Iterations per cycle")
        self.batch_size = SpinBox(min=2, max=4096, label="Batch size (labelled)")
        self.unlabelled_ratio = SpinBox(min=0, max=64, label="Unlabelled ratio")
        self.confidence_threshold = FloatSpinBox(min=0.5, max=1.0, step=0.01, label="Pseudo-label threshold")
        self.learning_rate = FloatSpinBox(min=1e-6, max=10.0, step=0.0005, label="Learning rate")
        self.learning_rate.native.setDecimals(5)
        self.image_size = SpinBox(min=16, max=1024, step=16, label="Image size (px)")
        self.model_name = LineEdit(label="Model (timm name)")
        self.seed = SpinBox(min=0, max=2**31 - 1, label="Seed")
        self.pool_size = SpinBox(min=0, max=10_000_000, step=1000, label="Unlabelled pool per cycle")
        self.device = ComboBox(choices=list(DEVICES), label="Device")
        self.tta = CheckBox(text="Score all 8 flips/quarter turns (8x time)",
                            tooltip="Each image's score is the mean over its flips and quarter turns: "
                                    "for images with no up, such as the sky's")
        self.extend([self.iterations, self.batch_size, self.unlabelled_ratio, self.confidence_threshold,
                     self.learning_rate, self.image_size, self.model_name, self.seed, self.pool_size,
                     self.device, self.tta])
        self.show_config(config)

    def show_config(self, config: SessionConfig) -> None:
        with self.changed.blocked():  # showing a config is not editing it
            for name, value in config.settings(*FORM_SETTINGS).items():
                getattr(self, name).value = value

    def settings(self) -> dict[str, Any]:
        """The form's values by their setting names (``SessionConfig.with_settings`` checks them)."""
        values = {name: getattr(self, name).value for name in FORM_SETTINGS}
        values["model_name"] = values["model_name"].strip()
        return values


# The form's fields, named as the settings they show (see SessionConfig.with_settings).
FORM_SETTINGS = ("iterations", "batch_size", "unlabelled_ratio", "confidence_threshold", "learning_rate",
                 "image_size", "model_name", "seed", "pool_size", "device", "tta")


class TrainWidget(QWidget):
    """Settings, run buttons, a progress line and the live loss plot."""

    def __init__(self, controller: AnomalyMatchController) -> None:
        super().__init__()
        self.controller = controller
        self.form = TrainSettingsForm(controller.config)
        self.train_button = PushButton(text="Train cycle (then score)")
        self.score_button = PushButton(text="Score only")
        self.rank_button = PushButton(text="Rank without labels",
                                      tooltip="Score every image by how unusual its pretrained embedding "
                                              "is, to find the first anomalies to label")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = status_label()
        self.progress = RunProgressBar()
        self._run_ended = False  # progress events queued behind a run's end are dropped
        self.plot = LossPlot()
        buttons = Container(widgets=[self.train_button, self.score_button, self.rank_button, self.stop_button],
                            layout="horizontal", labels=False)
        layout = QVBoxLayout(self)
        for widget in (self.form.native, buttons.native, self.progress, self.status.native, self.plot):
            layout.addWidget(widget)
        for name in FORM_SETTINGS:  # a typed model name counts once finished, not letter by letter
            edit_finished(getattr(self.form, name)).connect(notify_errors(self._on_form_changed))
        self.train_button.changed.connect(notify_errors(self._on_train))
        self.score_button.changed.connect(notify_errors(self._on_score))
        self.rank_button.changed.connect(notify_errors(self._on_rank))
        self.stop_button.changed.connect(self._on_stop)
        controller.busy_changed.connect(self._on_busy_changed)
        controller.progress.connect(self._on_progress)
        controller.run_finished.connect(self._on_run_finished)
        controller.session_changed.connect(self._on_session_changed)

    def apply_settings(self) -> None:
        """Hand the form's settings to the controller (session and new sessions)."""
        self.controller.update_settings(**self.form.settings())

    def _on_form_changed(self, *_: Any) -> None:
        """Edits apply at once, so the r key retrains with what the form shows."""
        if not self.controller.busy:
            self.apply_settings()

    def _on_train(self, *_: Any) -> None:
        self.apply_settings()
        self.controller.train_cycle()

    def _on_score(self, *_: Any) -> None:
        self.controller.score()

    def _on_rank(self, *_: Any) -> None:
        self.controller.score_unsupervised()

    def _on_stop(self, *_: Any) -> None:
        self.controller.stop()
        self.status.value = "stopping after this iteration ..."

    def _on_busy_changed(self, busy: bool) -> None:
        if busy:
            self._run_ended = False
            self.status.value = "starting ..."
        self.progress.set_running(busy)
        self.train_button.enabled = not busy
        self.score_button.enabled = not busy
        self._enable_ranking(busy)
        self.stop_button.enabled = busy
        self.form.enabled = not busy

    def _enable_ranking(self, busy: bool = False) -> None:
        """The ranking without labels is for a session with no trained model yet."""
        session = self.controller.session
        self.rank_button.enabled = not busy and session is not None and session.cycle == 0

    def _on_progress(self, event: Any) -> None:
        if self._run_ended:
            return
        self.progress.show_event(event)
        if isinstance(event, TrainStage):
            self.status.value = f"cycle {event.cycle}: {event.description} ..."
        elif isinstance(event, LoadProgress):
            self.status.value = f"loading training images {event.n_done}/{event.n_total}"
        elif isinstance(event, TrainProgress):
            if event.iteration == 1:
                self.plot.mark_cycle(event.cycle)
            self.plot.add(event)
            self.status.value = (f"cycle {event.cycle}: iteration {event.iteration}/{event.iterations}, "
                                 f"loss {event.loss:.3f}, mask rate {event.mask_ratio:.2f}, "
                                 f"{event.seconds_per_iteration:.2f} s/it")
        elif isinstance(event, EmbedProgress):
            self.status.value = f"embedding the reference sample {event.n_done}/{event.n_total}"
        elif isinstance(event, ScoreBatch):
            self.status.value = (f"scoring {event.n_done}/{event.n_total} "
                                 f"({event.images_per_second:.0f} images/s)")

    def _on_run_finished(self, outcome: RunOutcome) -> None:
        self._run_ended = True  # its outcome, not a late progress line, is what the status keeps
        self.progress.set_running(False)
        session = self.controller.session
        cycle = session.cycle if session is not None else 0
        if outcome.error:
            self.status.value = f"failed: {outcome.error}"
        elif outcome.stopped:
            self.status.value = f"stopped; model of cycle {cycle} saved"
        elif outcome.score_result is not None and session is not None and session.runs.ranking_method():
            self.status.value = (f"unsupervised ranking of {outcome.score_result.n_scored} images: "
                                 "label a few anomalies, then train")
        elif outcome.score_result is not None:
            r = outcome.score_result
            self.status.value = (f"cycle {cycle}: scored {r.n_scored} images "
                                 f"({r.images_per_second:.0f} images/s)")
        self._enable_ranking()

    def _on_session_changed(self, session: Any) -> None:
        self.plot.clear()
        self._enable_ranking(self.controller.busy)
        if session is not None:
            self.form.show_config(session.config)
            self.plot.show_history(self.controller.loss_history())


class RunProgressBar(QProgressBar):
    """The run's stage and how far it is: loading, each iteration, embedding and scoring; the name
    alone for the stages that report no progress of their own. Hidden between runs.

    Never Qt's busy (0..0) bar: its animation is a stream of events through the viewer's Python
    event filters, which starved the worker of the GIL (building the model took 100 s, not 6)."""

    def __init__(self) -> None:
        super().__init__()
        self.setVisible(False)

    def set_running(self, running: bool) -> None:
        if running:
            self._set(0, 1, "starting")
        self.setVisible(running)

    def show_event(self, event: Any) -> None:
        if isinstance(event, TrainStage):
            self._set(0, 1, event.description)
        elif isinstance(event, LoadProgress):
            self._set(event.n_done, event.n_total, "loading images %v/%m")
        elif isinstance(event, TrainProgress):
            self._set(event.iteration, event.iterations, f"cycle {event.cycle}: iteration %v/%m")
        elif isinstance(event, EmbedProgress):
            self._set(event.n_done, event.n_total, "embedding the reference sample %v/%m")
        elif isinstance(event, ScoreBatch):
            self._set(event.n_done, event.n_total, "scoring %v/%m")

    def _set(self, value: int, total: int, text: str) -> None:
        self.setRange(0, total)
        self.setValue(value)
        self.setFormat(text)
