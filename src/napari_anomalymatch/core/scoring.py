"""Streaming a collection through the model: batched, prefetched, resumable.

``score_collection`` is a generator yielding a ``ScoreBatch`` per batch and
returning a ``ScoreResult``.  Images are read, normalised and resized in
loader worker processes while the model scores the previous batch; with a
``ScoreStore`` every finished part is on disk at once and a re-run skips it.
The anomaly score is the EMA model's softmax probability of "anomaly".
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .augment import dihedral
from .config import ScoreConfig
from .io.base import ImageCollection
from .loading import iterate_batches
from .scorestore import ScoreStore
from .transforms import Normaliser


@dataclass(frozen=True)
class ScoreBatch:
    """Scores of one batch and the run's progress."""

    indices: np.ndarray
    scores: np.ndarray
    n_done: int
    n_total: int
    images_per_second: float


@dataclass(frozen=True)
class ScoreResult:
    """A finished run: every score (NaN for unusable images) and the top of the ranking."""

    scores: np.ndarray
    top_indices: np.ndarray
    n_scored: int
    images_per_second: float
    model_hash: str


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's weights, stored with its scores."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def anomaly_probability(model: torch.nn.Module, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """P(anomaly) for a batch; with ``tta`` averaged over the eight flips/quarter turns."""
    if not tta:
        return torch.softmax(model(images).float(), dim=-1)[:, 1]
    total = torch.zeros(images.shape[0], device=images.device)
    for k in range(8):
        view = dihedral(images, k).contiguous(memory_format=torch.channels_last)
        total += torch.softmax(model(view).float(), dim=-1)[:, 1]
    return total / 8


def choose_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for inference (None: plain float32)."""
    if requested == "float32":
        return None
    if requested in ("bfloat16", "float16"):
        return getattr(torch, requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_fast_bfloat16():
        return torch.bfloat16
    return None


def score_collection(model: torch.nn.Module, collection: ImageCollection, normaliser: Normaliser,
                     image_size: int, config: ScoreConfig, device: torch.device | None = None,
                     store: ScoreStore | None = None,
                     indices: Sequence[int] | np.ndarray | None = None,
                     ) -> Generator[ScoreBatch, None, ScoreResult]:
    """Score ``collection`` (or the given ``indices``) batch by batch.

    Parameters
    ----------
    model
        The scoring (EMA) model; it is put in eval mode.
    store
        Where parts are written; parts already there are skipped (resume).
        Not combinable with ``indices``.

    Yields
    ------
    ScoreBatch after each batch.

    Returns
    -------
    ScoreResult (the generator's return value; ``run_to_end`` collects it).
    """
    if store is not None and indices is not None:
        raise ValueError("score either a store's whole collection or a subset of indices, not both")
    device = device or next(model.parameters()).device
    model.eval()
    n_total = len(collection) if indices is None else len(indices)
    scores = store.scores() if store is not None else np.full(len(collection), np.nan, np.float32)
    work = _plan(collection, config, store, indices)
    n_done = n_total - sum(len(batch) for _, batch in work)
    dtype = choose_precision(config.precision, device)
    started, n_scored = time.perf_counter(), 0
    part_filled: dict[int, int] = {}
    batches_to_read = [idx for _, idx in work]
    with iterate_batches(collection, normaliser, image_size, batches_to_read, config.num_workers,
                         device) as batches:
        for (part, idx), (images, valid) in zip(work, batches, strict=True):
            batch_scores = _score_batch(model, images, valid, device, dtype, config.tta)
            scores[idx] = batch_scores
            n_done += len(idx)
            n_scored += len(idx)
            if store is not None and part is not None:
                _maybe_write_part(store, part, idx, scores, part_filled)
            rate = n_scored / max(time.perf_counter() - started, 1e-9)
            yield ScoreBatch(idx, batch_scores, n_done, n_total, rate)
    rate = n_scored / max(time.perf_counter() - started, 1e-9)
    subset = np.arange(len(collection)) if indices is None else np.asarray(indices, dtype=np.int64)
    result = ScoreResult(scores, top_k(scores, subset, config.top_k), n_scored, rate,
                         model_fingerprint(model))
    if store is not None:
        store.mark_complete({"n_scored": int(np.isfinite(scores).sum()),
                             "images_per_second": rate})
    return result


def run_to_end(generator: Generator[ScoreBatch, None, ScoreResult], progress=None) -> ScoreResult:
    """Drive a scoring generator to its end, calling ``progress(batch)`` for each batch."""
    while True:
        try:
            batch = next(generator)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(batch)


def top_k(scores: np.ndarray, subset: np.ndarray, k: int) -> np.ndarray:
    """Indices (from ``subset``) of the ``k`` highest finite scores, best first."""
    candidates = subset[np.isfinite(scores[subset])]
    if k <= 0 or candidates.size == 0:
        return np.zeros(0, dtype=np.int64)
    values = scores[candidates]
    if candidates.size > k:
        keep = np.argpartition(-values, k - 1)[:k]
        candidates, values = candidates[keep], values[keep]
    return candidates[np.lexsort((candidates, -values))]


# -- internals -------------------------------------------------------------------------


def _plan(collection: ImageCollection, config: ScoreConfig, store: ScoreStore | None,
          indices: Sequence[int] | np.ndarray | None) -> list[tuple[int | None, np.ndarray]]:
    """(part, batch indices) still to score, in order."""
    size = config.batch_size
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
        return [(None, idx[i:i + size]) for i in range(0, len(idx), size)]
    if store is None:
        n = len(collection)
        return [(None, np.arange(i, min(i + size, n))) for i in range(0, n, size)]
    work = []
    done = store.done_parts()
    for part in range(store.manifest.n_parts):
        if part in done:
            continue
        start, stop = store.manifest.part_range(part)
        work += [(part, np.arange(i, min(i + size, stop))) for i in range(start, stop, size)]
    return work


def _maybe_write_part(store: ScoreStore, part: int, idx: np.ndarray, scores: np.ndarray,
                      filled: dict[int, int]) -> None:
    filled[part] = filled.get(part, 0) + len(idx)
    start, stop = store.manifest.part_range(part)
    if filled[part] == stop - start:
        store.write_part(part, scores[start:stop])
        del filled[part]


@torch.inference_mode()
def _score_batch(model: torch.nn.Module, images: torch.Tensor, valid: torch.Tensor,
                 device: torch.device, dtype: torch.dtype | None, tta: bool) -> np.ndarray:
    images = images.to(device, non_blocking=True).float().contiguous(memory_format=torch.channels_last)
    context = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with context:
        probability = anomaly_probability(model, images, tta)
    out = probability.float().cpu().numpy()
    out[~valid.numpy()] = np.nan
    return out


def _cpu_has_fast_bfloat16() -> bool:
    cpu = getattr(torch, "cpu", None)
    check = getattr(cpu, "_is_amx_tile_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def score_images(model: torch.nn.Module, images: torch.Tensor, config: ScoreConfig,
                 device: torch.device | None = None) -> np.ndarray:
    """Scores of already preprocessed images ``(N, C, S, S)`` held in memory."""
    device = device or next(model.parameters()).device
    model.eval()
    dtype = choose_precision(config.precision, device)
    out = np.empty(len(images), dtype=np.float32)
    valid = torch.ones(config.batch_size, dtype=torch.bool)
    for start in range(0, len(images), config.batch_size):
        batch = images[start:start + config.batch_size]
        out[start:start + len(batch)] = _score_batch(model, batch, valid[:len(batch)], device,
                                                     dtype, config.tta)
    return out


@torch.inference_mode()
def score_components(scorer: torch.nn.Module, images: torch.Tensor, config: ScoreConfig,
                     device: torch.device | None = None) -> dict[str, np.ndarray]:
    """Anomaly log-odds of each part of an ``AnomalyScorer`` (classifier, probe) for images
    in memory, averaged over the eight flips/quarter turns when ``config.tta``."""
    device = device or next(scorer.parameters()).device
    scorer.eval()
    dtype = choose_precision(config.precision, device)
    context = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    parts: dict[str, list[np.ndarray]] = {}
    views = range(8) if config.tta else range(1)
    for start in range(0, len(images), config.batch_size):
        batch = images[start:start + config.batch_size].to(device).float()
        totals: dict[str, torch.Tensor] = {}
        for k in views:
            view = dihedral(batch, k).contiguous(memory_format=torch.channels_last)
            with context:
                for name, value in scorer.components(view).items():
                    totals[name] = totals.get(name, 0) + value.float()
        for name, value in totals.items():
            parts.setdefault(name, []).append((value / len(views)).cpu().numpy())
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}
