"""Sources detected on a mosaic's first band in a worker thread (the Data panel's *Detect sources*).

``sep`` searches each tile whole: on a survey tile that is seconds to minutes, which on the GUI thread
froze napari.  One detection runs at a time; it writes the catalogue into the new session's folder
(``core.io.detect.detection_catalogue``) and says where, or why it failed, through ``finished``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from psygnal import Signal

from ..core.errors import AnomalyMatchError, SessionError
from ..core.io.detect import DetectConfig, DetectProgress, detect_events, detection_catalogue
from .workers import WorkerSlot


@dataclass(frozen=True)
class DetectOutcome:
    """How a detection ended: the catalogue written and how many sources it holds, or the error to show."""

    catalogue: Path | None = None
    found: int = 0
    tiles: int = 0
    error: str | None = None


class SourceDetection:
    """Detection of a mosaic's sources, one at a time, off the GUI thread."""

    progress = Signal(object)  # DetectProgress after each tile
    busy_changed = Signal(bool)
    finished = Signal(object)  # DetectOutcome

    def __init__(self) -> None:
        self.slot = WorkerSlot(self.busy_changed.emit)

    @property
    def busy(self) -> bool:
        return self.slot.busy

    def start(self, session_dir: str | Path, bands: list[str], config: DetectConfig):
        """Detect the sources on ``bands[0]`` into the new session folder ``session_dir``; returns the worker.

        Raises
        ------
        SessionError
            While a detection runs, or when ``session_dir`` holds a session already.
        ConfigError
            No tiles or no session folder.
        """
        if self.busy:
            raise SessionError("sources are being detected already; wait for that detection to finish")
        out = detection_catalogue(session_dir, bands)  # refused here, where the caller hears of it
        connect = {"yielded": self.progress.emit, "returned": self.finished.emit}
        return self.slot.start(_detection, bands[0], out, config, connect=connect)

    def wait(self, timeout_ms: int = 600_000) -> None:
        """Process Qt events until the detection has finished."""
        self.slot.wait(timeout_ms, "the sources were not detected")


def _detection(pattern: str, out: Path, config: DetectConfig) -> Generator[DetectProgress, None, DetectOutcome]:
    """``detect_events`` for a worker thread: an error the user can fix comes back as its message."""
    last: DetectProgress | None = None
    try:
        events = detect_events(pattern, out, config)
        while True:
            try:
                last = next(events)
            except StopIteration as done:
                return DetectOutcome(done.value, last.found if last else 0, last.n_tiles if last else 0)
            yield last
    except AnomalyMatchError as err:
        return DetectOutcome(error=str(err))
