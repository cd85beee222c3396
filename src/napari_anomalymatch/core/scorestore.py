"""Scores on disk, written part by part as scoring goes, so a run can resume.

A score run is a folder holding ``manifest.json`` (what was scored: the
collection's fingerprint, its size, the model hash, the cycle, the part size
and the preprocessing) and one ``part-NNNNNN.npy`` of float32 scores per
``part_size`` consecutive images, each written atomically.  A run re-opened
with the same manifest skips the parts already on disk; a different manifest
(another model, another collection) starts afresh.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path, atomic_write_bytes
from .errors import SessionError

MANIFEST = "manifest.json"
COMPLETE = "complete.json"


@dataclass(frozen=True)
class ScoreManifest:
    """What a score run covers; two runs with equal manifests produce equal scores."""

    collection: str
    n_images: int
    model_hash: str
    cycle: int
    part_size: int
    preprocessing: str

    @property
    def n_parts(self) -> int:
        return -(-self.n_images // self.part_size)

    def part_range(self, part: int) -> tuple[int, int]:
        start = part * self.part_size
        return start, min(start + self.part_size, self.n_images)


class ScoreStore:
    """One score run's folder."""

    def __init__(self, directory: str | Path, manifest: ScoreManifest) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        existing = read_manifest(self.directory)
        if existing != manifest:
            if self.directory.exists():
                shutil.rmtree(self.directory)
            self.directory.mkdir(parents=True)
            atomic_write_bytes(self.directory / MANIFEST, json.dumps(asdict(manifest), indent=1).encode())

    def part_path(self, part: int) -> Path:
        return self.directory / f"part-{part:06d}.npy"

    def done_parts(self) -> set[int]:
        return {p for p in range(self.manifest.n_parts) if self.part_path(p).exists()}

    def write_part(self, part: int, scores: np.ndarray) -> None:
        start, stop = self.manifest.part_range(part)
        if scores.shape != (stop - start,):
            raise ValueError(f"part {part} needs {stop - start} scores, got {scores.shape}")
        with atomic_path(self.part_path(part)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, scores.astype(np.float32))

    def read_part(self, part: int) -> np.ndarray:
        return np.load(self.part_path(part))

    def mark_complete(self, summary: dict) -> None:
        atomic_write_bytes(self.directory / COMPLETE, json.dumps(summary, indent=1).encode())

    @property
    def complete(self) -> bool:
        return (self.directory / COMPLETE).exists()

    def scores(self) -> np.ndarray:
        """All scores, NaN where a part is missing or an image could not be scored."""
        out = np.full(self.manifest.n_images, np.nan, dtype=np.float32)
        for part in self.done_parts():
            start, stop = self.manifest.part_range(part)
            out[start:stop] = self.read_part(part)
        return out


def read_manifest(directory: Path) -> ScoreManifest | None:
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        return ScoreManifest(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise SessionError(f"{path}: unreadable score manifest ({err}); delete its folder to rescore") from err


def open_scores(directory: str | Path) -> tuple[ScoreManifest, np.ndarray]:
    """The manifest and scores of a finished or partial run."""
    manifest = read_manifest(Path(directory))
    if manifest is None:
        raise SessionError(f"{directory}: no score run here (no {MANIFEST})")
    store = ScoreStore.__new__(ScoreStore)
    store.directory = Path(directory)
    store.manifest = manifest
    return manifest, store.scores()
