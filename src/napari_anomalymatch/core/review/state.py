"""What a session remembers of its review besides the labels: the display, the test set and the place.

::

    review.json   the review's display settings, test set file and place

Written atomically, so reopening a session shows its display, its test set and the candidate
it was on as they were; a missing or unreadable ``review.json`` means the defaults (it holds no
labels, so nothing is lost).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import ConfigError
from .display import DisplaySettings

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
