"""A session's loss curves: every iteration's losses of each training cycle.

::

    history/losses-cycle-NNNN.json   every iteration's losses of that training cycle

Written atomically, so reopening a session shows its loss curves as they were.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from ..atomic import atomic_write_bytes
from .progress import TrainProgress

HISTORY_DIR = "history"


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
