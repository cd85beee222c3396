"""FixMatch training in cycles that continue the same model.

``Trainer.run`` is a generator: it yields a ``TrainProgress`` after every
iteration, so a caller can show progress and stop between iterations simply
by not asking for the next one; the model, its EMA and the optimiser are then
consistent and usable.  All randomness (head initialisation, sampling,
augmentation) follows ``TrainConfig.seed``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator

import torch

from ..config import ModelConfig, ProbeConfig, TrainConfig
from ..errors import CheckpointError
from ..heads import CLASSIFIER, LPFT, get_head, heads_training
from .augment import strong_augment, weak_augment
from .fixmatch import FixMatchBatch, fixmatch_step
from .lpft import ProbedNetwork, fit_head
from .models import AnomalyClassifier, build_model, choose_device
from .probe import (
    FROZEN_LAYER_CODES,
    AnomalyScorer,
    FrozenEmbedder,
    LinearProbe,
    collection_statistics,
    fit_probe,
    frozen_layers_from_state,
)
from .progress import TrainingData, TrainProgress

# Unlabelled images whose mean embedding centres the probe: enough for a stable mean, few enough
# to embed in seconds on a laptop CPU.
CENTRE_SAMPLE = 2048


class Trainer:
    """Owns the model, its EMA copy (used for scoring) and the optimiser.

    ``probe_config`` (default: ``ProbeConfig()``) says what the linear probe, and the head the
    ``lpft`` heads start each cycle with, read and how they are fitted.
    """

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, in_chans: int,
                 device: torch.device | None = None, probe_config: ProbeConfig | None = None) -> None:
        self.model_config = model_config
        self.config = train_config
        self.probe_config = probe_config or ProbeConfig()
        self.in_chans = in_chans
        self.device = device or choose_device(model_config.device)
        # The trainer's own torch RNG (new heads' initial weights, any dropout), seeded from the
        # config: a caller's global RNG is neither reset by the library nor able to change a run.
        self._rng_state: dict[str, torch.Tensor] = {}
        with self._own_rng(seed=train_config.seed):
            built = build_model(model_config, in_chans)
            network = (ProbedNetwork(built.model, self.probe_config.uses_morphology(in_chans))
                       if train_config.trains_lpft else built.model)
        self.weights_source = built.weights
        # The starting network, kept frozen: the probe's features (probe.features = "pretrained").
        self._starting_model = copy.deepcopy(built.model).to(self.device, memory_format=torch.channels_last)
        self._starting_model.eval().requires_grad_(False)
        self.model: AnomalyClassifier | ProbedNetwork = network.to(self.device, memory_format=torch.channels_last)
        from timm.utils import ModelEmaV3

        self.ema = ModelEmaV3(self.model, decay=train_config.ema_decay)
        self.optimizer = _make_optimizer(self.model, train_config)
        _freeze_backbone(self.model, train_config)
        self.cycle = 0
        self.iterations_done = 0
        self.probe: LinearProbe | None = None
        self.probe_embedder: FrozenEmbedder | None = None  # what the probe was fitted on (None: EMA model)
        self._sampling = torch.Generator().manual_seed(train_config.seed)
        self._augmenting = torch.Generator(device=self.device).manual_seed(train_config.seed + 1)
        self._scaler = torch.amp.GradScaler("cuda") if self._amp_dtype() == torch.float16 else None

    @property
    def scoring_model(self) -> AnomalyScorer:
        """What scores the collection: the EMA model (and the probe fitted on it), in eval mode."""
        return AnomalyScorer(self.ema.module, self.probe, self.config.head, self.probe_embedder).eval()

    def set_config(self, train_config: TrainConfig, probe_config: ProbeConfig | None = None) -> None:
        """Use new settings (learning rate, threshold ...) from the next iteration on, and new
        probe settings (None: the current ones) from the next fit of the probe."""
        self.config = train_config
        self.probe_config = probe_config or self.probe_config
        self.ema.decay = train_config.ema_decay
        heads = _head_ids(self.model)
        for group in self.optimizer.param_groups:
            is_head = id(group["params"][0]) in heads
            group["lr_scale"] = train_config.head_rate_scale() if is_head else train_config.backbone_rate_scale()
            group["lr"] = train_config.learning_rate * group["lr_scale"]
            group["momentum"] = train_config.momentum
        _freeze_backbone(self.model, train_config)

    def run(self, data: TrainingData, iterations: int | None = None) -> Iterator[TrainProgress]:
        """Train one cycle, yielding progress after each iteration."""
        iterations = iterations or self.config.iterations
        self.cycle += 1
        labelled, labels, unlabelled = self._to_device(data)
        weights = _balancing_weights(labels)
        order = _Cycler(len(unlabelled), self._sampling)
        batch_size = self.config.batch_size
        n_unlabelled = self.config.unlabelled_ratio * batch_size if len(unlabelled) else 0
        if isinstance(self.model, ProbedNetwork):
            self._fit_head(self.model, labelled, labels, unlabelled, draw=3)
        self.model.train()
        done_before = self.iterations_done
        try:
            for iteration in range(1, iterations + 1):
                started = time.perf_counter()
                picked = torch.multinomial(weights, batch_size, replacement=True, generator=self._sampling)
                unlabelled_batch = unlabelled[order.take(n_unlabelled)] if n_unlabelled else unlabelled[:0]
                batch = self._augment(labelled[picked], labels[picked], unlabelled_batch)
                result = self._step(batch)
                self.iterations_done += 1
                yield TrainProgress(
                    cycle=self.cycle, iteration=iteration, iterations=iterations,
                    loss=float(result.loss.detach()), sup_loss=result.sup_loss,
                    unsup_loss=result.unsup_loss, mask_ratio=result.mask_ratio,
                    pseudo_anomaly_ratio=result.pseudo_anomaly_ratio,
                    seconds_per_iteration=time.perf_counter() - started,
                )
        finally:  # also when the caller stops early: the model it keeps is complete
            if (self.iterations_done > done_before and isinstance(self.model, ProbedNetwork)
                    and self.config.backbone_rate_scale() > 0):  # a frozen backbone: FixMatch taught the head
                self._fit_head(self.ema.module, labelled, labels, unlabelled, draw=5)
            if self.iterations_done > done_before and get_head(self.config.head).fits_probe:
                self.refit_probe(labelled, labels, unlabelled)

    def _fit_head(self, network: ProbedNetwork, images: torch.Tensor, labels: torch.Tensor,
                  unlabelled: torch.Tensor, draw: int) -> None:
        """Linear probing: the head of the network and of its EMA becomes the probe fitted on
        ``network``'s current features of the labelled images.

        Before fine-tuning it reads the training network, so FixMatch starts from the probe's
        optimum. After fine-tuning a backbone that learns (``backbone_lr_scale`` > 0) it reads the
        EMA network that scores, so the score is the best linear read-out of the features FixMatch
        trained (the head FixMatch moved along with them fits the labels less well); with a frozen
        backbone the head FixMatch trained is the score."""
        probe = self.probe_config
        drawing = torch.Generator().manual_seed(self.config.seed + 1000 * self.cycle + draw)
        head = fit_head(network, images, labels, unlabelled, self.device, probe.regularisation,
                        probe.views, CENTRE_SAMPLE, drawing, centre=probe.centre)
        self.model.set_head(head)
        self.ema.module.set_head(head)

    def refit_probe(self, images: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor) -> None:
        """Fit the linear probe on the labelled images' embeddings, centred on the unlabelled
        images' mean embedding (see ``ProbeConfig.features``, ``centre`` and ``morphology``)."""
        probe = self.probe_config
        self.probe_embedder = self._frozen_embedder(probe.features, probe.size, probe.layers,
                                                    probe.uses_morphology(self.in_chans))
        embedder = self.probe_embedder if self.probe_embedder is not None else self.ema.module
        extra_dims = self.probe_embedder.extra_dims if self.probe_embedder is not None else 0
        statistics = None
        if probe.centre or extra_dims:
            drawing = torch.Generator().manual_seed(self.config.seed + 1000 * self.cycle + 2)
            pool = unlabelled if len(unlabelled) else images  # extra statistics always need a scale
            statistics = collection_statistics(embedder, pool, self.device, CENTRE_SAMPLE, drawing,
                                               extra_dims, centre=probe.centre)
        self.probe = fit_probe(embedder, images, labels, self.device, probe.regularisation,
                               probe.views, statistics)

    def pretrained_network_embedder(self) -> FrozenEmbedder | None:
        """A frozen embedder giving exactly the features the scoring ``lpft`` network's head reads,
        while that network's backbone is still the pretrained one (checked weight by weight), so a
        caller holding those features can score the head alone; None otherwise."""
        network = self.ema.module
        if not isinstance(network, ProbedNetwork):
            return None
        start = self._starting_model.state_dict()
        if any(not torch.equal(value, start[name]) for name, value in network.network.state_dict().items()):
            return None
        return FrozenEmbedder(self._starting_model, 0, "pyramid", network.morphology)

    def _frozen_embedder(self, features: str, size: int, layers: str,
                         morphology: bool = False) -> FrozenEmbedder | None:
        if features != "pretrained":
            return None
        return FrozenEmbedder(self._starting_model, size, layers, morphology)

    @contextlib.contextmanager
    def _own_rng(self, seed: int | None = None) -> Iterator[None]:
        """Run the block on the trainer's RNG state (from ``seed`` the first time), leaving the
        global one as it was."""
        cuda = (self.device.index or 0) if self.device.type == "cuda" else None
        with torch.random.fork_rng(devices=[] if cuda is None else [cuda]):
            if seed is not None:
                torch.manual_seed(seed)
            else:
                torch.set_rng_state(self._rng_state["cpu"])
                if cuda is not None:
                    torch.cuda.set_rng_state(self._rng_state["cuda"], cuda)
            yield
            self._rng_state = {"cpu": torch.get_rng_state()}
            if cuda is not None:
                self._rng_state["cuda"] = torch.cuda.get_rng_state(cuda)

    def _step(self, batch: FixMatchBatch):
        with self._own_rng():
            return self._fixmatch_update(batch)

    def _fixmatch_update(self, batch: FixMatchBatch):
        with self._autocast():
            result = fixmatch_step(self.model, batch, self.config)
        self.optimizer.zero_grad(set_to_none=True)
        if self._scaler is not None:
            self._scaler.scale(result.loss).backward()
            self._scaler.step(self.optimizer)
            self._scaler.update()
        else:
            result.loss.backward()
            self.optimizer.step()
        self.ema.update(self.model)
        return result

    def _augment(self, labelled: torch.Tensor, labels: torch.Tensor,
                 unlabelled: torch.Tensor) -> FixMatchBatch:
        def prepare(x: torch.Tensor) -> torch.Tensor:
            return x.to(self.device, non_blocking=True).float().contiguous(
                memory_format=torch.channels_last)

        gen = self._augmenting
        cfg = self.config
        labelled = prepare(weak_augment(prepare(labelled), gen))
        if len(unlabelled) == 0:
            empty = prepare(unlabelled)
            return FixMatchBatch(labelled, labels.to(self.device), empty, empty)
        weak = prepare(weak_augment(prepare(unlabelled), gen))
        strong = prepare(strong_augment(prepare(unlabelled), gen, cfg.strong_ops, cfg.strong_magnitude))
        return FixMatchBatch(labelled, labels.to(self.device), weak, strong)

    def _to_device(self, data: TrainingData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.device.type == "cpu":
            return data.labelled, data.labels.long(), data.unlabelled
        return (data.labelled.to(self.device), data.labels.long(), data.unlabelled.to(self.device))

    def _amp_dtype(self) -> torch.dtype | None:
        if self.device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self):
        dtype = self._amp_dtype()
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=dtype)

    # -- persistence -------------------------------------------------------------------

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Model, EMA and optimiser tensors under prefixed keys (for safetensors)."""
        state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        state.update({f"ema.{k}": v for k, v in self.ema.module.state_dict().items()})
        for index, param in enumerate(self._all_params()):
            buffer = self.optimizer.state.get(param, {}).get("momentum_buffer")
            if buffer is not None:
                state[f"optimizer.momentum.{index}"] = buffer
        if self.probe is not None:
            state["probe.weight"] = self.probe.weight
            state["probe.bias"] = self.probe.bias
            state["probe.centre"] = self.probe.centre
            state["probe.extra_scale"] = self.probe.extra_scale
            state["probe.extra_limit"] = self.probe.extra_limit
            frozen = self.probe_embedder
            state["probe.frozen_size"] = torch.tensor(frozen.input_size if frozen is not None else -1)
            if frozen is not None:
                state["probe.frozen_layers"] = torch.tensor(FROZEN_LAYER_CODES[frozen.layers])
                state["probe.frozen_morphology"] = torch.tensor(int(frozen.morphology))
        return state

    def _match_network(self, model_state: dict[str, torch.Tensor]) -> None:
        """Refuse a checkpoint of another kind of network (with what to do), and take a probe-initialised
        network's morphology from the checkpoint, as the probe's is."""
        saved_lpft = "head.weight" in model_state
        plain = self.model.network if isinstance(self.model, ProbedNetwork) else self.model
        if not saved_lpft and not any(name in model_state for name in plain.state_dict()):
            return  # a network of neither kind: loading it says what does not fit
        if saved_lpft != isinstance(self.model, ProbedNetwork):
            saved = " or ".join(repr(h) for h in heads_training(LPFT if saved_lpft else CLASSIFIER))
            wanted = repr(self.config.head)
            raise CheckpointError(
                f"the checkpoint's network was trained with train.head = {saved}, but this session asks for "
                f"{wanted}; set train.head back in session.toml to continue it, or start a new session "
                "to train the other kind")
        if saved_lpft:
            morphology = model_state["head.extra_scale"].numel() > 0
            if morphology != self.model.morphology:
                self.model = ProbedNetwork(self.model.network, morphology).to(self.device)
                self.ema = type(self.ema)(self.model, decay=self.config.ema_decay)
                self.optimizer = _make_optimizer(self.model, self.config)
                _freeze_backbone(self.model, self.config)

    def _all_params(self) -> list[torch.nn.Parameter]:
        """The parameters in a fixed order (optimiser state is saved by this position)."""
        return list(self.model.parameters())

    def load_state_dict(self, state: dict[str, torch.Tensor], cycle: int, iterations_done: int) -> None:
        """Restore what ``state_dict`` returned (strictly: every tensor must fit)."""
        model_state = {k[6:]: v for k, v in state.items() if k.startswith("model.")}
        ema_state = {k[4:]: v for k, v in state.items() if k.startswith("ema.")}
        self._match_network(model_state)
        self.model.load_state_dict(model_state, strict=True)
        self.ema.module.load_state_dict(ema_state, strict=True)
        for index, param in enumerate(self._all_params()):
            key = f"optimizer.momentum.{index}"
            if key in state:
                self.optimizer.state[param]["momentum_buffer"] = state[key].to(param.device).clone()
        probe = LinearProbe.from_state(state)
        self.probe = probe.to(self.device) if probe is not None else None
        # Checkpoints from before the frozen embedder have no size: their probe read the EMA model;
        # those from before the pyramid have no layers: their probe read the head's features.
        frozen_size = int(state["probe.frozen_size"]) if "probe.frozen_size" in state else -1
        layers = frozen_layers_from_state(state)
        morphology = bool(int(state["probe.frozen_morphology"])) if "probe.frozen_morphology" in state else False
        self.probe_embedder = (self._frozen_embedder("pretrained", frozen_size, layers, morphology)
                               if self.probe is not None and frozen_size >= 0 else None)
        self.cycle = cycle
        self.iterations_done = iterations_done
        self._sampling.manual_seed(self.config.seed + 1000 * cycle)
        self._augmenting.manual_seed(self.config.seed + 1000 * cycle + 1)


class _Cycler:
    """Indices of a pool in a fresh random order each pass, taken ``k`` at a time."""

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size = size
        self.generator = generator
        self.order = torch.randperm(size, generator=generator) if size else torch.zeros(0, dtype=torch.long)
        self.position = 0

    def take(self, k: int) -> torch.Tensor:
        taken = []
        while k > 0:
            if self.position >= self.size:
                self.order = torch.randperm(self.size, generator=self.generator)
                self.position = 0
            chunk = self.order[self.position:self.position + k]
            self.position += len(chunk)
            k -= len(chunk)
            taken.append(chunk)
        return torch.cat(taken)


def _balancing_weights(labels: torch.Tensor) -> torch.Tensor:
    """Sampling weights that draw anomalies and normal images equally often."""
    counts = torch.bincount(labels, minlength=2).float()
    present = counts > 0
    per_class = torch.where(present, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
    return per_class[labels]


def _head_ids(model: AnomalyClassifier | ProbedNetwork) -> set[int]:
    head = model.head_parameters() if isinstance(model, ProbedNetwork) else model.backbone.get_classifier().parameters()
    return {id(p) for p in head}


def _freeze_backbone(model: AnomalyClassifier | ProbedNetwork, config: TrainConfig) -> None:
    """A backbone that does not learn (rate 0) needs no gradients: training then costs the
    backbone's forward pass only."""
    learns = config.backbone_rate_scale() > 0
    head_ids = _head_ids(model)
    for param in model.parameters():
        if id(param) not in head_ids:
            param.requires_grad_(learns)


def _make_optimizer(model: AnomalyClassifier | ProbedNetwork, config: TrainConfig) -> torch.optim.SGD:
    """SGD with Nesterov momentum; no weight decay on biases and normalisation weights; the head's
    and the backbone's learning rates scaled by ``TrainConfig.head_rate_scale`` and
    ``backbone_rate_scale``."""
    head_ids = _head_ids(model)
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for param in model.parameters():
        groups.setdefault((id(param) in head_ids, param.ndim <= 1), []).append(param)
    param_groups = []
    for (is_head, no_decay), params in sorted(groups.items()):
        scale = config.head_rate_scale() if is_head else config.backbone_rate_scale()
        param_groups.append({"params": params, "weight_decay": 0.0 if no_decay else config.weight_decay,
                             "lr": config.learning_rate * scale, "lr_scale": scale})
    return torch.optim.SGD(param_groups, lr=config.learning_rate, momentum=config.momentum, nesterov=True)
