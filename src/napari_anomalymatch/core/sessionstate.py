"""What a session folder remembers besides labels, models and scores.

::

    history/losses-cycle-NNNN.json   every iteration's losses of that training cycle
    review.json                      the review's display settings, test set file and place

Both are written atomically, so reopening a session shows its loss curves,
its display, its test set and the candidate it was on as they were; a missing or unreadable
``review.json`` means the defaults (it holds no labels, so nothing is lost).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_bytes
from .display import DisplaySettings
from .errors import ConfigError
from .learning.training import TrainProgress

HISTORY_DIR = "history"
REVIEW_FILE = "review.json"


@dataclass(frozen=True)
class ReviewState:
    """The review's display settings, test set file (None: no test set) and place: the image shown
    and the order and filter it was listed in (None: rank 1 of the default order)."""

    display: DisplaySettings = field(default_factory=DisplaySettings)
    test_set: str | None = None
    image_id: str | None = None
    order: str | None = None
    which: str | None = None


def write_loss_history(session_dir: Path, cycle: int, progress: list[TrainProgress]) -> Path:
    """Store one cycle's iterations as ``history/losses-cycle-NNNN.json``; returns the path."""
    path = Path(session_dir) / HISTORY_DIR / f"losses-cycle-{cycle:04d}.json"
    rows = [dataclasses.asdict(event) for event in progress]
    atomic_write_bytes(path, json.dumps(rows).encode())
    return path


def read_loss_history(session_dir: Path) -> list[TrainProgress]:
    """Every stored iteration of every cycle, oldest first (cycles whose file is unreadable are left out)."""
    events: list[TrainProgress] = []
    for path in sorted((Path(session_dir) / HISTORY_DIR).glob("losses-cycle-*.json")):
        if re.fullmatch(r"losses-cycle-\d{4,}\.json", path.name) is None:
            continue
        try:
            events.extend(TrainProgress(**row) for row in json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # a damaged curve is not worth refusing the session for
    return events


def write_review_state(session_dir: Path, state: ReviewState) -> None:
    """Store the display settings and the test set file in ``review.json``."""
    data = {"display": dataclasses.asdict(state.display), "test_set": state.test_set,
            "image_id": state.image_id, "order": state.order, "which": state.which}
    atomic_write_bytes(Path(session_dir) / REVIEW_FILE, json.dumps(data, indent=1).encode())


def read_review_state(session_dir: Path) -> ReviewState:
    """The stored review state, or the defaults when there is none or it cannot be used."""
    path = Path(session_dir) / REVIEW_FILE
    try:
        data = json.loads(path.read_text())
        display = data.get("display", {})
        for name in ("channels", "lupton_bands"):
            if name in display:
                display[name] = tuple(display[name])
        place = {name: str(data[name]) for name in ("image_id", "order", "which") if data.get(name)}
        test_set = data.get("test_set")
        return ReviewState(DisplaySettings(**display), str(test_set) if test_set else None, **place)
    except (OSError, ValueError, TypeError, AttributeError, ConfigError):
        return ReviewState()
