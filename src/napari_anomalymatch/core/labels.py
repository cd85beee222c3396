"""The label store: every label a person gave, kept in SQLite, never overwritten.

Each change is an appended event (image id, label, previous label, time,
cycle, source); the current label of every image is kept beside the events in
the same transaction.  ``undo`` appends an event that restores the previous
label, so the history itself is never lost.  Each call commits before it
returns (WAL journal, ``synchronous=FULL``): a process killed at any moment
keeps every label whose call returned.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import disk_errors, free_space_text
from .errors import DiskFullError, LabelError, ReadOnlyError, SessionError

UNLABELED = -1
NORMAL = 0
ANOMALY = 1
UNSURE = 2
LABEL_NAMES = {UNLABELED: "unlabelled", NORMAL: "normal", ANOMALY: "anomaly", UNSURE: "unsure"}
_LABEL_WORDS = {
    "anomaly": ANOMALY, "anomalous": ANOMALY, "1": ANOMALY, "true": ANOMALY, "yes": ANOMALY,
    "normal": NORMAL, "0": NORMAL, "false": NORMAL, "no": NORMAL,
    "unsure": UNSURE, "skip": UNSURE, "2": UNSURE,
    "": UNLABELED, "-1": UNLABELED, "unlabelled": UNLABELED, "unlabeled": UNLABELED,
    "none": UNLABELED, "nan": UNLABELED,
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT NOT NULL,
    label INTEGER NOT NULL,
    previous INTEGER NOT NULL,
    time REAL NOT NULL,
    cycle INTEGER NOT NULL,
    source TEXT NOT NULL,
    reverts INTEGER,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS current (
    image_id TEXT PRIMARY KEY,
    label INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_id ON events (image_id);
"""


def parse_label(value: Any, where: str = "label") -> int:
    """Turn ``'anomaly'``, ``'normal'``, ``1``, ``0``, ``''`` ... into a label code."""
    if isinstance(value, bool):
        return ANOMALY if value else NORMAL
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:  # NaN
            return UNLABELED
        if float(value) in (-1.0, 0.0, 1.0, 2.0):
            return int(value)
    text = str(value).strip().lower()
    if text in _LABEL_WORDS:
        return _LABEL_WORDS[text]
    try:
        return parse_label(float(text), where)
    except ValueError:
        pass
    raise LabelError(
        f"{where}: label {str(value)!r} is not understood; expected anomaly, normal, unsure, "
        "1, 0 or empty"
    )


@dataclass(frozen=True)
class LabelEvent:
    """One change of one image's label."""

    seq: int
    image_id: str
    label: int
    previous: int
    time: float
    cycle: int
    source: str
    reverts: int | None
    undone: bool


class LabelStore:
    """Labels of one session in an SQLite file; safe to use from several threads."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        try:
            self._db = self._connect_writable() if not read_only else self._connect_read_only()
        except sqlite3.DatabaseError as err:
            raise self._open_error(err) from err

    def _connect_writable(self) -> sqlite3.Connection:
        with disk_errors(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=10000")
        db.executescript(_SCHEMA)
        return db

    def _connect_read_only(self) -> sqlite3.Connection:
        """Open for reading only; on a read-only folder or full disk, where SQLite cannot make
        its ``-shm`` file, the file is read as immutable (nobody can be writing it then)."""
        if not self.path.exists():
            raise SessionError(f"{self.path}: no label store here")
        uri = self.path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
            db.execute("SELECT COUNT(*) FROM current").fetchone()
            return db
        except sqlite3.OperationalError as err:
            if not _cannot_write(self.path.parent, err):
                raise
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False, isolation_level=None)
        db.execute("SELECT COUNT(*) FROM current").fetchone()
        return db

    def _open_error(self, err: sqlite3.DatabaseError) -> SessionError:
        """Say what really stops the store from opening: a full disk, a read-only folder, or damage."""
        if _looks_like_sqlite(self.path) and _cannot_write(self.path.parent, err):
            if _disk_full(self.path.parent, err):
                return DiskFullError(
                    f"{self.path}: the disk is full ({free_space_text(self.path.parent)} free), so the "
                    f"label store cannot be opened for writing ({err}); the labels in it are intact. "
                    "Free some space and run the command again")
            return ReadOnlyError(
                f"{self.path}: the session folder is read-only for you, so the label store cannot be "
                f"opened for writing ({err}); the labels in it are intact. Commands that only read "
                "(info, export) still work; make the folder writable to label or train")
        return SessionError(
            f"{self.path}: not a readable label store ({err}); move it aside and start a new store "
            "from an export ('anomalymatch label SESSION EXPORT.csv --new-store'), or restore it "
            "from a backup"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- changing labels ---------------------------------------------------------

    def set(self, image_id: str, label: int | str, cycle: int = 0,
            source: str = "user") -> LabelEvent | None:
        """Give ``image_id`` a label; returns the event, or None if nothing changed."""
        events = self.set_many([(image_id, label)], cycle=cycle, source=source)
        return events[0] if events else None

    def set_many(self, items: Iterable[tuple[str, int | str]], cycle: int = 0,
                 source: str = "user") -> list[LabelEvent]:
        """Label several images in one transaction (all or none are stored)."""
        parsed = [(str(i), parse_label(v, f"label of {i!r}")) for i, v in items]
        now = time.time()
        events = []
        with self._lock, self._transaction():
            for image_id, label in parsed:
                previous = self._current_label(image_id)
                if previous == label:
                    continue
                events.append(self._append(image_id, label, previous, now, cycle, source, None))
        return events

    def undo(self) -> LabelEvent | None:
        """Revert the latest change not yet undone; returns the (last) reverting event.

        A change made by one import (``set_many`` from a label file or a
        catalogue: one source other than ``user``, one moment) is reverted
        as a whole, so one undo brings back every label the import replaced.
        """
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT seq, time, source FROM events "
                "WHERE undone = 0 AND reverts IS NULL ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            seq, when, source = row
            batch = [(seq,)] if source == "user" else self._db.execute(
                "SELECT seq FROM events WHERE undone = 0 AND reverts IS NULL AND time = ? AND source = ? "
                "ORDER BY seq DESC", (when, source)).fetchall()
            return [self._revert(seq) for (seq,) in batch][-1]

    def _revert(self, seq: int) -> LabelEvent:
        image_id, previous, cycle = self._db.execute(
            "SELECT image_id, previous, cycle FROM events WHERE seq = ?", (seq,)).fetchone()
        current = self._current_label(image_id)
        self._db.execute("UPDATE events SET undone = 1 WHERE seq = ?", (seq,))
        return self._append(image_id, previous, current, time.time(), cycle, "undo", seq)

    # -- reading labels ------------------------------------------------------------

    def get(self, image_id: str) -> int:
        with self._lock:
            return self._current_label(str(image_id))

    def current(self, include_unsure: bool = False) -> dict[str, int]:
        """Every labelled image's current label (normal/anomaly, and unsure if asked)."""
        wanted = (NORMAL, ANOMALY, UNSURE) if include_unsure else (NORMAL, ANOMALY)
        marks = ",".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(
                f"SELECT image_id, label FROM current WHERE label IN ({marks})", wanted
            ).fetchall()
        return dict(rows)

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT label, COUNT(*) FROM current GROUP BY label").fetchall()
        counts = {name: 0 for code, name in LABEL_NAMES.items() if code != UNLABELED}
        for code, count in rows:
            if code != UNLABELED:
                counts[LABEL_NAMES[code]] = count
        return counts

    def history(self, image_id: str | None = None) -> list[LabelEvent]:
        """All events, oldest first (of one image if given)."""
        query = "SELECT seq, image_id, label, previous, time, cycle, source, reverts, undone FROM events"
        args: tuple[Any, ...] = ()
        if image_id is not None:
            query += " WHERE image_id = ?"
            args = (str(image_id),)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [LabelEvent(*row[:8], undone=bool(row[8])) for row in rows]

    def __len__(self) -> int:
        return len(self.current())

    # -- internals -------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)

    def _current_label(self, image_id: str) -> int:
        row = self._db.execute("SELECT label FROM current WHERE image_id = ?", (image_id,)).fetchone()
        return row[0] if row else UNLABELED

    def _append(self, image_id: str, label: int, previous: int, when: float, cycle: int,
                source: str, reverts: int | None) -> LabelEvent:
        cursor = self._db.execute(
            "INSERT INTO events (image_id, label, previous, time, cycle, source, reverts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (image_id, label, previous, when, cycle, source, reverts),
        )
        seq = int(cursor.lastrowid)
        self._db.execute(
            "INSERT INTO current (image_id, label, seq) VALUES (?, ?, ?) "
            "ON CONFLICT(image_id) DO UPDATE SET label = excluded.label, seq = excluded.seq",
            (image_id, label, seq),
        )
        return LabelEvent(seq, image_id, label, previous, when, cycle, source, reverts, False)


SQLITE_HEADER = b"SQLite format 3\x00"
_WRITE_FAILURES = ("disk i/o error", "readonly", "read-only", "unable to open", "disk is full",
                   "database or disk is full")


def _looks_like_sqlite(path: Path) -> bool:
    """Whether ``path`` starts like an SQLite database (so an error opening it is not damage)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _cannot_write(folder: Path, err: sqlite3.Error) -> bool:
    """Whether ``err`` comes from a folder that cannot be written (full or read-only)."""
    return any(word in str(err).lower() for word in _WRITE_FAILURES) and not folder_writable(folder)


def _disk_full(folder: Path, err: sqlite3.Error) -> bool:
    return "full" in str(err).lower() or shutil.disk_usage(folder).free < FULL_BELOW


FULL_BELOW = 1 << 20  # SQLite needs its -wal and -shm files: under a MiB free counts as full


def folder_writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` now (tried, so it also holds for root)."""
    probe = Path(folder) / f".write-probe.{os.getpid()}.tmp"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError:
        return False
    probe.unlink(missing_ok=True)
    return shutil.disk_usage(folder).free >= FULL_BELOW


class _Transaction:
    """One write transaction; a write the disk or folder refuses becomes a named error."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    def __enter__(self) -> None:
        self._run("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, *rest: object) -> None:
        if exc_type is None:
            self._run("COMMIT")
            return
        if self.db.in_transaction:  # SQLite has already rolled back after e.g. SQLITE_FULL
            self.db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            self._raise_named(exc)

    def _run(self, statement: str) -> None:
        try:
            self.db.execute(statement)
        except sqlite3.OperationalError as err:
            if statement == "COMMIT" and self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self._raise_named(err)
            raise

    def _raise_named(self, err: sqlite3.OperationalError) -> None:
        full_message = "full" in str(err).lower()
        if full_message or "readonly" in str(err).lower() or _cannot_write(self.path.parent, err):
            full = full_message or _disk_full(self.path.parent, err)
            kind = DiskFullError if full else ReadOnlyError
            why = (f"the disk is full ({free_space_text(self.path.parent)} free)" if full else
                   "the label store is read-only here")
            raise kind(f"{self.path}: {why}, so the label was not stored ({err}); the labels "
                       "stored before are intact") from err
