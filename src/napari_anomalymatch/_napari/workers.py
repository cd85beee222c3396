"""Long engine work in napari ``thread_worker``s: training cycles and scoring runs.

The engine's generators are driven from a worker thread.  Stopping sets a
``threading.Event`` that is checked after every yielded event; the engine
generator is then closed *in the worker thread*, so a stopped training cycle
still saves its checkpoint (``Session.train``) and a stopped scoring run keeps
the parts already written.  Errors the user can fix (``AnomalyMatchError``)
end the run with a ``RunOutcome`` naming them instead of a traceback.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from ..core.errors import AnomalyMatchError, SessionError
from ..core.learning.training import TrainProgress
from ..core.loading import LoadProgress
from ..core.runs import run_until_stopped
from ..core.scoring.novelty import EmbedProgress
from ..core.scoring.run import ScoreBatch, ScoreResult
from ..core.session import Session


@dataclass(frozen=True)
class RunOutcome:
    """How a worker's run ended: its score result (if it scored), whether it was stopped, or an error."""

    score_result: ScoreResult | None = None
    stopped: bool = False
    error: str | None = None


def cycle_events(session: Session, stop: threading.Event, iterations: int | None = None,
                 train: bool = True, score: bool = True,
                 unsupervised: str | None = None) -> Generator[Any, None, RunOutcome]:
    """Train one cycle and/or score the collection, yielding the engine's progress events;
    ``unsupervised`` (a novelty method): only the ranking without labels (``Session.score_unsupervised``)."""
    try:
        if unsupervised is not None:
            result, stopped = yield from run_until_stopped(session.score_unsupervised(unsupervised), stop)
            return RunOutcome(score_result=result, stopped=stopped)
        if train:
            _, stopped = yield from run_until_stopped(session.train(iterations), stop)
            if stopped:
                return RunOutcome(stopped=True)
        if not score:
            return RunOutcome()
        result, stopped = yield from run_until_stopped(session.score(), stop)
        return RunOutcome(score_result=result, stopped=stopped)
    except AnomalyMatchError as err:
        return RunOutcome(error=str(err))


def start_cycle_worker(session: Session, stop: threading.Event, connect: dict[str, Any],
                       iterations: int | None = None, train: bool = True, score: bool = True,
                       unsupervised: str | None = None):
    """Start ``cycle_events`` in a napari ``GeneratorWorker`` with the given signal handlers."""
    from napari.qt.threading import create_worker

    return create_worker(cycle_events, session, stop, iterations=iterations, train=train, score=score,
                         unsupervised=unsupervised, _connect=connect, _start_thread=True)


class CycleRunner:
    """One training/scoring run at a time in a worker thread, shown with napari progress bars.

    Parameters
    ----------
    on_progress
        Called in the GUI thread with every engine progress event.
    on_outcome
        Called in the GUI thread with the run's ``RunOutcome``.
    on_busy
        Called with True when a run starts and False when it has finished.
    """

    def __init__(self, on_progress: Callable[[Any], None], on_outcome: Callable[[RunOutcome], None],
                 on_busy: Callable[[bool], None]) -> None:
        self.on_progress = on_progress
        self.on_outcome = on_outcome
        self.on_busy = on_busy
        self._worker: Any = None
        self._stop = threading.Event()
        self._bars: dict[str, Any] = {}
        self._pending: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._delivering = False

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def start(self, session: Session, train: bool, score: bool, iterations: int | None = None,
              unsupervised: str | None = None):
        """Start a run; returns its napari worker."""
        if self.busy:
            raise SessionError("a training or scoring run is going; press Stop first")
        self._stop.clear()
        connect = {"yielded": self._in_order(self._on_yielded), "returned": self._in_order(self.on_outcome),
                   "finished": self._in_order(self._on_finished)}
        self._worker = start_cycle_worker(session, self._stop, connect, iterations=iterations,
                                          train=train, score=score, unsupervised=unsupervised)
        self.on_busy(True)
        return self._worker

    def stop(self) -> None:
        """Stop after the current iteration or batch."""
        self._stop.set()

    def wait(self, timeout_ms: int = 600_000) -> None:
        """Process Qt events until the run has finished."""
        process_events_until(lambda: self._worker is None, timeout_ms, "the run did not finish")

    def _in_order(self, handler: Callable[[Any], None]) -> Callable[..., None]:
        """``handler`` for a worker signal, called strictly in the order the signals came.

        napari's progress bars process Qt events on every update, so the next signals of the
        worker would otherwise be handled inside this one's, before it (a bar going back to
        an earlier value, a progress line after the run's end)."""
        def deliver(*args: Any) -> None:
            self._pending.append((handler, args[0] if args else None))
            if not self._delivering:  # else the call below this one on the stack delivers it
                self._deliver_pending()
        return deliver

    def _deliver_pending(self) -> None:
        self._delivering = True
        try:
            while self._pending:
                handler, value = self._pending.popleft()
                handler(value)
        finally:
            self._delivering = False
            if self._pending:  # a handler raised: the rest (the run's end too) still comes, next
                from qtpy.QtCore import QTimer

                QTimer.singleShot(0, self._deliver_pending)

    def _on_yielded(self, event: Any) -> None:
        if isinstance(event, LoadProgress):
            bar = self._bar("load", event.n_total, "loading images")
            bar.update(event.n_done - bar.n)
        elif isinstance(event, TrainProgress):
            self._bar("train", event.iterations, f"training cycle {event.cycle}").update(1)
        elif isinstance(event, EmbedProgress):
            bar = self._bar("embed", event.n_total, "embedding the reference sample")
            bar.update(event.n_done - bar.n)
        elif isinstance(event, ScoreBatch):
            bar = self._bar("score", event.n_total, "scoring")
            bar.update(event.n_done - bar.n)
        self.on_progress(event)

    def _bar(self, key: str, total: int, description: str):
        if key not in self._bars:
            from napari.utils import progress

            self._bars[key] = progress(total=total, desc=description)
        return self._bars[key]

    def _on_finished(self, _: Any = None) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        self._worker = None
        self.on_busy(False)


def process_events_until(done: Callable[[], bool], timeout_ms: int, what: str) -> None:
    """Process Qt events until ``done()``; past ``timeout_ms`` raise ``SessionError`` saying ``what``."""
    from qtpy.QtCore import QElapsedTimer
    from qtpy.QtWidgets import QApplication

    clock = QElapsedTimer()
    clock.start()
    while not done():
        if clock.elapsed() > timeout_ms:
            raise SessionError(f"{what} within {timeout_ms / 1000:.0f} s")
        QApplication.processEvents()
        time.sleep(0.005)


def main_thread_runner() -> Any:
    """An object whose ``run(action)`` may be called from any thread and calls ``action()`` in the Qt
    main thread (where it was made): for callbacks of the SAMP client's own thread."""
    from qtpy.QtCore import QObject, Signal, Slot

    class MainThreadRunner(QObject):
        delivered = Signal(object)

        def __init__(self) -> None:
            super().__init__()
            self.delivered.connect(self._call)  # queued: a slot of an object living in the main thread

        def run(self, action: Callable[[], Any]) -> None:
            self.delivered.emit(action)

        @Slot(object)
        def _call(self, action: Callable[[], Any]) -> None:
            action()

    return MainThreadRunner()
