"""SQLite under the label store: write transactions whose refusal by a full disk or a read-only
folder becomes a named error, and the tests that tell those apart from a damaged file."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from ..atomic import free_space_text
from ..errors import DiskFullError, ReadOnlyError

SQLITE_HEADER = b"SQLite format 3\x00"
_WRITE_FAILURES = ("disk i/o error", "readonly", "read-only", "unable to open", "disk is full",
                   "database or disk is full")


def looks_like_sqlite(path: Path) -> bool:
    """Whether ``path`` starts like an SQLite database (so an error opening it is not damage)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def cannot_write(folder: Path, err: sqlite3.Error) -> bool:
    """Whether ``err`` comes from a folder that cannot be written (full or read-only)."""
    return any(word in str(err).lower() for word in _WRITE_FAILURES) and not folder_writable(folder)


def disk_full(folder: Path, err: sqlite3.Error) -> bool:
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


class Transaction:
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
        if full_message or "readonly" in str(err).lower() or cannot_write(self.path.parent, err):
            full = full_message or disk_full(self.path.parent, err)
            kind = DiskFullError if full else ReadOnlyError
            why = (f"the disk is full ({free_space_text(self.path.parent)} free)" if full else
                   "the label store is read-only here")
            raise kind(f"{self.path}: {why}, so the label was not stored ({err}); the labels "
                       "stored before are intact") from err
