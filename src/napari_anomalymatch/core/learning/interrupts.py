"""Holding Ctrl-C back while a file that must not be lost is written.

``interrupts_deferred`` lets a first Ctrl-C wait until the block has finished
(then raises it), so a checkpoint being saved is saved; a second Ctrl-C
aborts at once (the atomic write then keeps the previous file).  Signal
handlers can only be set in the main thread; elsewhere (a napari worker) the
block runs as it is, and the worker's own stop request is honoured between
steps.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def interrupts_deferred(on_first: Callable[[], None] | None = None) -> Iterator[None]:
    """Run the block with a first Ctrl-C deferred to its end; a second one interrupts.

    Parameters
    ----------
    on_first
        Called when the first Ctrl-C arrives (e.g. to say that the save goes on).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[bool] = []

    def handler(signum: int, frame: Any) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(True)
        if on_first is not None:
            on_first()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt
