"""Streaming a collection through the model: batched, prefetched, resumable.

``score_collection`` is a generator yielding a ``ScoreBatch`` per batch and
returning a ``ScoreResult``.  Images are read (and decoded) in loader worker
processes while the model scores the previous batch.  With a ``ScoreStore``
every finished part is on disk at once, a re-run skips it, and memory does
not grow with the collection: only the part being filled is held, the final
scores are memory-mapped and the top of the ranking is merged part by part.
The anomaly score is the EMA model's softmax probability of "anomaly".
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import ScoreConfig
from ..heads import CLASSIFIER, PROBE
from ..io.base import ImageCollection
from ..learning.augment import dihedral, scoring_views
from ..loading import RangeBatches, iterate_batches, load_images
from ..runs import run_to_end
from ..transforms import Normaliser
from .inference import CALIBRATION_IMAGES, ScoringModel, anomaly_probability, choose_precision, prepare_scoring_model
from .mixed import keep_early_stages_float32
from .pathchoice import InferencePath, default_path, needs_selection
from .store import EMBEDDINGS, Part, ScoreStore, best_of
from .tables import CATALOGUE, TOP, parquet_available, write_score_tables


class MissingTablesWarning(UserWarning):
    """A score run finished without its Parquet tables (pyarrow is missing)."""


class ScorePathWarning(UserWarning):
    """A resumed run keeps the inference path it started with, not the one asked for now."""


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
    """A finished run: every score (NaN for unusable images) and the top of the ranking.

    ``scores`` is memory-mapped from the run's folder when it was stored;
    ``catalogue`` and ``top_table`` are its Parquet tables, when written.
    """

    scores: np.ndarray
    top_indices: np.ndarray
    n_scored: int
    images_per_second: float
    model_hash: str
    catalogue: Path | None = None
    top_table: Path | None = None
    inference: str = ""  # the inference path that scored the run (see inference.prepare_scoring_model)


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's weights, stored with its scores."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def score_collection(model: torch.nn.Module, collection: ImageCollection, normaliser: Normaliser,
                     image_size: int, config: ScoreConfig, device: torch.device | None = None,
                     store: ScoreStore | None = None,
                     indices: Sequence[int] | np.ndarray | None = None,
                     ) -> Generator[ScoreBatch, None, ScoreResult]:
    """Score ``collection`` (or the given ``indices``) batch by batch.

    Parameters
    ----------
    model
        The scoring (EMA) model; a prepared copy of it runs (see ``inference``).
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
    parts = store.remaining_parts() if store is not None else []
    n_todo = sum(len(p) for p in parts) if store is not None else (
        len(collection) if indices is None else len(indices))
    scorer = prepare_run_scorer(model, collection, normaliser, image_size, config, device, store,
                                len(collection) if store is not None else n_todo)
    if store is not None:
        n_scored, rate = yield from score_parts(scorer, collection, normaliser, image_size, config, parts,
                                                store.write_part, len(collection))
        return finish_stored_run(store, config.top_k, model_fingerprint(model), n_scored, rate,
                                 tables_for=collection)
    subset = np.arange(len(collection)) if indices is None else np.asarray(indices, dtype=np.int64)
    scores = np.full(len(collection), np.nan, dtype=np.float32)
    batches = [subset[i:i + config.batch_size] for i in range(0, len(subset), config.batch_size)]
    started = time.perf_counter()
    for batch in stream_scores(scorer, collection, normaliser, image_size, config, batches):
        scores[batch.indices] = batch.scores
        yield _progress(batch.indices, batch.scores, batch.n_done, len(subset), batch.n_done, started)
    rate = len(subset) / max(time.perf_counter() - started, 1e-9)
    top = subset[best_of(scores[subset], subset, config.top_k)]
    return ScoreResult(scores, top, len(subset), rate, model_fingerprint(model), inference=scorer.path.label)


def prepare_run_scorer(model: torch.nn.Module, collection: ImageCollection, normaliser: Normaliser,
                       image_size: int, config: ScoreConfig, device: torch.device,
                       store: ScoreStore | None, n_images: int) -> ScoringModel:
    """The scorer of a run: the path its ``store`` recorded, else one chosen now (and recorded).

    A resumed run thus scores its remaining parts exactly as its first parts
    were scored, however few are left.  The choice is measured on images of
    ``collection`` (see ``inference.prepare_scoring_model``).
    """
    shape = (collection.shape[2], image_size, image_size)
    stored = store.manifest.inference if store is not None else ""
    path = InferencePath.parse(stored) if stored else None
    if path is not None and path != default_path(config, device) and not _is_auto(config):
        warnings.warn(f"{store.directory}: this run was started with the {path.label} inference path; "
                      f"it is finished with it (not precision={config.precision}, compile={config.compile}) so "
                      "its scores stay consistent; delete the folder to rescore", ScorePathWarning, stacklevel=3)
    calibration = None
    if path is None and needs_selection(config, n_images):
        calibration = calibration_images(collection, normaliser, image_size)
    scorer = prepare_scoring_model(model, config, shape, device, n_images=n_images, calibration=calibration,
                                   path=path)
    if store is not None:
        store.record_inference(scorer.path.label, scorer.selection.agreement if scorer.selection else None)
        if store.manifest.embeddings:
            scorer.store_embeddings(lambda: embedding_network(model, device))
    return scorer


def embedding_network(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A frozen copy of the classifier inside ``model`` whose ``embed`` gives the pooled features
    its head reads (1,280 for EfficientNet-Lite0): what similarity search compares.

    The lpft network's morphology statistics are left out: they are in other units and
    would outweigh the network's features under a cosine.
    """
    import copy

    network = getattr(model, "model", model)  # an AnomalyScorer's trained network
    network = getattr(network, "network", network)  # an lpft.ProbedNetwork's classifier
    if not hasattr(network, "embed"):
        raise ValueError(f"{type(network).__name__} has no embed(); it cannot store embeddings")
    network = copy.deepcopy(network).eval().to(device, memory_format=torch.channels_last)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def calibration_images(collection: ImageCollection, normaliser: Normaliser, image_size: int,
                       n: int = CALIBRATION_IMAGES) -> torch.Tensor | None:
    """Up to ``n`` usable images spread evenly over ``collection``, preprocessed (None: none usable)."""
    indices = np.unique(np.linspace(0, len(collection) - 1, min(n, len(collection))).astype(np.int64))
    images, valid = run_to_end(load_images(collection, normaliser, image_size, indices, num_workers=0,
                                           dtype=torch.float32))
    return images[torch.from_numpy(valid)] if valid.any() else None


def _is_auto(config: ScoreConfig) -> bool:
    return config.precision == "auto" and config.compile == "auto"


@dataclass(frozen=True)
class _Scored:
    indices: np.ndarray
    scores: np.ndarray
    n_done: int
    embeddings: np.ndarray | None = None


def stream_scores(scorer: ScoringModel, collection: ImageCollection, normaliser: Normaliser,
                  image_size: int, config: ScoreConfig, batches: Sequence[np.ndarray],
                  ) -> Iterable[_Scored]:
    """Scores of ``batches`` (index arrays or a ``RangeBatches`` plan), in order.

    Batch ``k + 1`` is queued on the device before the scores of batch ``k``
    are collected, so a GPU never waits for this thread.
    """
    n_done, pending = 0, None
    with scorer.tuned(), iterate_batches(collection, normaliser, image_size, batches,
                                         config.num_workers, scorer.device) as loaded:
        for k, (images, valid) in enumerate(loaded):
            started = (k, scorer.start(images, valid))
            if pending is not None:
                n_done += len(batches[pending[0]])
                yield _collected(batches[pending[0]], pending[1], n_done)
            pending = started
        if pending is not None:
            n_done += len(batches[pending[0]])
            yield _collected(batches[pending[0]], pending[1], n_done)


def _collected(indices: np.ndarray, pending, n_done: int) -> _Scored:
    embeddings = getattr(pending, "embeddings", None)  # scorers without an embedder have none
    return _Scored(indices, pending.result(), n_done, embeddings() if embeddings is not None else None)


def score_parts(scorer: ScoringModel, collection: ImageCollection, normaliser: Normaliser,
                image_size: int, config: ScoreConfig, parts: Sequence[Part],
                write_part: Callable[[int, np.ndarray], None], n_total: int | None = None,
                ) -> Generator[ScoreBatch, None, tuple[int, float]]:
    """Score whole ``parts``, handing each finished part to ``write_part(number, scores)``.

    Only the part being filled is held in memory.  Returns ``(n_scored, images_per_second)``.
    """
    plan = RangeBatches([(p.start, p.stop) for p in parts], config.batch_size)
    n_todo = sum(len(p) for p in parts)
    n_before = (n_total - n_todo) if n_total is not None else 0
    n_total = n_total if n_total is not None else n_todo
    started = time.perf_counter()
    part_iter = iter(parts)
    current, buffer, filled, embedded = None, np.zeros(0, dtype=np.float32), 0, None
    for batch in stream_scores(scorer, collection, normaliser, image_size, config, plan):
        if current is None or filled == len(current):
            current = next(part_iter)
            buffer, filled, embedded = np.full(len(current), np.nan, dtype=np.float32), 0, None
        if batch.embeddings is not None and embedded is None:
            embedded = np.full((len(current), batch.embeddings.shape[1]), np.nan, dtype=np.float16)
        buffer[filled:filled + len(batch.indices)] = batch.scores
        if embedded is not None:
            embedded[filled:filled + len(batch.indices)] = batch.embeddings
        filled += len(batch.indices)
        if filled == len(current):
            write_part(current.number, buffer, *(() if embedded is None else (embedded,)))
        yield _progress(batch.indices, batch.scores, n_before + batch.n_done, n_total, batch.n_done,
                        started)
    return n_todo, n_todo / max(time.perf_counter() - started, 1e-9)


def finish_stored_run(store: ScoreStore, k: int, model_hash: str, n_scored: int, images_per_second: float,
                      tables_for: ImageCollection | None = None) -> ScoreResult:
    """Merge a run whose parts are all written: ``scores.npy``, the top ``k`` and the Parquet tables.

    With ``tables_for`` (the scored collection) and pyarrow installed, the
    catalogue and top-k tables are written (see ``scoring.tables``).  A run
    found complete is not merged again.
    """
    missing = len(store.remaining_parts())
    if missing:
        raise RuntimeError(f"{store.directory}: {missing} parts are still missing; score them first")
    done_before = store.complete
    n_finite = None if done_before else store.consolidate()
    if store.manifest.embeddings and not (done_before and (store.directory / EMBEDDINGS).exists()):
        store.consolidate_embeddings()
    scores = store.scores()  # memory-mapped: nothing is read until used
    top = store.top_k(k)
    catalogue, top_table = store.directory / CATALOGUE, store.directory / TOP
    rewritten = False
    if tables_for is not None and parquet_available():
        if not (done_before and store.intact(CATALOGUE) and store.intact(TOP)):  # missing or damaged
            catalogue, top_table = write_score_tables(store, tables_for, top)
            rewritten = True
    elif tables_for is not None:
        warnings.warn("pyarrow is not installed, so no Parquet score tables were written; "
                      "pip install napari-anomalymatch[parquet]", MissingTablesWarning, stacklevel=2)
    if not done_before:
        store.mark_complete({"n_scored": n_finite, "images_per_second": images_per_second,
                             "inference": store.manifest.inference})
    elif rewritten:  # record the new tables' checksums
        store.mark_complete({k: v for k, v in store.summary().items() if k != "sha256"})
    found = catalogue.exists() and top_table.exists()
    return ScoreResult(scores, top, n_scored, images_per_second, model_hash,
                       catalogue if found else None, top_table if found else None, store.manifest.inference)


def top_k(scores: np.ndarray, subset: np.ndarray, k: int) -> np.ndarray:
    """Indices (from ``subset``) of the ``k`` highest finite scores, best first (ties: lower index)."""
    subset = np.asarray(subset, dtype=np.int64)
    return subset[best_of(np.asarray(scores)[subset], subset, k)]


def score_images(model: torch.nn.Module, images: torch.Tensor, config: ScoreConfig,
                 device: torch.device | None = None) -> np.ndarray:
    """Scores of already preprocessed images ``(N, C, S, S)`` held in memory."""
    device = device or next(model.parameters()).device
    scorer = prepare_scoring_model(model, config, tuple(images.shape[1:]), device,  # type: ignore[arg-type]
                                   n_images=len(images))
    out = np.empty(len(images), dtype=np.float32)
    with scorer.tuned():
        for start in range(0, len(images), config.batch_size):
            batch = images[start:start + config.batch_size]
            out[start:start + len(batch)] = scorer(batch)
    return out


@torch.inference_mode()
def score_components(scorer: torch.nn.Module, images: torch.Tensor, config: ScoreConfig,
                     device: torch.device | None = None,
                     probe_features: torch.Tensor | None = None,
                     which: tuple[str, ...] = (CLASSIFIER, PROBE)) -> dict[str, np.ndarray]:
    """Anomaly log-odds of each part of an ``AnomalyScorer`` (classifier, probe) for images
    in memory, averaged over the eight flips/quarter turns when ``config.tta``.

    ``probe_features``: the probe's embeddings of ``images``, when already computed: ``(N, D)``,
    or with ``config.tta`` ``(8, N, D)``, those of each flip/quarter turn in ``augment.dihedral``'s
    order (``probe.embed_views`` with all eight views, reshaped). ``which``: the components wanted.
    """
    views = scoring_views(config.tta)
    expected = (len(views), len(images)) if config.tta else (len(images),)
    if probe_features is not None and tuple(probe_features.shape[:-1]) != expected:
        raise ValueError(f"probe_features of {len(images)} images must be (N, D), or (8, N, D) with tta; "
                         f"got {tuple(probe_features.shape)} with tta={config.tta}")
    device = device or next(scorer.parameters()).device
    scorer.eval()
    if InferencePath(config.precision, "eager").mixed:
        scorer = keep_early_stages_float32(scorer)[0]
    dtype = choose_precision(config.precision, device)
    context = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    parts: dict[str, list[np.ndarray]] = {}
    by_view = probe_features if probe_features is None or config.tta else probe_features[None]
    for start in range(0, len(images), config.batch_size):
        batch = images[start:start + config.batch_size].to(device).float()
        totals: dict[str, torch.Tensor] = {}
        for k in views:
            view = dihedral(batch, k).contiguous(memory_format=torch.channels_last)
            known = None if by_view is None else by_view[k, start:start + len(batch)].to(device)
            with context:
                for name, value in scorer.components(view, known, which).items():
                    totals[name] = totals.get(name, 0) + value.float()
        for name, value in totals.items():
            parts.setdefault(name, []).append((value / len(views)).cpu().numpy())
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _progress(indices: np.ndarray, scores: np.ndarray, n_done: int, n_total: int, n_this_run: int,
              started: float) -> ScoreBatch:
    elapsed = max(time.perf_counter() - started, 1e-9)
    return ScoreBatch(indices, scores, n_done, n_total, n_this_run / elapsed)


__all__ = ["ScoreBatch", "ScoreResult", "anomaly_probability", "choose_precision", "finish_stored_run",
           "model_fingerprint", "prepare_run_scorer", "run_to_end", "score_collection", "score_components",
           "score_images", "score_parts", "stream_scores", "top_k"]
