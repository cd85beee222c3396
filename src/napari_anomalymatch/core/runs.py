"""Driving the engine's long work: generators that yield progress events and return a result.

Training cycles, scoring runs and the evaluation protocol are generators, so that
every front end shows progress its own way (tqdm, napari, a callback) and can stop
between events.  These two drivers are the only loops over them; both close the
generator however they end, so its own clean-up (a stopped cycle's checkpoint, a
stopped run's parts) runs in the driving thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

Event = TypeVar("Event")
Result = TypeVar("Result")


def run_to_end(events: Generator[Event, Any, Result], on_event: Callable[[Event], None] | None = None) -> Result:
    """Drive ``events`` to their end, calling ``on_event(event)`` for each; return their value.

    An exception from ``on_event`` (Ctrl-C included) closes ``events`` before it propagates.
    """
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as finished:
                return finished.value
            if on_event is not None:
                on_event(event)
    finally:
        events.close()


def map_events(events: Generator[Event, Any, Result], change: Callable[[Event], Any]) -> Generator[Any, None, Result]:
    """Yield ``change(event)`` for each of ``events``; return their value; ``events`` is closed however it ends."""
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as finished:
                return finished.value
            yield change(event)
    finally:
        events.close()


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
