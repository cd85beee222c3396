"""A display for benchmark scripts: the current one, or a virtual X server (Xvfb) when there is none."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def display(size: tuple[int, int] = (1600, 1000)) -> Iterator[None]:
    """Run the block with an X display (starting Xvfb through pyvirtualdisplay if needed)."""
    if os.environ.get("DISPLAY"):
        yield
        return
    from pyvirtualdisplay import Display

    with Display(visible=False, size=size, color_depth=24):
        yield


def settle(app, seconds: float) -> None:
    """Let Qt run (timers, paints) for ``seconds``, as between a person's key presses."""
    import time

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)
