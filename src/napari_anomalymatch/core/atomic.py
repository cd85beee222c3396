"""Atomic file replacement: a reader sees the old file or the new one, never half.

The temporary file sits beside its target as ``.<name>.<pid>.<random>.tmp``,
created with the user's umask (not ``mkstemp``'s 0600, so a colleague sharing
the folder can read it).  A process killed mid-write leaves its temporary
behind; ``remove_stale_temporaries`` clears those whose process is gone.
A write refused for lack of space or a read-only folder raises
``DiskFullError`` or ``ReadOnlyError`` naming the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import DiskFullError, ReadOnlyError

FULL = (errno.ENOSPC, errno.EDQUOT)
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
STALE_AFTER_S = 24 * 3600  # a temporary this old is stale whoever wrote it (another host, say)


@contextlib.contextmanager
def atomic_path(path: Path, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file is flushed to disk before the rename, and removed if
    the block raises (Ctrl-C included), so a crash leaves either the old file
    or the new one.  ``needed`` (bytes), when known, is said in a disk-full error.

    Raises
    ------
    DiskFullError, ReadOnlyError
        When the folder has no space left or cannot be written.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with disk_errors(path, needed, kept=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            yield tmp
            _fsync_file(tmp)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def disk_errors(path: Path, needed: int | None = None, kept: bool = False) -> Iterator[None]:
    """Turn a full disk or a read-only folder met while writing ``path`` into a named error.

    ``kept``: the write was atomic, so the message may say the previous file is intact.
    """
    try:
        yield
    except OSError as err:
        named = disk_error(err, path, needed, kept)
        if named is None:
            raise
        raise named from err


def disk_error(err: OSError, path: Path, needed: int | None = None,
               kept: bool = False) -> DiskFullError | ReadOnlyError | None:
    """The ``DiskFullError``/``ReadOnlyError`` an ``OSError`` met writing ``path`` stands for, if any."""
    if isinstance(err, (DiskFullError, ReadOnlyError)):
        return None
    if err.errno in FULL:
        return DiskFullError(f"{path}: the disk is full ({free_space_text(path.parent)} free"
                             f"{'' if needed is None else f', about {_mb(needed)} needed'}); "
                             f"{'the partial file was removed and the previous one is intact; ' if kept else ''}"
                             "free some space and run the command again")
    if err.errno in READ_ONLY:
        return ReadOnlyError(f"{path}: cannot write here ({os.strerror(err.errno)}); the folder is "
                             "read-only for you: make it writable, or write somewhere else (a read-only "
                             "session still answers info and export)")
    return None


def free_space_text(folder: Path) -> str:
    """How much space is free on ``folder``'s disk, in words ('unknown' if it cannot be asked)."""
    try:
        return _mb(shutil.disk_usage(_existing(folder)).free)
    except OSError:
        return "unknown space"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporaries left under ``folder`` by a killed process; return what was removed.

    A temporary is stale when its name is one ``atomic_path`` gives and the
    process named in it no longer runs here, or when it is older than a day
    (it may come from another host).  A folder that cannot be written is left
    as it is, so a reader (``info``) may call this too.
    """
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        if _is_stale(tmp):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


_TEMPORARY = re.compile(r"\..+\.(\d+)\.[0-9a-f]+\.tmp")  # atomic_path's names: .<name>.<pid>.<random>.tmp


def _is_stale(tmp: Path) -> bool:
    """Provably abandoned: one of ``atomic_path``'s temporaries whose process is gone, or a day old."""
    named = _TEMPORARY.fullmatch(tmp.name)
    if named is None:  # not ours: a file someone put here is never removed
        return False
    try:
        age = time.time() - tmp.stat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    pid = int(named.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return False


def _existing(folder: Path) -> Path:
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
