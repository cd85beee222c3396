"""Which inference path scores a run: measured on this machine, checked against float32.

A path is a precision and a graph (``InferencePath``).  With ``precision`` and
``compile`` both ``auto``, ``select_path`` times each candidate that this
device supports natively on a few batches of the run's own images and keeps
the fastest whose ranking agrees with float32 on those images (see
``AGREEMENT``); the timings (not the agreement, which depends on the
weights) are cached once per machine, keyed by the torch version, the
processor, the thread count, the network's architecture and the input.  A
run's choice is stored in its score manifest, so a resumed run uses the same
path whatever is left to score.

This works on any ``nn.Module`` scorer: it only calls the module.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..config import ScoreConfig

# Reduced precision is used only when, against float32 on the same images, the ranking agrees this
# well: one image in a hundred at the edge of the top 100 is within what two float32 runs of one
# model on different hardware differ by, and far inside what one more label changes.
AGREEMENT = {"spearman": 0.9995, "top_overlap": 0.97, "auroc_difference": 0.002}
# Below this many images a run is not worth timing: it takes the exact float32 (or the GPU's usual) path.
MEASURE_MIN_IMAGES = 2048
# From this many images a torch.compile graph (20-40 s to build on 2 cores) is worth timing too.
COMPILE_MIN_IMAGES = 50_000
CACHE_ENV = "ANOMALYMATCH_CACHE_DIR"
MIXED = "-mixed"  # a precision's suffix: the network's first stages stay float32
_COMPILE_TO_GRAPH = {"none": "eager", "fused": "fused", "inductor": "inductor", "torchscript": "torchscript"}


@dataclass(frozen=True)
class InferencePath:
    """``precision`` (float32, bfloat16, bfloat16-mixed, float16) and ``graph`` (eager, fused,
    inductor, torchscript)."""

    precision: str
    graph: str

    @property
    def label(self) -> str:
        return f"{self.precision}+{self.graph}"

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None: plain float32)."""
        return None if self.precision == "float32" else getattr(torch, self.precision.removesuffix(MIXED))

    @property
    def mixed(self) -> bool:
        """Whether the network's first stages stay float32 (see ``scoring.mixed``)."""
        return self.precision.endswith(MIXED)

    @classmethod
    def parse(cls, label: str) -> InferencePath:
        precision, _, graph = label.partition("+")
        return cls(precision, graph or "eager")

    def forced(self, config: ScoreConfig) -> ScoreConfig:
        """``config`` with this path forced (what a Dask worker or a resumed run must use)."""
        from dataclasses import replace

        compile_mode = {v: k for k, v in _COMPILE_TO_GRAPH.items()}[self.graph]
        return replace(config, precision=self.precision, compile=compile_mode)


@dataclass
class Selection:
    """The path chosen and why: images/s of each candidate, the agreement of each reduced precision."""

    path: InferencePath
    rates: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)
    measured: bool = False
    cached: bool = False


def native_reduced_precisions(device: torch.device) -> list[str]:
    """Reduced precisions this device computes natively (bf16 needs AVX-512 BF16 or AMX on a CPU):
    on a CPU bf16 and ``bfloat16-mixed`` (the network's first stages in float32), each used only
    where its ranking meets ``AGREEMENT`` on the run's own model."""
    if device.type == "cuda":
        return ["bfloat16"] if torch.cuda.is_bf16_supported() else ["float16"]
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return ["bfloat16", "bfloat16" + MIXED] if check is not None and bool(check()) else []


def default_path(config: ScoreConfig, device: torch.device) -> InferencePath:
    """The path without measuring: what is forced, else float32 on a CPU and bf16/fp16 on a GPU."""
    if config.precision != "auto":
        precision = config.precision
    else:
        precision = native_reduced_precisions(device)[0] if device.type == "cuda" else "float32"
    return InferencePath(precision, _COMPILE_TO_GRAPH.get(config.compile, "eager"))


def candidate_paths(config: ScoreConfig, device: torch.device, n_images: int | None = None) -> list[InferencePath]:
    """The paths worth timing; float32 eager first (the reference).

    With ``compile="auto"``, each precision is timed eager and with its batch norms folded
    (``fused``: built in a second), and runs of ``COMPILE_MIN_IMAGES`` or more also time
    ``torch.compile`` (tens of seconds to minutes to build on a laptop CPU).
    """
    precisions = ["float32", *native_reduced_precisions(device)] if config.precision == "auto" else [config.precision]
    if config.compile != "auto":
        graphs = [_COMPILE_TO_GRAPH[config.compile]]
    else:
        graphs = ["eager", "fused"]
        if n_images is None or n_images >= COMPILE_MIN_IMAGES:
            graphs.append("inductor")
    return [InferencePath(p, g) for g in graphs for p in precisions]


def needs_selection(config: ScoreConfig, n_images: int | None) -> bool:
    """Whether the path is measured (something left ``auto`` and enough images to be worth it)."""
    return "auto" in (config.precision, config.compile) and (n_images is None or n_images >= MEASURE_MIN_IMAGES)


def select_path(build: Callable[[InferencePath], Callable[[torch.Tensor], torch.Tensor]],
                candidates: list[InferencePath], calibration: torch.Tensor, key: str,
                batch_size: int, cache: Path | None = None) -> Selection:
    """Time ``candidates`` on ``calibration`` images and pick the fastest that agrees with the first.

    Parameters
    ----------
    build
        Makes a scorer for a path: ``images -> P(anomaly)`` (a tensor).
    candidates
        The reference path (float32) first.
    calibration
        Preprocessed images of the run, ``(N, C, S, S)``; the agreement is judged on them.
    key
        What the timings depend on (see ``timing_key``).
    cache
        The timings file (None: ``cache_file()``).
    """
    cache = cache or cache_file()
    known = _read_cache(cache).get(key, {})
    built: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}

    def scorer_of(candidate: InferencePath) -> Callable[[torch.Tensor], torch.Tensor]:
        if candidate.label not in built:  # built only when timed or compared: a compile takes a while
            built[candidate.label] = build(candidate)
        return built[candidate.label]

    reference_path = candidates[0]
    reference = scorer_of(reference_path)(calibration).float().cpu().numpy()
    selection = Selection(reference_path, measured=True, cached=all(c.label in known for c in candidates))
    if selection.cached:
        selection.rates = {c.label: float(known[c.label]) for c in candidates}
    else:
        timing_batch = _timing_batch(calibration, batch_size)
        selection.rates = {c.label: _images_per_second(scorer_of(c), timing_batch) for c in candidates}
        _write_cache(cache, key, selection.rates)
    for candidate in sorted(candidates, key=lambda c: -selection.rates[c.label]):  # fastest first
        if candidate is not reference_path:
            found = scorer_of(candidate)(calibration).float().cpu().numpy()
            selection.agreement[candidate.label] = ranking_agreement(reference, found)
        if candidate is reference_path or agrees(selection.agreement[candidate.label]):
            selection.path = candidate
            return selection
    return selection


def ranking_agreement(reference: np.ndarray, candidate: np.ndarray, truth: np.ndarray | None = None,
                      top: int = 100) -> dict[str, float]:
    """How well ``candidate`` scores rank as ``reference`` does.

    Returns ``spearman`` (Spearman's rho over all finite scores), ``top_overlap``
    (the fraction of the reference's top ``min(top, n // 10)`` images, at least 1,
    that are also the candidate's) and, with ``truth``, ``auroc_difference``
    (|AUROC(candidate) - AUROC(reference)|).
    """
    from scipy.stats import spearmanr

    finite = np.isfinite(reference) & np.isfinite(candidate)
    reference, candidate = np.asarray(reference)[finite], np.asarray(candidate)[finite]
    k = max(1, min(top, len(reference) // 10))
    best = set(np.argsort(-reference, kind="stable")[:k]) & set(np.argsort(-candidate, kind="stable")[:k])
    rho = spearmanr(reference, candidate).statistic if len(reference) > 1 else 1.0
    result = {"spearman": float(1.0 if np.isnan(rho) and np.array_equal(reference, candidate) else rho),
              "top_overlap": len(best) / k, "top_k": float(k), "n": float(len(reference))}
    if truth is not None:
        from sklearn.metrics import roc_auc_score

        truth = np.asarray(truth)[finite]
        result["auroc_difference"] = abs(float(roc_auc_score(truth, candidate) - roc_auc_score(truth, reference)))
    return result


def agrees(agreement: dict[str, float]) -> bool:
    """Whether an agreement (``ranking_agreement``) meets ``AGREEMENT``; NaN never does."""
    return (agreement["spearman"] >= AGREEMENT["spearman"]
            and agreement["top_overlap"] >= AGREEMENT["top_overlap"]
            and agreement.get("auroc_difference", 0.0) < AGREEMENT["auroc_difference"])


def timing_key(module: torch.nn.Module, device: torch.device, input_shape: tuple[int, ...],
               batch_size: int, tta: bool) -> str:
    """What a path's speed depends on: torch, the processor, the threads, the architecture, the input."""
    n_parameters = sum(p.numel() for p in module.parameters())
    n_modules = sum(1 for _ in module.modules())
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else _processor()
    architecture = f"{type(module).__name__}:{n_modules}:{n_parameters}"
    return "|".join([torch.__version__, where, str(torch.get_num_threads()), architecture,
                     "x".join(map(str, input_shape)), str(batch_size), str(tta)])


def cache_file() -> Path:
    """``$ANOMALYMATCH_CACHE_DIR``, else the user's cache folder, ``napari-anomalymatch/inference.json``."""
    base = os.environ.get(CACHE_ENV) or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-anomalymatch" / "inference.json"


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: platform's answer below
    return platform.processor() or platform.machine()


def _timing_batch(calibration: torch.Tensor, batch_size: int) -> torch.Tensor:
    repeats = -(-batch_size // len(calibration))
    return calibration.repeat(repeats, 1, 1, 1)[:batch_size].contiguous(memory_format=torch.channels_last)


def _images_per_second(scorer: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor,
                       repeats: int = 2) -> float:
    scorer(batch).cpu()  # warm-up: kernel selection, allocator, lazy builds
    started = time.perf_counter()
    for _ in range(repeats):
        scorer(batch).cpu()
    return repeats * len(batch) / max(time.perf_counter() - started, 1e-9)


def _read_cache(path: Path) -> dict[str, dict[str, float]]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: measure again and rewrite it
    return found if isinstance(found, dict) else {}


def _write_cache(path: Path, key: str, rates: dict[str, float]) -> None:
    found = _read_cache(path)
    found[key] = rates
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(found, indent=1).encode())
    except OSError:
        pass  # a read-only home only costs a measurement next time
