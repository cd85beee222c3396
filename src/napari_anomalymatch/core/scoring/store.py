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

Every part's SHA-256 is appended to ``checksums.txt`` once the part is in
place, and ``complete.json`` holds those of ``scores.npy`` and of the Parquet
tables; each is checked when read, so a damaged file is named, never used.
A part on disk without its checksum (the process was killed between the two
writes) counts as not scored.  Runs written before the checksums existed
(no ``checksums.txt``) are read without them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, atomic_write_bytes, disk_errors
from ..errors import CorruptFileError, NoEmbeddingsError, SessionError

MANIFEST = "manifest.json"
COMPLETE = "complete.json"
SCORES = "scores.npy"
EMBEDDINGS = "embeddings.npy"  # (n_images, D) float16 in collection order, merged from the parts
EMBEDDING_PREFIX = "embeddings-"
CHECKSUMS = "checksums.txt"
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
    # how each reduced precision timed faster than float32 agreed with it when the path was chosen
    # (pathchoice.ranking_agreement per path label); empty where nothing was measured
    inference_agreement: dict = field(default_factory=dict, compare=False)
    # "" for a trained model's scores; "unsupervised:<method>" for a ranking made without labels
    method: str = ""
    # whether each part also stores its images' embeddings (EMBEDDING_PREFIX + the part's name)
    embeddings: bool = False

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
        self._checksums: dict[str, str] | None = None
        existing = read_manifest(self.directory)
        if existing == manifest:
            self.manifest = existing  # with the inference path the run started with
            return
        if self.directory.exists():
            shutil.rmtree(self.directory)
        with disk_errors(self.directory):
            self.directory.mkdir(parents=True)
        atomic_write_bytes(self.directory / CHECKSUMS, b"")
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_bytes(self.directory / MANIFEST, json.dumps(asdict(self.manifest), indent=1).encode())

    def rename_collection(self, fingerprint: str) -> None:
        """Record the collection's new fingerprint (its data moved; its ids were checked equal)."""
        self.manifest = replace(self.manifest, collection=fingerprint)
        self._write_manifest()

    def record_inference(self, label: str, agreement: dict | None = None) -> None:
        """Store the run's inference path in its manifest (before any part is scored with it), and
        the agreement figures it was chosen on, where it was measured."""
        agreement = self.manifest.inference_agreement if agreement is None else agreement
        if (self.manifest.inference, self.manifest.inference_agreement) != (label, agreement):
            self.manifest = replace(self.manifest, inference=label, inference_agreement=agreement)
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
        store._checksums = None
        return store

    def part_path(self, part: int) -> Path:
        return self.directory / self.manifest.parts[part].name

    def checksums(self) -> dict[str, str] | None:
        """Each written part's SHA-256 by file name; None for a run from before checksums."""
        if self._checksums is None:
            path = self.directory / CHECKSUMS
            if not path.exists():
                return None
            self._checksums = {}
            for line in path.read_text(errors="replace").splitlines():
                fields = line.split()
                if len(fields) == 2 and len(fields[1]) == 64:  # a line torn by a kill is ignored
                    self._checksums[fields[0]] = fields[1]
        return self._checksums

    def done_parts(self) -> set[int]:
        present = set(os.listdir(self.directory)) if self.directory.exists() else set()
        self._checksums = None  # another process may have written parts meanwhile
        known = self.checksums()
        return {p.number for p in self.manifest.parts  # a part counts once all its files are written
                if all(name in present and (known is None or name in known) for name in self._files_of(p))}

    def _files_of(self, part: Part) -> tuple[str, ...]:
        return (part.name, EMBEDDING_PREFIX + part.name) if self.manifest.embeddings else (part.name,)

    def remaining_parts(self) -> list[Part]:
        done = self.done_parts()
        return [p for p in self.manifest.parts if p.number not in done]

    def write_part(self, part: int, scores: np.ndarray, embeddings: np.ndarray | None = None) -> None:
        """Write a part's scores and, for a run that stores them, its ``(n, D)`` embeddings
        (first, so a part whose scores are there has its embeddings too)."""
        start, stop = self.manifest.part_range(part)
        if scores.shape != (stop - start,):
            raise ValueError(f"part {part} needs {stop - start} scores, got {scores.shape}")
        if self.manifest.embeddings and (embeddings is None or embeddings.ndim != 2
                                         or len(embeddings) != stop - start):
            got = None if embeddings is None else embeddings.shape
            raise ValueError(f"part {part} of a run storing embeddings needs ({stop - start}, D) of them, got {got}")
        if not (self.directory / MANIFEST).exists():
            raise SessionError(f"{self.directory}: the score run's folder (or its {MANIFEST}) was removed "
                               "while scoring; run 'anomalymatch score' to start the run again")
        name = self.manifest.parts[part].name
        if self.manifest.embeddings:
            self._write_array(EMBEDDING_PREFIX + name, embeddings.astype(np.float16))
        self._write_array(name, scores.astype(np.float32))

    def _write_array(self, name: str, values: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, values)
        data = buffer.getvalue()
        atomic_write_bytes(self.directory / name, data)
        with disk_errors(self.directory / CHECKSUMS), open(self.directory / CHECKSUMS, "a") as log:
            log.write(f"{name} {hashlib.sha256(data).hexdigest()}\n")
            log.flush()
            os.fsync(log.fileno())
        if self._checksums is not None:
            self._checksums[name] = hashlib.sha256(data).hexdigest()

    def read_part(self, part: int) -> np.ndarray:
        """A part's scores, checked against its checksum, length and dtype."""
        path = self.part_path(part)
        expected = len(self.manifest.parts[part])
        advice = f"delete it and run 'anomalymatch score' to score its {expected} images again"
        try:
            data = path.read_bytes()
        except OSError as err:
            raise CorruptFileError(f"{path}: cannot read the score part ({err}); {advice}") from err
        known = self.checksums()
        if known is not None and known.get(path.name) != hashlib.sha256(data).hexdigest():
            raise CorruptFileError(f"{path}: the score part is damaged (SHA-256 mismatch); {advice}")
        try:
            scores = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise CorruptFileError(f"{path}: not a score part ({err}); {advice}") from err
        if scores.dtype != np.float32 or scores.shape != (expected,):
            raise CorruptFileError(f"{path}: holds {scores.dtype} of shape {scores.shape}, not "
                                   f"{expected} float32 scores; {advice}")
        return scores

    def iter_parts(self) -> Iterator[tuple[Part, np.ndarray]]:
        """Every part and its scores in collection order (NaN for parts not written)."""
        done = self.done_parts()
        for part in self.manifest.parts:
            if part.number in done:
                yield part, self.read_part(part.number)
            else:
                yield part, np.full(len(part), np.nan, dtype=np.float32)

    def mark_complete(self, summary: dict) -> None:
        """Write ``complete.json``: the summary plus the SHA-256 of ``scores.npy`` and the tables."""
        hashes = {name: _file_sha256(self.directory / name) for name in (SCORES, *TABLES)
                  if (self.directory / name).exists()}
        atomic_write_bytes(self.directory / COMPLETE,
                           json.dumps({**summary, "sha256": hashes}, indent=1).encode())

    @property
    def complete(self) -> bool:
        return (self.directory / COMPLETE).exists() and (self.directory / SCORES).exists()

    def summary(self) -> dict:
        """What ``complete.json`` holds (empty before the run is complete)."""
        path = self.directory / COMPLETE
        if not path.exists():
            return {}
        try:
            summary = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptFileError(f"{path}: unreadable ({err}); delete it and run 'anomalymatch score' "
                                   "to finish the run again") from err
        if not isinstance(summary, dict):
            raise CorruptFileError(f"{path}: expected a JSON object; delete it and run 'anomalymatch "
                                   "score' to finish the run again")
        return summary

    def intact(self, name: str) -> bool:
        """Whether a file of the finished run still matches the checksum taken when it was written."""
        path = self.directory / name
        expected = self.summary().get("sha256", {})
        if not path.exists():
            return False
        return name not in expected or _file_sha256(path) == expected[name]

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

    def consolidate_embeddings(self) -> None:
        """Write ``embeddings.npy`` from the parts' embeddings in collection order, one part at a
        time (memory stays at one part)."""
        parts = self.manifest.parts
        first = self.embedding_part(0)
        with atomic_path(self.directory / EMBEDDINGS) as tmp, open(tmp, "wb") as handle:
            header = {"descr": "<f2", "fortran_order": False, "shape": (self.manifest.n_images, first.shape[1])}
            np.lib.format.write_array_header_1_0(handle, header)
            for part in parts:
                handle.write(np.ascontiguousarray(self.embedding_part(part.number), dtype="<f2").tobytes())

    def embedding_part(self, part: int) -> np.ndarray:
        """A part's embeddings ``(n, D)`` float16, memory-mapped."""
        path = self.directory / (EMBEDDING_PREFIX + self.manifest.parts[part].name)
        expected = len(self.manifest.parts[part])
        values = _load_mapped(path, "embeddings part", "delete it and run 'anomalymatch score' to score "
                              "its images again")
        if values.dtype != np.float16 or values.ndim != 2 or len(values) != expected:
            raise CorruptFileError(f"{path}: holds {values.dtype} of shape {values.shape}, not {expected} "
                                   "float16 embeddings; delete it and run 'anomalymatch score' again")
        return values

    def embeddings(self) -> np.ndarray:
        """Every image's embedding ``(n_images, D)`` float16, memory-mapped (NaN rows: not embedded).

        Raises
        ------
        NoEmbeddingsError
            The run stores no embeddings, or is not complete yet.
        """
        path = self.directory / EMBEDDINGS
        if not self.manifest.embeddings or not path.exists():
            raise NoEmbeddingsError(f"{self.directory}: this score run stored no embeddings; run "
                                    f"'anomalymatch score {self.directory.parent.parent}' (a run on this "
                                    "machine, not a cluster) to store them")
        values = _load_mapped(path, "embeddings file", "delete it and complete.json; 'anomalymatch score' "
                              "merges it again from the parts")
        if values.dtype != np.float16 or values.ndim != 2 or len(values) != self.manifest.n_images:
            raise CorruptFileError(f"{path}: holds {values.dtype} of shape {values.shape}, not "
                                   f"{self.manifest.n_images} float16 embeddings; delete it and complete.json, "
                                   "then run 'anomalymatch score' to merge it again")
        return values

    def scores(self) -> np.ndarray:
        """All scores, NaN where a part is missing or an image could not be scored.

        A consolidated run is memory-mapped (nothing is read until used) once
        its checksum and size are checked.
        """
        path = self.directory / SCORES
        if path.exists():  # written (atomically) only once every part is there
            return self._consolidated(path)
        out = np.full(self.manifest.n_images, np.nan, dtype=np.float32)
        for part, scores in self.iter_parts():
            out[part.start:part.stop] = scores
        return out

    def _consolidated(self, path: Path) -> np.ndarray:
        advice = (f"delete it and {COMPLETE}; 'anomalymatch score {self.directory.parent.parent}' "
                  "rebuilds it from the parts")
        if (self.directory / COMPLETE).exists() and not self.intact(SCORES):
            raise CorruptFileError(f"{path}: damaged (SHA-256 mismatch); {advice}")
        try:
            scores = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise CorruptFileError(f"{path}: not a readable score file ({err}); {advice}") from err
        if scores.dtype != np.float32 or scores.shape != (self.manifest.n_images,):
            raise CorruptFileError(f"{path}: holds {scores.dtype} of shape {scores.shape}, not "
                                   f"{self.manifest.n_images} float32 scores; {advice}")
        return scores

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


TABLES = ("scores.parquet", "top.parquet")  # tables.CATALOGUE and TOP


def _load_mapped(path: Path, what: str, advice: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CorruptFileError(f"{path}: not a readable {what} ({err}); {advice}") from err


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Path) -> ScoreManifest | None:
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise TypeError(f"expected a JSON object, got {type(values).__name__}")
        return ScoreManifest(**values)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as err:
        raise SessionError(f"{path}: unreadable score manifest ({err}); delete its folder to rescore") from err
