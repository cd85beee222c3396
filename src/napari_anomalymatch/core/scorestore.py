"""Scores on disk, written part by part as scoring goes, so a run can resume.

A score run is a folder holding ``manifest.json`` (what was scored: the
collection's fingerprint, its size, the model hash, the cycle, the part size,
the preprocessing and, for a sharded collection, its shards) and one ``.npy``
file of float32 scores per part, each written atomically:

* a single collection has a part per ``part_size`` consecutive images,
  ``part-NNNNNN.npy``;
* a sharded collection has a part per shard (several for a shard larger than
  ``part_size``), named by the shard: ``part-NNNNNN-<shard>.npy``.

A run re-opened with the same manifest skips the parts already on disk,
whatever order they were written in; a different manifest (another model,
another collection) starts afresh.  When every part is there, ``consolidate``
writes ``scores.npy`` (all scores in collection order) by streaming the parts,
and ``top_k`` streams them too, so neither holds more than a part in memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from .atomic import atomic_path, atomic_write_bytes
from .errors import SessionError

MANIFEST = "manifest.json"
COMPLETE = "complete.json"
SCORES = "scores.npy"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Part:
    """Images ``[start, stop)`` of a run, stored in the file ``name``."""

    number: int
    start: int
    stop: int
    name: str
    shard: str = ""

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ScoreManifest:
    """What a score run covers; two runs with equal manifests produce equal scores.

    ``inference`` is not part of that identity: it is what the run chose to
    score with, written when scoring starts and read back on resume.
    """

    collection: str
    n_images: int
    model_hash: str
    cycle: int
    part_size: int
    preprocessing: str
    shards: tuple[tuple[str, int], ...] = field(default=())
    # the inference path that scores the run (inference.InferencePath.label); chosen once, reused on resume
    inference: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shards", tuple((str(n), int(k)) for n, k in self.shards))
        if self.shards and sum(k for _, k in self.shards) != self.n_images:
            raise SessionError(
                f"score manifest of {self.collection}: its shards hold {sum(k for _, k in self.shards)} "
                f"images, not {self.n_images}"
            )

    @property
    def n_parts(self) -> int:
        return len(self.parts)

    @cached_property
    def parts(self) -> tuple[Part, ...]:
        """Every part in collection order; parts never straddle two shards."""
        shards = self.shards or (("", self.n_images),)
        parts, start = [], 0
        for shard, size in shards:
            for offset in range(0, size, self.part_size):
                number = len(parts)
                stop = start + min(offset + self.part_size, size)
                suffix = f"-{_UNSAFE.sub('_', shard)}" if shard else ""
                parts.append(Part(number, start + offset, stop, f"part-{number:06d}{suffix}.npy", shard))
            start += size
        return tuple(parts)

    def part_range(self, part: int) -> tuple[int, int]:
        return self.parts[part].start, self.parts[part].stop


class ScoreStore:
    """One score run's folder."""

    def __init__(self, directory: str | Path, manifest: ScoreManifest) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        existing = read_manifest(self.directory)
        if existing == manifest:
            self.manifest = existing  # with the inference path the run started with
            return
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_bytes(self.directory / MANIFEST, json.dumps(asdict(self.manifest), indent=1).encode())

    def record_inference(self, label: str) -> None:
        """Store the run's inference path in its manifest (before any part is scored with it)."""
        if self.manifest.inference != label:
            self.manifest = replace(self.manifest, inference=label)
            self._write_manifest()

    @classmethod
    def existing(cls, directory: str | Path) -> ScoreStore:
        """Open a run's folder as it is (for reading), without resetting it."""
        manifest = read_manifest(Path(directory))
        if manifest is None:
            raise SessionError(f"{directory}: no score run here (no {MANIFEST})")
        store = cls.__new__(cls)
        store.directory = Path(directory)
        store.manifest = manifest
        return store

    def part_path(self, part: int) -> Path:
        return self.directory / self.manifest.parts[part].name

    def done_parts(self) -> set[int]:
        present = set(os.listdir(self.directory)) if self.directory.exists() else set()
        return {p.number for p in self.manifest.parts if p.name in present}

    def remaining_parts(self) -> list[Part]:
        done = self.done_parts()
        return [p for p in self.manifest.parts if p.number not in done]

    def write_part(self, part: int, scores: np.ndarray) -> None:
        start, stop = self.manifest.part_range(part)
        if scores.shape != (stop - start,):
            raise ValueError(f"part {part} needs {stop - start} scores, got {scores.shape}")
        with atomic_path(self.part_path(part)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, scores.astype(np.float32))

    def read_part(self, part: int) -> np.ndarray:
        return np.load(self.part_path(part))

    def iter_parts(self) -> Iterator[tuple[Part, np.ndarray]]:
        """Every part and its scores in collection order (NaN for parts not written)."""
        done = self.done_parts()
        for part in self.manifest.parts:
            if part.number in done:
                yield part, self.read_part(part.number)
            else:
                yield part, np.full(len(part), np.nan, dtype=np.float32)

    def mark_complete(self, summary: dict) -> None:
        atomic_write_bytes(self.directory / COMPLETE, json.dumps(summary, indent=1).encode())

    @property
    def complete(self) -> bool:
        return (self.directory / COMPLETE).exists()

    def consolidate(self) -> int:
        """Write ``scores.npy`` from the parts (streaming); return how many scores are finite."""
        path = self.directory / SCORES
        n_finite = 0
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            header = {"descr": "<f4", "fortran_order": False, "shape": (self.manifest.n_images,)}
            np.lib.format.write_array_header_1_0(handle, header)
            for _, scores in self.iter_parts():
                handle.write(np.ascontiguousarray(scores, dtype="<f4").tobytes())
                n_finite += int(np.isfinite(scores).sum())
        return n_finite

    def scores(self) -> np.ndarray:
        """All scores, NaN where a part is missing or an image could not be scored.

        A consolidated run is memory-mapped (nothing is read until used).
        """
        path = self.directory / SCORES
        if path.exists():  # written (atomically) only once every part is there
            return np.load(path, mmap_mode="r")
        out = np.full(self.manifest.n_images, np.nan, dtype=np.float32)
        for part, scores in self.iter_parts():
            out[part.start:part.stop] = scores
        return out

    def top_k(self, k: int) -> np.ndarray:
        """Indices of the ``k`` highest finite scores, best first (ties: lower index first).

        The parts are merged one at a time, so the answer does not depend on
        the order in which they were written and memory stays at one part.
        """
        best_index = np.zeros(0, dtype=np.int64)
        best_score = np.zeros(0, dtype=np.float32)
        for part, scores in self.iter_parts():
            index = np.concatenate([best_index, np.arange(part.start, part.stop, dtype=np.int64)])
            score = np.concatenate([best_score, scores.astype(np.float32)])
            keep = best_of(score, index, k)
            best_index, best_score = index[keep], score[keep]
        return best_index


def best_of(scores: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best finite ``scores``, best first; ties go to the lower index."""
    finite = np.flatnonzero(np.isfinite(scores))
    if k <= 0 or finite.size == 0:
        return np.zeros(0, dtype=np.int64)
    if finite.size > k:
        # the k-th best score; keep everything at least as good, then order exactly
        threshold = np.partition(scores[finite], finite.size - k)[finite.size - k]
        finite = finite[scores[finite] >= threshold]
    order = np.lexsort((indices[finite], -scores[finite].astype(np.float64)))
    return finite[order][:k]


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
    store = ScoreStore.existing(directory)
    return store.manifest, store.scores()
