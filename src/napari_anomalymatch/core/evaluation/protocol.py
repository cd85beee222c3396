"""The paper's simulated active-learning protocol on a labelled benchmark.

The manifest (``manifest.read_benchmark``) is a CSV with columns ``path,is_anomaly,initial_label``
(``initial_label``: ``anomaly``, ``normal`` or empty), or a catalogue of positions cut from survey
mosaics with the same two columns.  Training starts from
the initial labels; after each cycle but the last a simulated expert (the
oracle) reviews the still-unlabelled images in a review order and labels the
first true anomalies and normal images it meets (``OracleSettings``); after the
last cycle every never-labelled image is scored and the ranking is measured.

All images are preprocessed once into memory, so each cycle costs only its
training iterations and one pass of the model over the collection.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..config import ORACLE_ORDER, ORACLE_TEST_FRACTION, ScoreConfig, SessionConfig
from ..errors import ConfigError
from ..heads import LPFT, PROBE, get_head, head_log_odds, head_names
from ..io.autocrop import resolve_automatic
from ..labels import ANOMALY, NORMAL, UNLABELED
from ..learning.augment import scoring_views
from ..learning.cycle import run_cycle
from ..learning.probe import AnomalyScorer, FrozenEmbedder, embed_views
from ..learning.progress import TrainingData, TrainProgress, TrainStage
from ..learning.training import Trainer
from ..loading import LoadProgress, load_images
from ..scoring.orders import get_order, rank
from ..scoring.run import embedding_network, score_components
from ..transforms import Normaliser
from .manifest import Benchmark
from .metrics import ranking_metrics
from .remaining import RemainingTracker

if TYPE_CHECKING:
    from ..scoring.diversity import EmbeddingLookup

# Preprocessed images are held in memory; refuse sizes that would not fit comfortably.
MAX_PREPARED_BYTES = 12 * 1024**3


@dataclass(frozen=True)
class OracleSettings:
    """What the simulated expert labels after each cycle.

    It reviews the still-unlabelled images in ``order``, one of the review orders of
    ``Session.ranking``, and labels the first ``anomalies`` true anomalies and the first
    ``normals`` normal images it meets. ``score`` (most anomalous first) is the paper's
    protocol and the default; ``uncertainty`` (closest to the decision boundary first),
    ``random`` and ``diverse`` (the top candidates spread over the scoring network's embeddings)
    are compared in ``benchmarks/results/ablation.md``.
    """

    anomalies: int = 10
    normals: int = 10
    order: str = ORACLE_ORDER
    # The share of the initially unlabelled images, stratified by truth, that the oracle never
    # reviews: every cycle is measured on this fixed split, so cycles compare like with like
    # (the never-labelled pool loses its easiest anomalies to the oracle after every round).
    test_fraction: float = ORACLE_TEST_FRACTION

    def __post_init__(self) -> None:
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"the test split's fraction must be in [0, 1); got {self.test_fraction}")
        get_order(self.order)
        if self.anomalies < 0 or self.normals < 0:
            raise ConfigError(f"the oracle labels a non-negative number of images; got "
                              f"{self.anomalies} anomalies and {self.normals} normal images")


@dataclass(frozen=True)
class CycleReport:
    """Quality of the ranking of still-unlabelled images after one cycle."""

    cycle: int
    metrics: dict[str, float]
    n_labelled_anomalies: int
    n_labelled_normal: int
    train_seconds_per_iteration: float
    score_images_per_second: float
    mean_mask_ratio: float
    mean_pseudo_anomaly_ratio: float  # of the confident pseudo-labels, the share 'anomaly'
    head_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # the same on the fixed test split the oracle never reviews (empty: no split)
    test_metrics: dict[str, float] = field(default_factory=dict)
    test_head_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # how far down its review order the oracle looked to find its labels (0: it labelled nothing)
    oracle_reviewed: int = 0
    # the estimate of the anomalies still unreviewed against the truth (``evaluation.remaining``)
    remaining: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    """Final figures of a protocol run, its per-cycle history and the final scores."""

    metrics: dict[str, float]
    cycles: list[CycleReport]
    settings: dict[str, Any]
    timings: dict[str, float]
    scores: np.ndarray = field(repr=False)
    ever_labelled: np.ndarray = field(repr=False)
    benchmark: Benchmark = field(repr=False)
    config: SessionConfig | None = field(default=None, repr=False)  # with the choices made from the data
    # what each cycle's estimate of the anomalies left was made from (``RemainingTracker.replay``)
    remaining_inputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready record (``anomalymatch evaluate --json``)."""
        last = self.cycles[-1]
        return {
            **{k: _plain(v) for k, v in self.metrics.items()},
            "train_seconds_per_iteration": last.train_seconds_per_iteration,
            "score_images_per_second": last.score_images_per_second,
            **{k: _plain(v) for k, v in self.timings.items()},
            "cycles": [_plain(asdict(c)) for c in self.cycles],
            "settings": self.settings,
        }


def run_protocol(benchmark: Benchmark, config: SessionConfig, cycles: int = 3,
                 oracle: OracleSettings = OracleSettings(), compare_heads: bool = False,
                 ) -> Generator[LoadProgress | TrainStage | TrainProgress | CycleReport, None, EvaluationResult]:
    """Run the protocol, yielding loading, training and per-cycle progress.

    With ``compare_heads`` every cycle is also scored with the heads not chosen (their metrics
    go to ``CycleReport.head_metrics``); the time this takes is ``comparison_seconds``, apart
    from the protocol's own.
    """
    if cycles < 1:
        raise ConfigError(f"cycles must be at least 1; got {cycles}")
    started = time.perf_counter()
    collection = benchmark.collection
    config = resolve_automatic(config, collection)
    size = config.model.image_size
    _check_memory(len(collection), collection.shape[2], size)
    normaliser = Normaliser(config.data.normalisation, collection.value_range)
    load_started = time.perf_counter()
    images, valid = yield from load_images(collection, normaliser, size, np.arange(len(collection)),
                                           num_workers=config.score.num_workers)
    load_seconds = time.perf_counter() - load_started
    labels = benchmark.initial_labels.copy()
    labels[~valid] = UNLABELED
    ever_labelled = labels != UNLABELED
    test = held_out_split(benchmark.is_anomaly, ~ever_labelled & valid, oracle.test_fraction, config.train.seed)
    trainer = Trainer(config.model, config.train, collection.shape[2], probe_config=config.probe)
    reports: list[CycleReport] = []
    parts = _PreparedImages(images, labels, valid, trainer, config.score, compare_heads)
    scores = np.full(len(collection), np.nan, dtype=np.float32)
    remaining = RemainingTracker(benchmark.is_anomaly, ever_labelled, valid, ~ever_labelled & valid & ~test,
                                 config.train.seed)
    for cycle in range(1, cycles + 1):
        done = yield from run_cycle(parts)
        heads, scores, score_rate = done.scored
        timings = [p.seconds_per_iteration for p in done.progress]
        masks = [p.mask_ratio for p in done.progress]
        unlabelled = ~ever_labelled & valid
        newly, reviewed = np.zeros(0, dtype=np.int64), 0
        if cycle < cycles:
            scorer = trainer.scoring_model
            embeddings_of = (_embedder(scorer, images, trainer.device) if get_order(oracle.order).needs_embeddings
                             else None)
            newly, reviewed = oracle_picks(scores, benchmark.is_anomaly, unlabelled & ~test, oracle,
                                           config.train.seed, embeddings_of)
        estimated = remaining.cycle(scores, unlabelled & ~test, reviewed, oracle.order, config.train.seed)
        report = CycleReport(
            cycle=cycle,
            metrics=ranking_metrics(scores[unlabelled], benchmark.is_anomaly[unlabelled]),
            n_labelled_anomalies=int((labels == ANOMALY).sum()),
            n_labelled_normal=int((labels == NORMAL).sum()),
            train_seconds_per_iteration=float(np.median(timings)),
            score_images_per_second=score_rate,
            mean_mask_ratio=float(np.mean(masks)),
            mean_pseudo_anomaly_ratio=_share_of_confident([p.pseudo_anomaly_ratio for p in done.progress], masks),
            head_metrics=_metrics_by_head(heads, benchmark.is_anomaly, unlabelled),
            test_metrics=ranking_metrics(scores[test], benchmark.is_anomaly[test]) if test.any() else {},
            test_head_metrics=_metrics_by_head(heads, benchmark.is_anomaly, test) if test.any() else {},
            oracle_reviewed=reviewed,
            remaining=estimated,
        )
        reports.append(report)
        yield report
        labels[newly] = np.where(benchmark.is_anomaly[newly], ANOMALY, NORMAL)
        ever_labelled[newly] = True
    final = ~ever_labelled & valid
    settings = _settings(config, cycles, oracle, benchmark, trainer)
    timings_out = {"load_seconds": load_seconds, "total_seconds": time.perf_counter() - started,
                   "load_images_per_second": len(collection) / max(load_seconds, 1e-9),
                   "comparison_seconds": parts.comparison_seconds}
    return EvaluationResult(ranking_metrics(scores[final], benchmark.is_anomaly[final]), reports,
                            settings, timings_out, scores, ever_labelled, benchmark, config, remaining.replay)


class _PreparedImages:
    """The protocol's parts of a cycle (``core.learning.cycle.CycleParts``): every image
    preprocessed in memory once, the labels so far (the oracle adds to them between cycles), one
    trainer kept in memory, and scoring by every head in memory."""

    whose = "the benchmark"

    def __init__(self, images: torch.Tensor, labels: np.ndarray, valid: np.ndarray, trainer: Trainer,
                 config: ScoreConfig, compare_heads: bool) -> None:
        self.images, self.labels, self.valid, self._trainer = images, labels, valid, trainer
        self.config, self.compare_heads = config, compare_heads
        self.train_config = trainer.config
        self.n_images = len(images)
        self.frozen_features = _FrozenFeatures(images, config, trainer.device)
        self.comparison_seconds = 0.0  # scoring with the heads not chosen, apart from the protocol's time

    @property
    def cycles_done(self) -> int:
        return self._trainer.cycle

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        indices = np.flatnonzero(self.labels != UNLABELED)
        return indices, self.labels[indices]

    def left_out(self, labelled_idx: np.ndarray) -> np.ndarray:
        return np.union1d(labelled_idx, np.flatnonzero(~self.valid))

    def load(self, labelled_idx: np.ndarray, labels: np.ndarray, pool: np.ndarray,
             ) -> Generator[LoadProgress, None, TrainingData]:
        yield from ()  # loaded once, before the first cycle
        return TrainingData(self.images[torch.from_numpy(labelled_idx)], torch.from_numpy(labels),
                            self.images[torch.from_numpy(pool)])

    def trainer(self, cycle: int) -> Generator[TrainStage, None, Trainer]:
        yield from ()  # built before the first cycle
        return self._trainer

    def keep(self, trainer: Trainer, progress: list[TrainProgress]) -> None:
        """Nothing to write: the trainer keeps the model in memory."""

    def score(self, trainer: Trainer) -> Generator[Any, None, tuple[dict[str, np.ndarray], np.ndarray, float]]:
        """Every head's log-odds, the chosen head's scores (NaN where unusable) and the images scored per second."""
        yield from ()
        started = time.perf_counter()
        scorer = trainer.scoring_model
        parts = self.frozen_features.network_logits(trainer, scorer)
        needed = tuple(name for name in scorer.needed_components() if name not in parts)
        if needed:
            parts.update(score_components(scorer, self.images, self.config, trainer.device,
                                          self.frozen_features.of(scorer), needed))
        rate = len(self.images) / (time.perf_counter() - started)
        if self.compare_heads:
            compare_started = time.perf_counter()
            parts = _all_components(scorer, parts, self.images, self.config, self.frozen_features)
            self.comparison_seconds += time.perf_counter() - compare_started
        heads = _head_scores(parts)
        scores = _sigmoid(heads[scorer.head])
        scores[~self.valid] = np.nan
        return heads, scores, rate


class _FrozenFeatures:
    """Frozen embedders' features of the benchmark's images, computed once for all cycles."""

    def __init__(self, images: torch.Tensor, config: ScoreConfig, device: torch.device) -> None:
        self.images, self.config, self.device = images, config, device
        self.features: dict[tuple, torch.Tensor] = {}  # by what the features came from

    def of(self, scorer: AnomalyScorer) -> torch.Tensor | None:
        """The features the scorer's probe reads (None: they must be computed while scoring):
        ``(N, D)``, or with test-time augmentation ``(8, N, D)``, one slice per flip/quarter turn."""
        return None if scorer.frozen is None else self._embedded(scorer.frozen)

    def network_logits(self, trainer: Trainer, scorer: AnomalyScorer) -> dict[str, np.ndarray]:
        """The ``lpft`` network's log-odds from cached features while its backbone is the
        pretrained one (the default: only the head learns), so a cycle rescores the head alone;
        empty when the network must run."""
        embedder = trainer.pretrained_network_embedder()
        if embedder is None:
            return {}
        features = self._embedded(embedder)
        by_view = features if self.config.tta else features[None]
        head = scorer.model.head
        with torch.inference_mode():
            logits = torch.stack([head(view.to(self.device)).float().cpu() for view in by_view]).mean(0)
        return {LPFT: logits.numpy()}

    def _embedded(self, embedder: FrozenEmbedder) -> torch.Tensor:
        key = (embedder.input_size, embedder.layers, embedder.morphology)
        if key not in self.features:
            self.features.clear()  # one set kept: a benchmark's features can take gigabytes
            views = scoring_views(self.config.tta)
            features = embed_views(embedder, self.images, self.device, self.config.batch_size, views=views)
            self.features[key] = features.reshape(len(views), len(self.images), -1) if self.config.tta else features
        return self.features[key]


def _all_components(scorer: AnomalyScorer, parts: dict[str, np.ndarray], images: torch.Tensor,
                    config: ScoreConfig, frozen_features: _FrozenFeatures) -> dict[str, np.ndarray]:
    """``parts`` completed with the components the scorer's head did not need."""
    missing = tuple(name for name in (scorer.network_name, PROBE) if name not in parts)
    if not missing:
        return parts
    extra = score_components(scorer, images, config, frozen_features.device, frozen_features.of(scorer), missing)
    return {**parts, **extra}


def held_out_split(truth: np.ndarray, candidates: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A fixed random ``fraction`` of the ``candidates``, drawn per class of ``truth`` so the split
    keeps the collection's share of anomalies (each class rounded, at least one image of a
    class that has any when ``fraction`` > 0)."""
    rng = np.random.default_rng([seed, 7])  # apart from the run's other draws from the seed
    chosen = np.zeros(len(truth), dtype=bool)
    if fraction == 0:
        return chosen
    for value in (False, True):
        members = np.flatnonzero(candidates & (truth == value))
        count = min(len(members), max(1, round(fraction * len(members)))) if len(members) else 0
        chosen[rng.choice(members, size=count, replace=False)] = True
    return chosen


def _metrics_by_head(heads: dict[str, np.ndarray], truth: np.ndarray, where: np.ndarray) -> dict[str, dict]:
    return {name: _brief(ranking_metrics(values[where], truth[where])) for name, values in heads.items()}


def _head_scores(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Log-odds of every head the parts give: the network's, the probe's and their ensemble."""
    heads = dict(parts)
    for head in head_names():
        if head not in heads and all(name in parts for name in get_head(head).parts):
            heads[head] = head_log_odds(parts, head)
    return heads


def _share_of_confident(shares: list[float], masks: list[float]) -> float:
    """The per-iteration shares of confident pseudo-labels saying 'anomaly', weighted by how many
    were confident in each iteration (an iteration with none confident says nothing)."""
    weights = np.asarray(masks, dtype=np.float64)
    return float(np.average(shares, weights=weights)) if weights.sum() > 0 else 0.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)


def _brief(metrics: dict[str, float]) -> dict[str, float]:
    keys = ("auroc", "auprc", "precision_top1pct", "anomalies_in_top50")
    return {k: metrics[k] for k in keys}


def oracle_picks(scores: np.ndarray, truth: np.ndarray, unlabelled: np.ndarray, oracle: OracleSettings,
                  seed: int, embeddings_of: EmbeddingLookup | None = None) -> tuple[np.ndarray, int]:
    """The first unlabelled true anomalies and normal images in the oracle's review order, and
    how many images it reviewed to find them."""
    ranked = rank(scores, np.flatnonzero(unlabelled), oracle.order, seed, embeddings_of)
    anomalies = np.flatnonzero(truth[ranked])[:oracle.anomalies]
    normals = np.flatnonzero(~truth[ranked])[:oracle.normals]
    places = np.concatenate([anomalies, normals])
    reviewed = int(places.max()) + 1 if places.size else 0
    return ranked[places], reviewed


def _embedder(scorer: torch.nn.Module, images: torch.Tensor, device: torch.device,
              batch: int = 128) -> EmbeddingLookup:
    """indices -> the scoring network's embeddings of those prepared images (what a session's
    score run stores), computed when asked: the diverse oracle embeds only its pool."""
    network = embedding_network(scorer, device)

    def embeddings_of(indices: np.ndarray) -> np.ndarray:
        rows = []
        with torch.inference_mode():
            for start in range(0, len(indices), batch):
                chosen = torch.from_numpy(np.asarray(indices[start:start + batch], dtype=np.int64))
                rows.append(network.embed(images[chosen].to(device).float()).float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 1), dtype=np.float32)

    return embeddings_of


def _check_memory(n: int, channels: int, size: int) -> None:
    needed = n * channels * size * size * 2
    if needed > MAX_PREPARED_BYTES:
        raise ConfigError(
            f"the benchmark's {n} images at {size}x{size}x{channels} need {needed / 1e9:.1f} GB in "
            f"memory (limit {MAX_PREPARED_BYTES / 1e9:.0f} GB); use a smaller --size or manifest"
        )


def _settings(config: SessionConfig, cycles: int, oracle: OracleSettings, benchmark: Benchmark,
              trainer: Trainer) -> dict[str, Any]:
    return {
        "manifest": benchmark.collection.source,
        "n_images": len(benchmark.collection),
        "n_anomalies": int(benchmark.is_anomaly.sum()),
        "initial_anomalies": int((benchmark.initial_labels == ANOMALY).sum()),
        "initial_normal": int((benchmark.initial_labels == NORMAL).sum()),
        "cycles": cycles,
        "oracle": asdict(oracle),
        "device": str(trainer.device),
        "weights": trainer.weights_source,
        "torch_threads": torch.get_num_threads(),
        **{section: _plain(values) for section, values in config.to_dict().items()},
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
