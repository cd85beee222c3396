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
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from ..core.errors import AnomalyMatchError
from ..core.scoring import ScoreResult
from ..core.session import Session


@dataclass(frozen=True)
class RunOutcome:
    """How a worker's run ended: its score result (if it scored), whether it was stopped, or an error."""

    score_result: ScoreResult | None = None
    stopped: bool = False
    error: str | None = None


def run_until_stopped(events: Iterator[Any], stop: threading.Event) -> Generator[Any, None, tuple[Any, bool]]:
    """Yield ``events`` until they end or ``stop`` is set; return (their return value, stopped).

    ``events`` is closed in every case, in the thread that drives this generator.
    """
    try:
        while True:
            if stop.is_set():
                return None, True
            try:
                event = next(events)
            except StopIteration as finished:
                return finished.value, False
            yield event
    finally:
        events.close()  # type: ignore[attr-defined]


def cycle_events(session: Session, stop: threading.Event, iterations: int | None = None,
                 train: bool = True, score: bool = True) -> Generator[Any, None, RunOutcome]:
    """Train one cycle and/or score the collection, yielding the engine's progress events."""
    try:
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
                       iterations: int | None = None, train: bool = True, score: bool = True):
    """Start ``cycle_events`` in a napari ``GeneratorWorker`` with the given signal handlers."""
    from napari.qt.threading import create_worker

    return create_worker(cycle_events, session, stop, iterations=iterations, train=train, score=score,
                         _connect=connect, _start_thread=True)
