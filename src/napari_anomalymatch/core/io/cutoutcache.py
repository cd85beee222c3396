"""The cutouts a session has cut, kept on disk in chunks of consecutive images, so a second pass
(the next cycle's scoring, training's draws) reads them instead of cutting again.

Each chunk is one ``.npy`` file written atomically, so loader processes and Dask workers that cut
the same chunk at once leave one whole file, never a torn one; a file is only ever whole or absent.
The folder is named by a key of what was cut (tiles, catalogue, size, channels), so changed settings
never read another setting's cutouts.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import DiskFullError, ReadOnlyError

CHUNK = 64  # images per chunk: 64 x 64 x 64 x 3 float32 is 3 MB


class CutoutCache:
    """Chunks of ``CHUNK`` consecutive cutouts under ``folder/<key>``."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = Path(folder) / hashlib.sha256(key.encode()).hexdigest()[:16]
        self.writable = True

    def chunk_path(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk:07d}.npy"

    def get(self, chunk: int) -> np.ndarray | None:
        """Chunk ``chunk``'s cutouts, or None when not cut yet (or unreadable: cut again)."""
        path = self.chunk_path(chunk)
        if not path.exists():
            return None
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            return None

    def put(self, chunk: int, cutouts: np.ndarray) -> None:
        """Keep chunk ``chunk``; a full or read-only disk turns the cache off, never stops the reading."""
        if not self.writable:
            return
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(cutouts, dtype=np.float32))
        try:
            atomic_write_bytes(self.chunk_path(chunk), buffer.getvalue())
        except (DiskFullError, ReadOnlyError, OSError):
            self.writable = False

    def clear(self) -> None:
        for path in self.folder.glob("chunk-*.npy"):
            with contextlib.suppress(OSError):
                path.unlink()
