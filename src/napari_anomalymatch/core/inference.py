"""The model as it scores: eval mode, channels-last, mixed precision, a frozen graph.

``ScoringModel`` wraps the EMA classifier for inference.  On a CPU it is
traced and frozen with TorchScript (batch norm folded into the convolutions,
oneDNN fusions), which is about 1.4x faster than eager PyTorch; on a GPU it runs
eagerly in bf16/fp16 autocast with cuDNN autotuning, or through
``torch.compile`` when asked.  A graph that cannot be built, or whose output
differs from the eager model's, is not used: the eager model is.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from .augment import dihedral, scoring_views
from .config import ScoreConfig

# How far a graph's logits may stray from the eager model's, relative to the largest logit.
GRAPH_TOLERANCE = {None: 1e-4, torch.bfloat16: 5e-2, torch.float16: 2e-2}
# With compile='auto', a CPU graph (about 2 s to build) pays off from this many images.
GRAPH_MIN_IMAGES = 2048


class ScoringModelWarning(UserWarning):
    """The faster inference graph could not be used; scoring runs the eager model."""


def choose_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for inference (None: plain float32).

    ``auto`` is bf16 (fp16 where bf16 is missing) on a GPU and float32
    elsewhere: on a CPU, even one with AMX, the frozen float32 graph scored
    faster than bf16 autocast, and a frozen bf16 graph strayed by ~10 % of the
    logits.
    """
    if requested == "float32":
        return None
    if requested in ("bfloat16", "float16"):
        return getattr(torch, requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def anomaly_probability(model: torch.nn.Module, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """P(anomaly) for a batch; with ``tta`` from the anomaly log-odds averaged over the eight
    flips/quarter turns (as ``scoring.score_components`` averages them)."""
    if not tta:
        return torch.softmax(model(images).float(), dim=-1)[:, 1]
    views = scoring_views(tta)
    total = torch.zeros(images.shape[0], device=images.device)
    for k in views:
        view = dihedral(images, k).contiguous(memory_format=torch.channels_last)
        logits = model(view).float()
        total += logits[:, 1] - logits[:, 0]
    return torch.sigmoid(total / len(views))


class ScoringModel:
    """A classifier ready to score batches: ``scoring_model(images, valid) -> scores``.

    Build one with ``prepare_scoring_model``.  ``graph`` says what runs:
    ``eager``, ``torchscript`` or ``inductor``.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device, dtype: torch.dtype | None,
                 tta: bool, graph: str) -> None:
        self.module = module
        self.device = device
        self.dtype = dtype
        self.tta = tta
        self.graph = graph

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """P(anomaly) of a batch ``(N, C, S, S)`` in [0, 1], on the model's device."""
        images = images.to(self.device, non_blocking=True).float().contiguous(
            memory_format=torch.channels_last)
        with self.autocast():
            return anomaly_probability(self.module, images, self.tta).float()

    def __call__(self, images: torch.Tensor, valid: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
        """Scores as float32 NumPy, NaN where ``valid`` is False."""
        return self.start(images, valid).result()

    @torch.inference_mode()
    def start(self, images: torch.Tensor, valid: torch.Tensor | np.ndarray | None = None) -> PendingScores:
        """Queue a batch on the device and return at once (on a GPU); ``.result()`` waits for it.

        Starting batch ``k + 1`` before asking for the result of batch ``k``
        keeps the GPU busy while this thread fetches and uploads the next batch.
        """
        probabilities = self.probabilities(images)
        if self.device.type != "cuda":
            return PendingScores(probabilities, None, valid)
        host = probabilities.to("cpu", non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return PendingScores(host, done, valid)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @contextlib.contextmanager
    def tuned(self) -> Iterator[None]:
        """Let cuDNN pick the fastest kernels for the fixed input size while scoring."""
        if self.device.type != "cuda":
            yield
            return
        cudnn = torch.backends.cudnn
        previous = cudnn.benchmark
        cudnn.benchmark = True  # only this flag: cudnn.flags() would also reset the fp32 precision
        try:
            yield
        finally:
            cudnn.benchmark = previous


class PendingScores:
    """Scores of a batch on their way back from the device."""

    def __init__(self, host: torch.Tensor, done: torch.cuda.Event | None,
                 valid: torch.Tensor | np.ndarray | None) -> None:
        self.host = host
        self.done = done
        self.valid = valid

    def result(self) -> np.ndarray:
        """Float32 scores, NaN where the batch's images were not usable."""
        if self.done is not None:
            self.done.synchronize()
        out = self.host.numpy().astype(np.float32, copy=True)
        if self.valid is not None:
            mask = self.valid.numpy() if isinstance(self.valid, torch.Tensor) else np.asarray(self.valid)
            out[~mask] = np.nan
        return out


def prepare_scoring_model(model: torch.nn.Module, config: ScoreConfig, input_shape: tuple[int, int, int],
                          device: torch.device | None = None, n_images: int | None = None) -> ScoringModel:
    """A copy of ``model`` made ready to score ``(C, S, S)`` inputs on ``device``.

    Parameters
    ----------
    model
        The (EMA) classifier; it is not changed.
    config
        ``precision``, ``tta`` and ``compile`` (``auto``: TorchScript on a CPU
        for ``GRAPH_MIN_IMAGES`` images or more, else eager; ``none``;
        ``torchscript``; ``inductor``: ``torch.compile``).
    input_shape
        The shape of one model input, used to build and check the graph.
    n_images
        How many images will be scored (None: many).
    """
    device = device or next(model.parameters()).device
    dtype = choose_precision(config.precision, device)
    module = copy.deepcopy(model).eval().to(device, memory_format=torch.channels_last)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    graph = config.compile
    if graph == "auto":
        worth_it = n_images is None or n_images >= GRAPH_MIN_IMAGES
        graph = "torchscript" if device.type == "cpu" and worth_it else "none"
    eager = ScoringModel(module, device, dtype, config.tta, "eager")
    if graph == "none":
        return eager
    example = torch.rand((4, *input_shape), generator=torch.Generator().manual_seed(0))
    built = _build_graph(eager, graph, example.to(device).contiguous(memory_format=torch.channels_last))
    return built if built is not None else eager


def _build_graph(eager: ScoringModel, graph: str, example: torch.Tensor) -> ScoringModel | None:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            # Shapes taken as constants are those of one run's fixed input; the graph is checked below.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            module = _torchscript(eager, example) if graph == "torchscript" else _inductor(eager)
            candidate = ScoringModel(module, eager.device, eager.dtype, eager.tta, graph)
            difference = _relative_difference(candidate, eager, example)
    except (RuntimeError, AttributeError, TypeError, ValueError, NotImplementedError) as err:
        warnings.warn(f"could not build the {graph} scoring graph ({type(err).__name__}: {err}); "
                      "scoring with the eager model", ScoringModelWarning, stacklevel=3)
        return None
    tolerance = GRAPH_TOLERANCE.get(eager.dtype, 2e-2)
    if not difference <= tolerance:
        warnings.warn(f"the {graph} scoring graph differs from the eager model by {difference:.2g} "
                      f"(> {tolerance}); scoring with the eager model", ScoringModelWarning, stacklevel=3)
        return None
    return candidate


@torch.inference_mode()
def _relative_difference(candidate: ScoringModel, eager: ScoringModel, example: torch.Tensor) -> float:
    """Largest difference of the two models' logits over the largest logit (at least 1)."""
    with eager.autocast():
        reference = eager.module(example).float()
        found = candidate.module(example).float()
    return float((found - reference).abs().max() / reference.abs().max().clamp_min(1.0))


def _torchscript(eager: ScoringModel, example: torch.Tensor) -> torch.nn.Module:
    autocast = (torch.autocast(eager.device.type, dtype=eager.dtype, cache_enabled=False)
                if eager.dtype is not None else contextlib.nullcontext())
    with torch.no_grad(), autocast:  # the weight-cast cache cannot be traced
        traced = torch.jit.trace(eager.module, example, check_trace=False)
        return torch.jit.freeze(traced.eval())


def _inductor(eager: ScoringModel) -> torch.nn.Module:
    return torch.compile(eager.module, dynamic=False)
