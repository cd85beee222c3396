"""Long engine work in napari ``thread_worker``s: training cycles and scoring runs, and the one-at-a-time
slot every worker of the plugin runs in (``WorkerSlot``: the cycle, the map, the discovery estimate,
source detection).

The engine's generators are driven from a worker thread.  Stopping sets a
``threading.Event`` that is checked after every yielded event; the engine
generator is then closed *in the worker thread*, so a stopped training cycle
still saves its checkpoint (``core.learning.cycle.run_cycle``) and a stopped scoring run keeps
the parts already written.  Errors the user can fix (``AnomalyMatchError``)
end the run with a ``RunOutcome`` naming them instead of a traceback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from ..core.errors import AnomalyMatchError, SessionError
from ..core.runs import run_until_stopped
from ..core.scoring.run import ScoreResult
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
    ``unsupervised`` (a novelty method): only the ranking without labels (``Session.score_unsupervised``).
    The session's write lock is held throughout, so no command line run writes between the steps."""
    try:
        with session.writing("napari-anomalymatch (training and scoring)"):
            return (yield from _cycle_steps(session, stop, iterations, train, score, unsupervised))
    except AnomalyMatchError as err:
        return RunOutcome(error=str(err))


def _cycle_steps(session: Session, stop: threading.Event, iterations: int | None, train: bool, score: bool,
                 unsupervised: str | None) -> Generator[Any, None, RunOutcome]:
    if unsupervised is not None:
        result, stopped = yield from run_until_stopped(session.score_unsupervised(unsupervised), stop)
        return RunOutcome(score_result=result, stopped=stopped)
    if train:  # the one cycle (``core.learning.cycle``), scoring included unless ``score`` is false
        cycle, stopped = yield from run_until_stopped(session.run_cycle(iterations, score=score), stop)
        return RunOutcome(score_result=None if cycle is None else cycle.scored, stopped=stopped)
    if not score:
        return RunOutcome()
    result, stopped = yield from run_until_stopped(session.score(), stop)
    return RunOutcome(score_result=result, stopped=stopped)


class WorkerSlot:
    """At most one napari worker at a time, busy from its start until its ``finished`` signal.

    Parameters
    ----------
    on_busy
        Called in the GUI thread with True when a worker starts and False when it has finished
        (before the worker's own ``finished`` handler, which may start the next one).
    """

    def __init__(self, on_busy: Callable[[bool], None] | None = None) -> None:
        self.on_busy = on_busy
        self._worker: Any = None

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def start(self, function: Callable[..., Any], *args: Any, connect: dict[str, Callable[..., Any]],
              **kwargs: Any) -> Any:
        """Run ``function(*args, **kwargs)`` (a generator function yields to ``connect['yielded']``) in a
        worker thread with ``connect``'s signal handlers; returns the worker.

        Raises
        ------
        SessionError
            While the last one runs (owners refuse first, with a message saying what runs).
        """
        from napari.qt.threading import create_worker

        if self.busy:
            raise SessionError(f"{function.__name__} cannot start while the last one runs; wait for it to finish")
        after = connect.get("finished")

        def finished() -> None:
            self._worker = None
            if self.on_busy is not None:
                self.on_busy(False)
            if after is not None:
                after()

        self._worker = create_worker(function, *args, _connect={**connect, "finished": finished},
                                     _start_thread=True, **kwargs)
        if self.on_busy is not None:
            self.on_busy(True)
        return self._worker

    def wait(self, timeout_ms: int, what: str) -> None:
        """Process Qt events until the worker has finished; past ``timeout_ms`` raise ``SessionError``
        saying ``what`` did not happen."""
        process_events_until(lambda: not self.busy, timeout_ms, what)


class CycleRunner:
    """One training/scoring run at a time in a worker thread.

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
        self.slot = WorkerSlot(on_busy)
        self._stop = threading.Event()

    @property
    def busy(self) -> bool:
        return self.slot.busy

    def start(self, session: Session, train: bool, score: bool, iterations: int | None = None,
              unsupervised: str | None = None):
        """Start a run; returns its napari worker."""
        if self.busy:
            raise SessionError("a training or scoring run is going; press Stop first")
        self._stop.clear()
        # progress goes to the Train panel's own bar: napari's progress bars process Qt events in
        # every update, which handled the worker's next signals inside this one's, out of order
        connect = {"yielded": self.on_progress, "returned": self.on_outcome}
        return self.slot.start(cycle_events, session, self._stop, connect=connect, iterations=iterations,
                               train=train, score=score, unsupervised=unsupervised)

    def stop(self) -> None:
        """Stop after the current iteration or batch."""
        self._stop.set()

    def wait(self, timeout_ms: int = 600_000) -> None:
        """Process Qt events until the run has finished."""
        self.slot.wait(timeout_ms, "the run did not finish")


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
