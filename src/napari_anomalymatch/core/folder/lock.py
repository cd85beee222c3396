"""One writer at a time: the session lock that training, scoring and label imports hold.

The lock is an OS file lock (``fcntl.flock``; ``msvcrt.locking`` on Windows) on
``session.lock`` in the session folder.  The kernel drops it when its process
ends, however it ends, so a ``kill -9`` never leaves a stale lock behind.  The
holder writes who it is (command, process id, host, since when) into the file,
so a refused writer can name it.  Readers (info, export, similar, the review)
never take the lock, and labels are SQLite transactions of their own, so a
person may go on labelling while another process trains.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..atomic import disk_errors
from ..errors import SessionBusyError

LOCK_FILE = "session.lock"
POLL_S = 0.2  # how often a waiting writer tries again
_HOLDER_AT = 1  # the holder's details start after the byte that is locked (Windows locks bytes)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


@dataclass(frozen=True)
class Holder:
    """Who holds a session's lock."""

    command: str
    pid: int
    host: str
    since: float

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"'{self.command}' (process {self.pid}{where}, since {started})"


class SessionLock:
    """The write lock of the session in ``folder``, held by ``command`` (e.g. 'anomalymatch train')."""

    def __init__(self, folder: str | Path, command: str) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: bool = False, on_wait: Callable[[Holder | None], None] | None = None) -> None:
        """Take the lock, or wait for it when ``wait`` (``on_wait`` hears of the holder once).

        Raises
        ------
        SessionBusyError
            Another process holds the lock and ``wait`` is false; the message names it.
        ReadOnlyError, DiskFullError
            The lock file cannot be made (a read-only session folder).
        """
        with disk_errors(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        told = False
        try:
            while not _try_lock(fd):
                holder = read_holder(self.path)
                if not wait:
                    raise SessionBusyError(busy_message(self.path.parent, holder))
                if not told and on_wait is not None:
                    on_wait(holder)
                told = True
                time.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._write_holder()

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, _HOLDER_AT)  # nobody holds it now: no stale name is shown
        _unlock(fd)
        os.close(fd)

    def __enter__(self) -> SessionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _write_holder(self) -> None:
        details = {"command": self.command, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        data = b"\n" + json.dumps(details).encode()
        with contextlib.suppress(OSError):  # a full disk: the lock holds, only its name is missing
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, data)


def read_holder(path: Path) -> Holder | None:
    """Who the lock file says holds it (None when it does not say: being taken, or released)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(_HOLDER_AT)
            return Holder(**json.loads(handle.read().decode()))
    except (OSError, ValueError, TypeError):
        return None


def busy_message(folder: Path, holder: Holder | None) -> str:
    who = holder.describe() if holder is not None else "another process"
    return (f"{folder}: the session is being changed by {who}; one writer (training, scoring, label "
            "import) at a time. Wait until it ends, or run the command again with --wait to start as "
            "soon as it has (labelling in napari goes on meanwhile)")


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError on POSIX, PermissionError on Windows: held by another
        return False
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class Writer:
    """One handle's hold on a session's write lock: the outermost ``hold`` takes it, nested ones share it."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock: SessionLock | None = None

    @contextlib.contextmanager
    def hold(self, command: str, wait: bool = False, on_wait: Callable[[Holder | None], None] | None = None,
             on_taken: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the lock for the block; ``on_taken`` runs once it is taken (not when it was held)."""
        if self._lock is not None:
            yield
            return
        lock = SessionLock(self.folder, command)
        lock.acquire(wait, on_wait)
        self._lock = lock
        try:
            if on_taken is not None:
                on_taken()
            yield
        finally:
            self._lock = None
            lock.release()

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
