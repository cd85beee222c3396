"""Where a new session goes when the user has not said: a fresh folder named after its images."""

from __future__ import annotations

import re
from pathlib import Path

SESSIONS_DIR = "anomalymatch-sessions"  # under the home folder


def propose_session_folder(name: str, parent: str | Path | None = None) -> Path:
    """A folder for a new session of images called ``name`` (a napari layer's, say): ``parent/<name>``,
    or ``<name>-2``, ``-3`` ... where that is taken; ``parent`` defaults to ``~/anomalymatch-sessions``.

    Nothing is created: the user may still choose another before the session is made.
    """
    parent = Path(parent) if parent is not None else Path.home() / SESSIONS_DIR
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "session"
    folder, number = parent / stem, 1
    while folder.exists() and any(folder.iterdir()):
        number += 1
        folder = parent / f"{stem}-{number}"
    return folder
