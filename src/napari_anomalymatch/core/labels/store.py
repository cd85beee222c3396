"""The label store: every label and tag a person gave, kept in SQLite, never overwritten.

Each change is an appended event (image id, label, previous label, time,
cycle, source); the current label of every image is kept beside the events in
the same transaction.  Free tags (``lens``, ``merger``) are events too, of the
same history: one with a ``tag`` records its addition (``label`` 1) or removal
(0), and changes the image's tags, never its label.  ``undo`` appends an
event that restores what the latest label or tag action changed, so the
history itself is never lost.  A store written before tags existed is
migrated in place, in one transaction, when it is first opened for writing.  Each call commits before it
returns (WAL journal, ``synchronous=FULL``): a process killed at any moment
keeps every label whose call returned.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..atomic import disk_errors, free_space_text
from ..errors import DiskFullError, LabelError, ReadOnlyError, SessionError
from .check import check_store
from .sqlite import Transaction, cannot_write, disk_full, looks_like_sqlite
from .values import (
    ANOMALY,
    LABEL_NAMES,
    NORMAL,
    TAG_ADDED,
    TAG_REMOVED,
    UNLABELED,
    UNSURE,
    LabelEvent,
    ReviewPlace,
    parse_label,
    parse_tags,
)

LABELS_FILE = "labels.sqlite"  # a session's label store, in its folder
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
SCHEMA_VERSION = 1  # PRAGMA user_version; 0: the store before tags
_TO_VERSION_1 = (  # tags: a column of the events, and each image's current tags beside them
    "ALTER TABLE events ADD COLUMN tag TEXT",
    "CREATE TABLE IF NOT EXISTS tags (image_id TEXT NOT NULL, tag TEXT NOT NULL, seq INTEGER NOT NULL, "
    "PRIMARY KEY (image_id, tag))",
    "CREATE INDEX IF NOT EXISTS tags_by_tag ON tags (tag)",
)
# Where a label was given in a review (rank, score and order at that moment): columns added when
# missing, with no change of schema version, so older code still opens the store and its events
# (NULL here) count as given outside a ranked review.
REVIEW_COLUMNS = (("rank", "INTEGER"), ("score", "REAL"), ("review_order", "TEXT"))


class LabelStore:
    """Labels of one session in an SQLite file; safe to use from several threads."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._closed = False
        try:
            self._db = self._connect_writable() if not read_only else self._connect_read_only()
            # read-only, a store from before tags stays as it is: it has no tags to read
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
            self._has_tags = "tag" in columns
            self._has_review = all(name in columns for name, _ in REVIEW_COLUMNS)
        except sqlite3.DatabaseError as err:
            raise self._open_error(err) from err

    def _connect_writable(self) -> sqlite3.Connection:
        with disk_errors(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=10000")
        check_store(db, self.path, SCHEMA_VERSION, LABEL_NAMES)  # before anything is added to it
        db.executescript(_SCHEMA)
        _migrate(db, self.path)
        _add_review_columns(db, self.path)
        return db

    def _connect_read_only(self) -> sqlite3.Connection:
        """Open for reading only; on a read-only folder or full disk, where SQLite cannot make
        its ``-shm`` file, the file is read as immutable (nobody can be writing it then)."""
        if not self.path.exists():
            raise SessionError(f"{self.path}: no label store here")
        uri = self.path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
            self._check_readable(db)
            return db
        except sqlite3.OperationalError as err:
            if not cannot_write(self.path.parent, err):
                raise
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False, isolation_level=None)
        self._check_readable(db)
        return db

    def _check_readable(self, db: sqlite3.Connection) -> None:
        check_store(db, self.path, SCHEMA_VERSION, LABEL_NAMES)
        db.execute("SELECT COUNT(*) FROM current").fetchone()

    def _open_error(self, err: sqlite3.DatabaseError) -> SessionError:
        """Say what really stops the store from opening: a full disk, a read-only folder, or damage."""
        if looks_like_sqlite(self.path) and cannot_write(self.path.parent, err):
            if disk_full(self.path.parent, err):
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
        """Close the store; every label is then in the ``.sqlite`` file itself (the WAL checkpointed),
        so a copy of that one file holds them all. Closing again does nothing."""
        with self._lock:
            if not self.read_only and not self._closed:
                with contextlib.suppress(sqlite3.OperationalError):  # another process reads: the WAL keeps them
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._closed = True

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- changing labels ---------------------------------------------------------

    def set(self, image_id: str, label: int | str, cycle: int = 0,
            source: str = "user", review: ReviewPlace | None = None) -> LabelEvent | None:
        """Give ``image_id`` a label; returns the event, or None if nothing changed.

        ``review``: where the image stood in the review it was labelled in (kept with the event).
        """
        events = self.set_many([(image_id, label)], cycle=cycle, source=source, review=review)
        return events[0] if events else None

    def set_many(self, items: Iterable[tuple[str, int | str]], cycle: int = 0,
                 source: str = "user", review: ReviewPlace | None = None) -> list[LabelEvent]:
        """Label several images in one transaction (all or none are stored)."""
        parsed = [(str(i), parse_label(v, f"label of {i!r}")) for i, v in items]
        now = time.time()
        events = []
        with self._lock, self._transaction():
            for image_id, label in parsed:
                previous = self._current_label(image_id)
                if previous == label:
                    continue
                events.append(self._append(image_id, label, previous, now, cycle, source, None, review))
        return events

    def undo(self) -> LabelEvent | None:
        """Revert the latest change not yet undone; returns the (last) reverting event.

        A change made by one import (``set_many`` from a label file or a
        catalogue: one source other than ``user``, one moment) is reverted
        as a whole, so one undo brings back every label the import replaced.
        Tags added or removed by one call are reverted together too.
        """
        tag = "tag" if self._has_tags else "NULL"
        with self._lock, self._transaction():
            row = self._db.execute(
                f"SELECT seq, time, source, {tag} IS NOT NULL FROM events "
                "WHERE undone = 0 AND reverts IS NULL ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            seq, when, source, is_tag = row
            batch = [(seq,)] if source == "user" and not is_tag else self._db.execute(
                f"SELECT seq FROM events WHERE undone = 0 AND reverts IS NULL AND time = ? AND source = ? "
                f"AND ({tag} IS NOT NULL) = ? ORDER BY seq DESC", (when, source, is_tag)).fetchall()
            return [self._revert(seq) for (seq,) in batch][-1]

    def _revert(self, seq: int) -> LabelEvent:
        tag = "tag" if self._has_tags else "NULL"
        image_id, previous, cycle, tag = self._db.execute(
            f"SELECT image_id, previous, cycle, {tag} FROM events WHERE seq = ?", (seq,)).fetchone()
        self._db.execute("UPDATE events SET undone = 1 WHERE seq = ?", (seq,))
        if tag is not None:
            present = TAG_ADDED if tag in self._tags_of(image_id) else TAG_REMOVED
            return self._append_tag(image_id, tag, previous, present, time.time(), cycle, "undo", seq)
        current = self._current_label(image_id)
        return self._append(image_id, previous, current, time.time(), cycle, "undo", seq)

    # -- tags ----------------------------------------------------------------------------

    def add_tags(self, image_id: str, tags: str | Iterable[str], cycle: int = 0,
                 source: str = "user") -> list[LabelEvent]:
        """Give ``image_id`` these tags (``parse_tags``), in one transaction; its label is untouched.

        Returns the events of the tags it did not have yet.
        """
        return self.edit_tags(image_id, add=tags, cycle=cycle, source=source)

    def remove_tags(self, image_id: str, tags: str | Iterable[str], cycle: int = 0,
                    source: str = "user") -> list[LabelEvent]:
        """Take these tags from ``image_id``; returns the events of those it had."""
        return self.edit_tags(image_id, remove=tags, cycle=cycle, source=source)

    def edit_tags(self, image_id: str, add: str | Iterable[str] = (), remove: str | Iterable[str] = (),
                  cycle: int = 0, source: str = "user") -> list[LabelEvent]:
        """Add some tags and remove others in one transaction (one undo reverts both)."""
        self._require_tags()
        image_id = str(image_id)
        wanted = [(tag, TAG_ADDED) for tag in (parse_tags(add) if add else [])]
        wanted += [(tag, TAG_REMOVED) for tag in (parse_tags(remove) if remove else [])]
        if not wanted:
            raise LabelError("no tag given; expected words such as 'lens' or 'lens, merger'")
        now = time.time()
        events = []
        with self._lock, self._transaction():
            had = set(self._tags_of(image_id))
            for tag, present in wanted:
                if (tag in had) != (present == TAG_ADDED):
                    events.append(self._append_tag(image_id, tag, present, 1 - present, now, cycle, source, None))
                    had ^= {tag}
        return events

    def tags(self, image_id: str) -> tuple[str, ...]:
        """The tags ``image_id`` has now, in alphabetical order."""
        with self._lock:
            return self._tags_of(str(image_id)) if self._has_tags else ()

    def tagged(self, tag: str | None = None) -> dict[str, tuple[str, ...]]:
        """Every tagged image's tags (only those with ``tag``, when given)."""
        if not self._has_tags:
            return {}
        query = "SELECT image_id, tag FROM tags"
        if tag is not None:
            query += " WHERE image_id IN (SELECT image_id FROM tags WHERE tag = ?)"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY image_id, tag", () if tag is None else (tag,)).fetchall()
        found: dict[str, list[str]] = {}
        for image_id, name in rows:
            found.setdefault(image_id, []).append(name)
        return {image_id: tuple(names) for image_id, names in found.items()}

    def all_tags(self) -> dict[str, int]:
        """Every tag in use and how many images have it, the most used first (then by name)."""
        if not self._has_tags:
            return {}
        with self._lock:
            rows = self._db.execute(
                "SELECT tag, COUNT(*) AS n FROM tags GROUP BY tag ORDER BY n DESC, tag").fetchall()
        return dict(rows)

    def _require_tags(self) -> None:
        if not self._has_tags:
            raise ReadOnlyError(f"{self.path}: this label store was written before tags existed and is "
                                "open read-only, so it cannot be given tags; open it for writing once")

    def _tags_of(self, image_id: str) -> tuple[str, ...]:
        rows = self._db.execute("SELECT tag FROM tags WHERE image_id = ? ORDER BY tag", (image_id,)).fetchall()
        return tuple(row[0] for row in rows)

    def _append_tag(self, image_id: str, tag: str, present: int, previous: int, when: float, cycle: int,
                    source: str, reverts: int | None) -> LabelEvent:
        cursor = self._db.execute(
            "INSERT INTO events (image_id, label, previous, time, cycle, source, reverts, tag) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (image_id, present, previous, when, cycle, source, reverts, tag))
        seq = int(cursor.lastrowid)
        if present == TAG_ADDED:
            self._db.execute("INSERT OR REPLACE INTO tags (image_id, tag, seq) VALUES (?, ?, ?)",
                             (image_id, tag, seq))
        else:
            self._db.execute("DELETE FROM tags WHERE image_id = ? AND tag = ?", (image_id, tag))
        return LabelEvent(seq, image_id, present, previous, when, cycle, source, reverts, False, tag)

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
        tag = "tag" if self._has_tags else "NULL"
        review = ", ".join(name for name, _ in REVIEW_COLUMNS) if self._has_review else "NULL, NULL, NULL"
        query = (f"SELECT seq, image_id, label, previous, time, cycle, source, reverts, undone, {tag}, {review} "
                 "FROM events")
        args: tuple[Any, ...] = ()
        if image_id is not None:
            query += " WHERE image_id = ?"
            args = (str(image_id),)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [LabelEvent(*row[:8], undone=bool(row[8]), tag=row[9], review=_review_place(row[10:]))
                for row in rows]

    def __len__(self) -> int:
        return len(self.current())

    # -- internals -------------------------------------------------------------------

    def _transaction(self) -> Transaction:
        return Transaction(self._db, self.path)

    def _current_label(self, image_id: str) -> int:
        row = self._db.execute("SELECT label FROM current WHERE image_id = ?", (image_id,)).fetchone()
        return row[0] if row else UNLABELED

    def _append(self, image_id: str, label: int, previous: int, when: float, cycle: int,
                source: str, reverts: int | None, review: ReviewPlace | None = None) -> LabelEvent:
        if review is not None and self._has_review:
            cursor = self._db.execute(
                "INSERT INTO events (image_id, label, previous, time, cycle, source, reverts, rank, score, "
                "review_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, label, previous, when, cycle, source, reverts, int(review.rank),
                 None if review.score != review.score else float(review.score), review.order))
        else:
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
        return LabelEvent(seq, image_id, label, previous, when, cycle, source, reverts, False,
                          review=review if self._has_review else None)


def _review_place(values: tuple) -> ReviewPlace | None:
    rank, score, order = values
    return None if rank is None else ReviewPlace(int(rank), float("nan") if score is None else score, order)


def _add_review_columns(db: sqlite3.Connection, path: Path) -> None:
    """Add the columns of ``REVIEW_COLUMNS`` an older store lacks, in one transaction."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    if all(name in columns for name, _ in REVIEW_COLUMNS):
        return
    with Transaction(db, path):
        columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}  # another process may be first
        for name, kind in REVIEW_COLUMNS:
            if name not in columns:
                db.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring a store written by older code up to ``SCHEMA_VERSION`` in place, in one transaction.

    Every label and event stays as it was: the migration only adds (a column, a table), and a
    crash or a full disk part-way leaves the store exactly as before.
    """
    if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    transaction = Transaction(db, path)
    with transaction:
        if db.execute("PRAGMA user_version").fetchone()[0] < 1:  # checked again: another process may be first
            columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
            for statement in _TO_VERSION_1:
                if not ("ADD COLUMN tag" in statement and "tag" in columns):
                    db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
