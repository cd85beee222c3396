"""The model as it scores: eval mode, channels-last, the precision and graph chosen for the run.

``prepare_scoring_model`` wraps the EMA classifier (any ``nn.Module`` scorer)
for inference.  Its path, a precision and a graph, is forced by
``ScoreConfig.precision`` / ``compile`` or, with both ``auto``, chosen by
measurement on the run's own images (``pathchoice.select_path``): on a CPU
float32, or where the CPU has native bf16 (AVX-512 BF16, AMX) bf16 autocast,
plain or with the network's first stages in float32 (``bfloat16-mixed``, see
``mixed``), on a GPU bf16/fp16 or float32; each as it is or with its batch norms
folded into the convolutions (``compile="fused"``, see ``fusion``); the fastest whose ranking agrees with
float32 is used.  ``torch.compile`` (``compile="inductor"``)
is timed too for large runs, and used when asked; the TorchScript graph is kept
only behind ``compile="torchscript"``, deprecated as torch deprecates it.  A
graph that cannot be built, or whose output differs from the eager model's, is
not used: the eager model is.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..config import ScoreConfig
from ..errors import ConfigError
from ..learning.augment import dihedral, scoring_views
from .fusion import fold_batch_norms
from .mixed import keep_early_stages_float32
from .pathchoice import (
    InferencePath,
    Selection,
    candidate_paths,
    default_path,
    needs_selection,
    select_path,
    timing_key,
)

# How far a graph's logits may stray from the eager model's, relative to the largest logit.
GRAPH_TOLERANCE = {None: 1e-4, torch.bfloat16: 5e-2, torch.float16: 2e-2}
CALIBRATION_IMAGES = 256  # images of the run the paths are timed and compared on


class ScoringModelWarning(UserWarning):
    """The faster inference graph could not be used; scoring runs the eager model."""


def choose_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype without measuring (None: plain float32).

    ``auto`` is bf16 (fp16 where bf16 is missing) on a GPU and float32
    elsewhere; a scoring run with ``auto`` measures instead (``prepare_scoring_model``).
    """
    if requested == "float32":
        return None
    if requested in ("bfloat16", "bfloat16-mixed", "float16"):
        return InferencePath(requested, "eager").dtype
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
    ``eager``, ``fused``, ``torchscript`` or ``inductor``; ``path`` is the precision and
    graph (what a resumed run must reuse) and ``selection`` how it was chosen.
    """

    selection: Selection | None = None
    # makes a module whose ``embed`` gives each image's pooled features, stored with its score
    # (None: no embeddings); made only if the scoring pass cannot pool them itself
    make_embedder: Callable[[], torch.nn.Module] | None = None
    embedder: torch.nn.Module | None = None

    @property
    def path(self) -> InferencePath:
        return InferencePath(self.precision, self.graph)

    @property
    def dtype(self) -> torch.dtype | None:
        return InferencePath(self.precision, self.graph).dtype

    def __init__(self, module: torch.nn.Module, device: torch.device, precision: str,
                 tta: bool, graph: str) -> None:
        self.module = module
        self.device = device
        self.precision = precision
        self.tta = tta
        self.graph = graph
        self._captured: list[torch.Tensor] = []  # features pooled during the last pass (store_embeddings)

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
        self._captured.clear()
        probabilities = self.probabilities(images)
        embeddings = None
        if self.make_embedder is not None:
            # the features the scoring pass pooled on its way, else a second pass of the embedder
            embeddings = self._captured[0].half() if len(self._captured) == 1 else self.embeddings(images)
        if self.device.type != "cuda":
            return PendingScores(probabilities, None, valid, embeddings)
        host = probabilities.to("cpu", non_blocking=True)
        if embeddings is not None:
            embeddings = embeddings.to("cpu", non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return PendingScores(host, done, valid, embeddings)

    def store_embeddings(self, make_embedder: Callable[[], torch.nn.Module]) -> None:
        """Give each batch's embeddings too: the pooled head features of ``make_embedder()``'s
        ``embed``.  Where the scoring pass runs in eager mode through one backbone, and on the
        image as it is, they are pooled from that pass (the same features: ``embed`` pools the
        output of ``bn2``), and the embedder (a copy of the network) is never made."""
        self.make_embedder = make_embedder
        backbones = [m for m in self.module.modules() if all(hasattr(m, n) for n in ("conv_head", "bn2", "blocks"))]
        if self.graph in ("eager", "fused") and not self.tta and len(backbones) == 1:
            backbones[0].bn2.register_forward_hook(
                lambda module, args, out: self._captured.append(out.float().mean((2, 3))))

    @torch.inference_mode()
    def embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """The embedder's float16 features of a batch (the images as given: no flips)."""
        images = images.to(self.device, non_blocking=True).float().contiguous(
            memory_format=torch.channels_last)
        if self.embedder is None:
            self.embedder = self.make_embedder()
        with self.autocast():
            return self.embedder.embed(images).half()

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
                 valid: torch.Tensor | np.ndarray | None, embeddings: torch.Tensor | None = None) -> None:
        self.host = host
        self.done = done
        self.valid = valid
        self.embedded = embeddings

    def result(self) -> np.ndarray:
        """Float32 scores, NaN where the batch's images were not usable."""
        if self.done is not None:
            self.done.synchronize()
        out = self.host.numpy().astype(np.float32, copy=True)
        if self.valid is not None:
            mask = self.valid.numpy() if isinstance(self.valid, torch.Tensor) else np.asarray(self.valid)
            out[~mask] = np.nan
        return out

    def embeddings(self) -> np.ndarray | None:
        """Float16 embeddings ``(N, D)``, NaN rows where images were not usable (None: not asked for)."""
        if self.embedded is None:
            return None
        if self.done is not None:
            self.done.synchronize()
        out = self.embedded.numpy().astype(np.float16, copy=True)
        if self.valid is not None:
            mask = self.valid.numpy() if isinstance(self.valid, torch.Tensor) else np.asarray(self.valid)
            out[~mask.astype(bool)] = np.nan
        return out


def prepare_scoring_model(model: torch.nn.Module, config: ScoreConfig, input_shape: tuple[int, int, int],
                          device: torch.device | None = None, n_images: int | None = None,
                          calibration: torch.Tensor | None = None,
                          path: InferencePath | None = None) -> ScoringModel:
    """A copy of ``model`` made ready to score ``(C, S, S)`` inputs on ``device``.

    Parameters
    ----------
    model
        The (EMA) classifier or any scorer module; it is not changed.
    config
        ``precision`` and ``compile`` (``auto``, ``none``, ``inductor``:
        ``torch.compile``; ``torchscript``: deprecated), and ``tta``.
    input_shape
        The shape of one model input, used to build and check a graph.
    n_images
        How many images will be scored (None: many); below
        ``pathchoice.MEASURE_MIN_IMAGES`` nothing is measured.
    calibration
        Some of the run's preprocessed images to time and compare the paths on
        (None: random images of ``input_shape``).
    path
        The path to use, as a resumed run's manifest says; overrides ``config``.
    """
    device = device or next(model.parameters()).device
    module = copy.deepcopy(model).eval().to(device, memory_format=torch.channels_last)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    if path is not None:
        return _build(module, path, config.tta, device, input_shape)
    candidates = candidate_paths(config, device, n_images)
    if not needs_selection(config, n_images) or len(candidates) == 1:
        return _build(module, default_path(config, device), config.tta, device, input_shape)
    if calibration is None:
        calibration = torch.rand((16, *input_shape), generator=torch.Generator().manual_seed(0))
    calibration = calibration[:CALIBRATION_IMAGES].to(device).float().contiguous(memory_format=torch.channels_last)
    built: dict[str, ScoringModel] = {}

    def build(candidate: InferencePath):
        built[candidate.label] = _build(module, candidate, config.tta, device, input_shape)
        return built[candidate.label].probabilities

    key = timing_key(module, device, input_shape, config.batch_size, config.tta)
    selection = select_path(build, candidates, calibration, key, config.batch_size)
    chosen = built[selection.path.label]
    chosen.selection = selection
    return chosen


def _build(module: torch.nn.Module, path: InferencePath, tta: bool, device: torch.device,
           input_shape: tuple[int, int, int]) -> ScoringModel:
    """``module`` (prepared) scoring along ``path``; a graph that fails or strays gives the eager model."""
    if path.mixed:
        module, changed = keep_early_stages_float32(module)
        if changed == 0:
            raise ConfigError(f"score.precision = {path.precision!r} needs an EfficientNet-style "
                              "network (conv_stem, bn1, blocks); use 'bfloat16' or 'float32'")
    eager = ScoringModel(module, device, path.precision, tta, "eager")
    if path.graph == "eager":
        return eager
    if path.graph == "torchscript":
        warnings.warn("compile='torchscript' uses torch.jit.trace/freeze, which torch deprecates; use "
                      "compile='auto' (measured) or 'inductor' (torch.compile)", FutureWarning, stacklevel=4)
    example = torch.rand((4, *input_shape), generator=torch.Generator().manual_seed(0))
    built = _build_graph(eager, path.graph, example.to(device).contiguous(memory_format=torch.channels_last))
    return built if built is not None else eager


def _build_graph(eager: ScoringModel, graph: str, example: torch.Tensor) -> ScoringModel | None:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            # Shapes taken as constants are those of one run's fixed input; the graph is checked below.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            builder = {"torchscript": _torchscript, "fused": _fused, "inductor": _inductor}[graph]
            module = builder(eager, example)
            candidate = ScoringModel(module, eager.device, eager.precision, eager.tta, graph)
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


def _fused(eager: ScoringModel, example: torch.Tensor) -> torch.nn.Module:
    module, folded = fold_batch_norms(eager.module)
    if folded == 0:
        raise ValueError("the network has no batch norm after a convolution to fold")
    return module.to(memory_format=torch.channels_last)


def _inductor(eager: ScoringModel, example: torch.Tensor) -> torch.nn.Module:
    # on a CPU the weights are folded into the graph, as TorchScript's freeze did
    options = {"freezing": True} if eager.device.type == "cpu" else None
    return torch.compile(eager.module, dynamic=False, options=options)
