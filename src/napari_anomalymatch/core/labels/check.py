"""Checks of a label store on disk: present and not empty when a session opens, and, once opened,
readable truthfully (edited by hand or written by another program).

A store whose tables lack the columns this version reads, one from a newer
version, or one holding label codes that mean nothing is refused with what was
found and the way out; nothing in it is changed (labels are only ever changed
by their own labelling).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..errors import SessionError

COLUMNS = {
    "events": {"seq", "image_id", "label", "previous", "time", "cycle", "source", "reverts", "undone"},
    "current": {"image_id", "label", "seq"},
}
SHOWN = 5  # rows named in a message


def check_store(db: sqlite3.Connection, path: Path, schema_version: int, names: dict[int, str]) -> None:
    """Refuse a store this version cannot read truthfully.

    Raises
    ------
    SessionError
        Another schema (tables or columns missing, or a newer version), or unknown label codes.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > schema_version:
        raise SessionError(f"{path}: the label store was written by a newer napari-anomalymatch (schema "
                           f"{version}; this one reads up to {schema_version}); upgrade to open it")
    tables = {table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")} for table in COLUMNS}
    if not any(tables.values()):
        return  # a new store: its tables are made next
    for table, wanted in COLUMNS.items():
        found = tables[table]
        missing = sorted(wanted - found)
        if missing:
            raise SessionError(
                f"{path}: the label store has another schema: its table '{table}' lacks {missing} (found "
                f"{sorted(found) or 'no such table'}); it was edited by hand or written by another program. "
                f"Restore it from a backup, or start a new store from a label file: anomalymatch label "
                f"{path.parent} FILE.csv --new-store (the old store is kept beside it)")
    _check_codes(db, path, names)


def _check_codes(db: sqlite3.Connection, path: Path, names: dict[int, str]) -> None:
    codes = sorted(names)
    marks = ",".join("?" * len(codes))
    rows = db.execute(f"SELECT image_id, label FROM current WHERE label NOT IN ({marks}) "
                      f"ORDER BY image_id LIMIT {SHOWN + 1}", codes).fetchall()
    if not rows:
        return
    said = ", ".join(f"{image_id!r} has {label!r}" for image_id, label in rows[:SHOWN])
    known = ", ".join(f"{code} ({name})" for code, name in sorted(names.items()))
    raise SessionError(
        f"{path}: the label store holds label codes that mean nothing ({said}{' ...' if len(rows) > SHOWN else ''}); "
        f"the codes are {known}. It was edited by hand: set those rows back (sqlite3 {path} \"UPDATE current "
        "SET label = 1 WHERE image_id = '...'\"), or restore the store from a backup")


def require_label_store(path: Path) -> None:
    """Refuse a missing or empty label store: every session is created with one."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return
    what = "is missing" if size is None else "is empty (0 bytes)"
    raise SessionError(
        f"{path}: the session's label store {what}, so every label given would be lost; restore it "
        "from a backup, or start a new store from an export or label file with "
        f"'anomalymatch label {path.parent} FILE.csv --new-store'")


def move_label_store_aside(path: Path) -> None:
    """Keep a damaged or empty store under another name (labels are never deleted)."""
    if not path.exists():
        return
    aside = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.old")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
