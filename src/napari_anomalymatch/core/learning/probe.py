"""A linear probe on an embedding, and the scorer that combines it with the classifier.

After each training cycle a logistic regression is fitted on the L2-normalised penultimate
features of the labelled images (each seen in its eight flips/quarter turns). With a handful of
labels it generalises better than the fine-tuned classifier head alone, which memorises the few
labelled anomalies.

By default the features come from a ``FrozenEmbedder``: a frozen copy of the starting (ImageNet)
network, optionally looking at the images enlarged to ``probe_size``. Fine-tuning on a few
labelled anomalies degrades the pretrained features (see ``benchmarks/results/ablation.md``), so
the probe on the frozen features is the default score; the ``ensemble`` head adds the fine-tuned
classifier at the cost of a second forward pass per image. On single-band images the frozen
embedder also appends morphology statistics (``core.learning.morphology``), which ``probe_input`` weighs
beside the network's features. ``AnomalyScorer`` returns two-class
logits like the classifier, so every scoring path (local, workers, Dask) uses it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import PROBE_LAYERS
from ..errors import CheckpointError, ConfigError
from ..heads import CLASSIFIER, LPFT, PROBE, get_head, head_log_odds
from .augment import dihedral
from .morphology import MORPHOLOGY_STATISTICS, morphology_statistics


class LinearProbe(nn.Module):
    """``w . probe_input(embedding) + b``: the logit of "anomaly" (see ``probe_input``).

    ``centre`` is the collection's typical embedding (zeros: none): the mean of the network's
    features, the median of any statistics that follow them. Subtracting it before
    normalising makes the probe read how an image differs from the typical one, not what
    every image of the collection shares. ``extra_scale`` (empty: none) scales the statistics
    that end an embedding when the embedder adds morphology statistics, and ``extra_limit``
    (None: no limit) bounds them once scaled. ``trainable``: the weight and bias are parameters
    (the head of ``lpft.ProbedNetwork``), not fixed buffers.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, centre: torch.Tensor | None = None,
                 extra_scale: torch.Tensor | None = None, extra_limit: torch.Tensor | float | None = None,
                 trainable: bool = False) -> None:
        super().__init__()
        weight, bias = weight.detach().float().reshape(-1), bias.detach().float().reshape(1)
        if trainable:
            self.weight, self.bias = nn.Parameter(weight.clone()), nn.Parameter(bias.clone())
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias)
        centre = torch.zeros_like(self.weight) if centre is None else centre.detach().float().reshape(-1)
        self.register_buffer("centre", centre.to(self.weight.device))
        extra_scale = torch.zeros(0) if extra_scale is None else extra_scale.detach().float().reshape(-1)
        self.register_buffer("extra_scale", extra_scale.to(self.weight.device))
        limit = torch.tensor(float("inf")) if extra_limit is None else torch.as_tensor(extra_limit)
        self.register_buffer("extra_limit", limit.detach().float().reshape(()).to(self.weight.device))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return probe_input(embedding, self.centre, self.extra_scale, self.extra_limit) @ self.weight + self.bias

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], prefix: str = "probe.") -> LinearProbe | None:
        """The probe saved under ``prefix`` in a checkpoint's tensors (None if there is none;
        checkpoints from before the centre have none, which is a zero centre, those from
        before morphology statistics no ``extra_scale``, and those from before their robust
        scaling no ``extra_limit``)."""
        if prefix + "weight" not in state:
            return None
        return cls(state[prefix + "weight"], state[prefix + "bias"], state.get(prefix + "centre"),
                   state.get(prefix + "extra_scale"), state.get(prefix + "extra_limit"))


def probe_input(embedding: torch.Tensor, centre: torch.Tensor, extra_scale: torch.Tensor,
                extra_limit: torch.Tensor | None = None) -> torch.Tensor:
    """What the probe reads: the embedding minus ``centre``, normalised.

    When the embedding ends with ``len(extra_scale)`` statistics (morphology), the network's
    part is normalised alone, the statistics are multiplied by ``extra_scale`` (one over their
    spread times the square root of their number, so that together they weigh about as much as
    the network's part) and bounded to +-``extra_limit`` (None: unbounded), and the two are
    joined and normalised again.
    """
    shifted = embedding.float() - centre
    extras = extra_scale.numel()
    if extras == 0:
        return F.normalize(shifted, dim=-1)
    network = F.normalize(shifted[..., :-extras], dim=-1)
    statistics = shifted[..., -extras:] * extra_scale
    if extra_limit is not None:  # an infinite limit leaves them as they are
        statistics = statistics.clamp(-extra_limit, extra_limit)
    return F.normalize(torch.cat([network, statistics], dim=-1), dim=-1)


# How a checkpoint records a frozen embedder's layers: fixed codes, not positions in PROBE_LAYERS,
# so reordering the choices never changes what a saved checkpoint means (absent: head).
FROZEN_LAYER_CODES = {"head": 0, "pyramid": 1}


def frozen_layers_from_state(state: dict[str, torch.Tensor]) -> str:
    """The layers a checkpoint's frozen embedder read (head when it does not say)."""
    code = int(state["probe.frozen_layers"]) if "probe.frozen_layers" in state else FROZEN_LAYER_CODES["head"]
    names = {number: name for name, number in FROZEN_LAYER_CODES.items()}
    if code not in names:
        raise CheckpointError(f"the checkpoint's probe reads frozen layers coded {code}, which this "
                              f"version does not know ({FROZEN_LAYER_CODES}); upgrade napari-anomalymatch")
    return names[code]


class FrozenEmbedder(nn.Module):
    """A frozen network's pooled features of images, enlarged to ``input_size`` first (0: as given).

    ``layers``: ``head``, the pooled features the classifier reads, or ``pyramid``, those joined
    to the pooled features of the stages before (see ``AnomalyClassifier.embed_pyramid``).
    ``morphology``: follow them with the images' morphology statistics (``core.learning.morphology``),
    measured on the images as given.
    """

    def __init__(self, model: nn.Module, input_size: int = 0, layers: str = "head",
                 morphology: bool = False) -> None:
        super().__init__()
        if layers not in PROBE_LAYERS:
            raise ConfigError(f"probe.layers must be one of {PROBE_LAYERS}; got {layers!r}")
        if layers == "pyramid" and not getattr(model, "has_pyramid", False):
            raise ConfigError("probe.layers = 'pyramid' needs an EfficientNet-style backbone "
                              "(conv_stem, blocks, conv_head); this model has none: use 'head'")
        self.model = model.eval()
        self.input_size = int(input_size)
        self.layers = layers
        self.morphology = bool(morphology)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @property
    def extra_dims(self) -> int:
        """How many statistics follow the network's features in an embedding."""
        return len(MORPHOLOGY_STATISTICS) if self.morphology else 0

    def train(self, mode: bool = True) -> FrozenEmbedder:
        """Always in eval mode: its batch-norm statistics are the pretrained ones."""
        return super().train(False)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        given = images
        if self.input_size:  # unconditional, so a traced graph has no shape test; same size: a copy
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False)
        features = self.model.embed_pyramid(images) if self.layers == "pyramid" else self.model.embed(images)
        if not self.morphology:
            return features
        return torch.cat([features.float(), morphology_statistics(given)], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)


class AnomalyScorer(nn.Module):
    """The EMA network plus (optionally) the probe; forward gives ``[0, z]`` logits.

    ``head``: ``lpft`` (the network is an ``lpft.ProbedNetwork``), ``classifier`` (the paper's
    fine-tuned classifier), ``probe`` (the linear probe alone), or an ensemble of the network and
    the probe (``heads.head_log_odds``): ``lpft+probe`` or ``ensemble`` (with the classifier).
    ``frozen``: the embedder the probe was fitted on (None: the network's own embedding).
    """

    def __init__(self, model: nn.Module, probe: LinearProbe | None, head: str = PROBE,
                 frozen: FrozenEmbedder | None = None) -> None:
        super().__init__()
        network = get_head(head).network
        self.model = model
        self.probe = probe
        self.head = head if probe is not None else network
        self.frozen = frozen if probe is not None else None

    @property
    def network_name(self) -> str:
        """The component the trained network gives: ``lpft`` or ``classifier``."""
        return getattr(self.model, "component_name", CLASSIFIER)

    def components(self, images: torch.Tensor, probe_features: torch.Tensor | None = None,
                   which: tuple[str, ...] = (LPFT, CLASSIFIER, PROBE)) -> dict[str, torch.Tensor]:
        """Anomaly log-odds of the network (``lpft`` or ``classifier``) and of the probe (when
        fitted), of those in ``which``.

        ``probe_features``: the probe's embeddings of ``images`` when already known (the
        frozen embedder's never change, so a caller scoring the same images each cycle keeps them).
        """
        out: dict[str, torch.Tensor] = {}
        name = self.network_name
        wants_probe = self.probe is not None and PROBE in which
        if wants_probe and probe_features is None:
            probe_features = self.probe_embedder().embed(images)
        if name in which and name == LPFT:
            out[name] = self.model.anomaly_logit(images).float()
        elif name in which:
            embedding = probe_features if self.frozen is None and probe_features is not None else None
            logits = self.model.backbone.get_classifier()(
                self.model.embed(images) if embedding is None else embedding).float()
            out[name] = logits[:, 1] - logits[:, 0]
        if wants_probe:
            out[PROBE] = self.probe(probe_features)
        return out

    def needed_components(self) -> tuple[str, ...]:
        """The components the head's score is made of."""
        return get_head(self.head).parts

    def probe_embedder(self) -> nn.Module:
        """What the probe's features come from: the frozen embedder, or else the model."""
        return self.frozen if self.frozen is not None else self.model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        head = get_head(self.head)
        if head.network_only:
            logits = self.model(images).float()
            z = logits[:, 1] - logits[:, 0]
        elif head.parts == (PROBE,):  # only the probe's network runs
            z = self.probe(self.probe_embedder().embed(images))
        else:
            z = head_log_odds(self.components(images), self.head)
        return torch.stack([torch.zeros_like(z), z], dim=1)


# The dihedral elements (see ``augment.dihedral``) a probe is fitted on, by ``ProbeConfig.views``.
PROBE_VIEW_ELEMENTS = {"dihedral": tuple(range(8)), "flip": (0, 4), "none": (0,)}


def probe_view_elements(views: str, channels: int) -> tuple[int, ...]:
    """The elements for ``views``; ``auto``: all eight for single-band images (the sky has no
    up), the image and its mirror for colour ones (photographs have one)."""
    if views == "auto":
        views = "dihedral" if channels == 1 else "flip"
    return PROBE_VIEW_ELEMENTS[views]


@torch.no_grad()
def embed_views(model: nn.Module, images: torch.Tensor, device: torch.device,
                batch_size: int = 256, views: Sequence[int] = PROBE_VIEW_ELEMENTS["dihedral"]
                ) -> torch.Tensor:
    """Embeddings of ``images`` in each of ``views``, elements of the eight flips/quarter turns
    (0 is the image as it is, 4 its mirror; see ``augment.dihedral``): ``(len(views) N, D)`` on
    the CPU, the views stacked in turn."""
    model.eval()
    out = []
    for k in views:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device).float()
            view = dihedral(batch, k).contiguous(memory_format=torch.channels_last)
            out.append(model.embed(view).float().cpu())
    return torch.cat(out)


def fit_probe(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
              regularisation: float = 1.0, views: str = "dihedral",
              statistics: CollectionStatistics | None = None) -> LinearProbe:
    """Fit a class-balanced logistic regression on the labelled images' embeddings.

    Parameters
    ----------
    model
        Anything with ``embed(images)``: a ``FrozenEmbedder`` or the scoring (EMA) model.
    images, labels
        Labelled images ``(N, C, S, S)`` in [0, 1] and their labels (0 normal, 1 anomaly).
    regularisation
        scikit-learn's ``C`` (inverse L2 strength).
    views
        Which views of each image it is fitted on: a key of ``PROBE_VIEW_ELEMENTS``, or ``auto``
        (see ``probe_view_elements``).
    statistics
        The collection's centre and extra scale (see ``collection_statistics``); None: no
        centring and no extra statistics.
    """
    from sklearn.linear_model import LogisticRegression

    elements = probe_view_elements(views, images.shape[1])
    embeddings = embed_views(model, images, device, views=elements)
    if statistics is None:
        statistics = CollectionStatistics(torch.zeros(embeddings.shape[1]), torch.zeros(0))
    centre, extra_scale = statistics.centre.float().cpu(), statistics.extra_scale.float().cpu()
    extra_limit = torch.tensor(statistics.extra_limit)
    features = probe_input(embeddings, centre, extra_scale, extra_limit).numpy()
    targets = np.tile(labels.cpu().numpy(), len(elements))  # embed_views stacks the views in turn
    classifier = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000)
    classifier.fit(features, targets)
    probe = LinearProbe(torch.from_numpy(classifier.coef_[0]), torch.tensor([classifier.intercept_[0]]),
                        centre, extra_scale, extra_limit)
    return probe.to(device)


# Extra statistics are bounded at this many robust standard deviations from their median, so
# that a few degenerate images (a blank cutout has no light to measure) cannot set their scale.
EXTRA_STATISTIC_LIMIT = 3.0


@dataclass(frozen=True)
class CollectionStatistics:
    """What the probe takes from the collection: its typical embedding (``centre``), the scale
    of the extra statistics that end each embedding (``extra_scale``, empty when none) and the
    bound on them once scaled (``extra_limit``; infinite: none)."""

    centre: torch.Tensor
    extra_scale: torch.Tensor
    extra_limit: float = float("inf")


def collection_statistics(model: nn.Module, images: torch.Tensor, device: torch.device, sample: int,
                          generator: torch.Generator, extra_dims: int = 0, centre: bool = True
                          ) -> CollectionStatistics | None:
    """The probe's ``CollectionStatistics`` from up to ``sample`` of ``images`` drawn at random
    (None if there are no images).

    The network's part is centred on its mean (with ``centre``; else it stays as it is).
    ``extra_dims``: how many statistics end each embedding; they are always centred on their
    median, scaled by their robust spread (the interquartile range over 1.349, which is the
    standard deviation of a normal distribution) and bounded at ``EXTRA_STATISTIC_LIMIT`` of
    them: a mean and standard deviation would let one blank cutout set a statistic's weight.
    """
    if len(images) == 0:
        return None
    picked = torch.randperm(len(images), generator=generator)[:sample]
    embeddings = embed_views(model, images[picked.to(images.device)], device, views=(0,))
    return statistics_of(embeddings, extra_dims, centre)


def statistics_of(embeddings: torch.Tensor, extra_dims: int = 0, centre: bool = True) -> CollectionStatistics:
    """The ``CollectionStatistics`` of embeddings ``(N, D)`` already computed (see
    ``collection_statistics``)."""
    typical = embeddings.mean(0)
    network_dims = embeddings.shape[1] - extra_dims
    if not centre:
        typical[:network_dims] = 0
    if not extra_dims:
        return CollectionStatistics(typical, torch.zeros(0))
    median, spread = _median_and_robust_spread(embeddings[:, network_dims:])
    typical[network_dims:] = median
    return CollectionStatistics(typical, 1.0 / (spread.clamp_min(1e-6) * extra_dims ** 0.5),
                                EXTRA_STATISTIC_LIMIT / extra_dims ** 0.5)


def _median_and_robust_spread(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each column's median and interquartile range over 1.349 (its standard deviation where
    that range is 0)."""
    quartiles = torch.quantile(values.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=0)
    spread = ((quartiles[2] - quartiles[0]) / 1.349).float()
    return quartiles[1].float(), torch.where(spread > 0, spread, values.std(0, unbiased=False))
