"""The sections of a session's settings (``[data]``, ``[model]``, ``[train]``, ``[probe]``,
``[score]``, ``[sky]``): frozen dataclasses, each checking its own fields in ``__post_init__``, so
the rest of the engine trusts what it receives; and the named choices they take."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..heads import LPFT, get_head, head_names
from .checks import check_choice, check_int, check_range

NORMALISATIONS = ("auto", "none", "linear", "percentile", "log", "asinh", "zscale")
SOFTENINGS = ("fixed", "noise")
ON_ERROR = ("raise", "skip")
PRECISIONS = ("auto", "float32", "bfloat16", "bfloat16-mixed", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")
WEAK_PASSES = ("joint", "separate")
PROBE_FEATURES = ("pretrained", "fine-tuned")
PROBE_VIEWS = ("auto", "dihedral", "flip", "none")
AUTO = "auto"  # a setting the engine chooses from the data
PROBE_LAYERS = ("pyramid", "head")
PROBE_MORPHOLOGY = ("auto", "on", "off")
FILTERS = ("unlabelled", "labelled", "all")  # which images a ranking lists
SALIENCY_METHODS = ("gradient", "grad-cam", "occlusion")  # see core.scoring.saliency
ORACLE_ORDER = "score"  # the paper's protocol: the oracle labels the most anomalous images first
ORACLE_TEST_FRACTION = 0.2  # of the unlabelled images, kept from the oracle to measure every cycle alike
# How a first ranking without labels scores novelty (core.scoring.novelty); knn's AUROC is the
# higher on three of FIRST's four classes and four of CIFAR-10's five (benchmarks/results/zero_label.json)
NOVELTY_METHODS = {  # name: what it measures (the command line's help)
    "knn": "mean cosine distance to the nearest images",
    "isolation-forest": "scikit-learn's isolation forest, Astronomaly's baseline",
}
DEFAULT_NOVELTY_METHOD = "knn"


def check_novelty_method(method: str) -> str:
    """``method`` when it is one of ``NOVELTY_METHODS``; else a ``ConfigError`` naming them."""
    if method not in NOVELTY_METHODS:
        raise ConfigError(f"the unsupervised method must be one of {tuple(NOVELTY_METHODS)}; got {method!r}")
    return method
COMPILE_MODES = ("auto", "none", "fused", "torchscript", "inductor")
SKY_VIEWER_NAMES = ("legacy-survey", "esasky", "aladin")  # core.review.sky.SKY_VIEWERS has their URLs


@dataclass(frozen=True)
class NormalisationConfig:
    """How raw pixel values become the [0, 1] range the model and display see.

    ``method``: ``auto`` (fixed range for 8/16-bit images, else ``asinh``),
    ``none`` (values used as they are, clipped to [0, 1]), ``linear`` (min-max),
    ``percentile`` (linear between two percentiles), ``log``, ``asinh``
    (both between the percentiles) or ``zscale`` (IRAF's zscale limits).
    ``crop``: the central fraction of each side kept before anything else (1.0: the whole
    image), for cutouts whose sources fill only their middle; ``auto`` (the default): chosen
    from the images when the session is created (``core.io.autocrop``), so a user need not know
    where a survey's sources lie.
    ``asinh_softening``: ``fixed`` uses ``asinh_a``; ``noise`` sets each
    image's softening from its background noise (faint sources stand out).
    """

    method: str = "auto"
    low_percentile: float = 0.5
    high_percentile: float = 99.5
    asinh_a: float = 0.1
    asinh_softening: str = "fixed"
    log_a: float = 1000.0
    crop: float | str = AUTO

    def __post_init__(self) -> None:
        owner = "normalisation"
        check_choice(owner, "method", self.method, NORMALISATIONS)
        check_range(owner, "low_percentile", self.low_percentile, 0.0, 100.0)
        check_range(owner, "high_percentile", self.high_percentile, 0.0, 100.0)
        if self.low_percentile >= self.high_percentile:
            raise ConfigError(
                f"normalisation.low_percentile ({self.low_percentile}) must be below "
                f"high_percentile ({self.high_percentile})"
            )
        check_range(owner, "asinh_a", self.asinh_a, 0.0, 1.0, low_open=True)
        check_choice(owner, "asinh_softening", self.asinh_softening, SOFTENINGS)
        check_range(owner, "log_a", self.log_a, 0.0, 1e9, low_open=True)
        if self.crop != AUTO:
            if isinstance(self.crop, bool) or not isinstance(self.crop, (int, float)):
                raise ConfigError(f"normalisation.crop must be 'auto' or a fraction in (0, 1]; got {self.crop!r}")
            check_range(owner, "crop", self.crop, 0.0, 1.0, low_open=True)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how bad images are treated.

    ``options`` are passed to the reader (``hdu``, ``dataset``, ``array`` ...).
    ``on_error``: ``raise`` stops at the first unreadable image with an error
    naming it; ``skip`` warns, leaves the image out of training and gives it no
    score.
    """

    source: str = ""
    reader: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)
    on_error: str = "raise"
    normalisation: NormalisationConfig = field(default_factory=NormalisationConfig)

    def __post_init__(self) -> None:
        check_choice("data", "on_error", self.on_error, ON_ERROR)
        if not isinstance(self.options, dict):
            raise ConfigError(f"data.options must be a table of reader options; got {self.options!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The network: any timm model name, its input size and weights."""

    name: str = "tf_efficientnet_lite0"
    pretrained: bool = True
    image_size: int = 64
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"model.name must be a timm model name; got {self.name!r}")
        check_int("model", "image_size", self.image_size, 16)
        check_choice("model", "device", self.device, DEVICES)


@dataclass(frozen=True)
class TrainConfig:
    """FixMatch training settings; the defaults are the AnomalyMatch paper's, but for the score.

    ``head`` chooses the score: ``lpft`` (the default: the FixMatch network whose head starts
    each cycle as the probe and then learns from the labelled and unlabelled images, see
    ``core.learning.lpft``), ``lpft+probe`` (the mean of its log-odds and the probe's), ``probe`` (the
    linear probe alone, the baseline), ``classifier`` (the fine-tuned FixMatch classifier, the
    paper's score) or ``ensemble`` (the mean of classifier and probe log-odds); see
    ``docs/benchmarks.md`` for how they compare. What the probe reads and how it is fitted is
    ``ProbeConfig``, a section of its own.
    """

    iterations: int = 100
    batch_size: int = 16
    unlabelled_ratio: int = 5
    confidence_threshold: float = 0.95
    temperature: float = 0.5
    lambda_u: float = 1.0
    ema_decay: float = 0.99
    learning_rate: float = 0.0075
    backbone_lr_scale: float | None = None
    head_lr_scale: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    unlabelled_pool_size: int = 10_000
    strong_ops: int = 2
    strong_magnitude: int = 10
    weak_pass: str = "separate"
    head: str = LPFT
    seed: int = 0

    def backbone_rate_scale(self) -> float:
        """``backbone_lr_scale``, or when not given: 0 for the ``lpft`` heads (their backbone stays
        the pretrained one: fine-tuning it on a few dozen labels lowered the ranking in every
        variant measured, see ``docs/benchmarks.md``), 1.0 for the classifier (the paper's single
        learning rate). At 0 the backbone is frozen and training skips its gradients."""
        if self.backbone_lr_scale is not None:
            return self.backbone_lr_scale
        return 0.0 if self.trains_lpft else 1.0

    def head_rate_scale(self) -> float:
        """``head_lr_scale``, or when not given: 30 for the ``lpft`` heads, 1.0 for the classifier.

        The lpft head reads unit-length inputs (``probe.probe_input``), so at the paper's rate
        one step moves its log-odds by at most 0.0075 per unit of error and a cycle would leave
        it where linear probing put it; the classifier's head reads pooled features some tens
        long."""
        if self.head_lr_scale is not None:
            return self.head_lr_scale
        return 30.0 if self.trains_lpft else 1.0

    @property
    def trains_lpft(self) -> bool:
        """Whether FixMatch trains the probe-initialised network (else the classifier)."""
        return get_head(self.head).trains_lpft

    def __post_init__(self) -> None:
        owner = "train"
        check_int(owner, "iterations", self.iterations, 1)
        check_int(owner, "batch_size", self.batch_size, 2)
        check_int(owner, "unlabelled_ratio", self.unlabelled_ratio, 0)
        check_range(owner, "confidence_threshold", self.confidence_threshold, 0.5, 1.0)
        check_range(owner, "temperature", self.temperature, 0.0, 10.0, low_open=True)
        check_range(owner, "lambda_u", self.lambda_u, 0.0, 100.0)
        check_range(owner, "ema_decay", self.ema_decay, 0.0, 1.0, high_open=True)
        check_range(owner, "learning_rate", self.learning_rate, 0.0, 10.0, low_open=True)
        if self.backbone_lr_scale is not None:
            check_range(owner, "backbone_lr_scale", self.backbone_lr_scale, 0.0, 10.0)
        if self.head_lr_scale is not None:
            check_range(owner, "head_lr_scale", self.head_lr_scale, 0.0, 1000.0, low_open=True)
        check_range(owner, "momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_range(owner, "weight_decay", self.weight_decay, 0.0, 1.0)
        check_int(owner, "unlabelled_pool_size", self.unlabelled_pool_size, 0)
        check_int(owner, "strong_ops", self.strong_ops, 0)
        check_range(owner, "strong_magnitude", self.strong_magnitude, 0, 30)
        check_choice(owner, "weak_pass", self.weak_pass, WEAK_PASSES)
        check_choice(owner, "head", self.head, head_names())
        check_int(owner, "seed", self.seed, 0)


@dataclass(frozen=True)
class ProbeConfig:
    """The linear probe: what it reads and how it is fitted (see ``core.learning.probe``).

    The probe is fitted after each cycle, and the ``lpft`` heads start each cycle as it, on the
    embeddings given by ``features``: ``pretrained``, a frozen copy of the starting network
    (ImageNet weights), seeing the images at ``size`` pixels (0: the model's input size), or
    ``fine-tuned``, the EMA model's own embedding.
    ``layers`` (pretrained features only): ``pyramid`` (the default) joins the pooled features of
    the network's last three stages before its head to the head's, each normalised, so the probe
    also reads textures and shapes at finer scales; ``head``: the head's alone.
    ``regularisation`` is scikit-learn's C (inverse L2 strength) of the probe.
    ``views``: the views of each labelled image the probe is fitted on: ``dihedral``, all eight
    flips and quarter turns (the sky has no up), ``flip``, the image and its mirror (natural
    images, which have an up), ``none``, the image alone, or ``auto`` (the default): dihedral for
    single-band images, flip for colour ones.
    ``centre``: subtract the mean embedding of (up to 2,048 of) the unlabelled images before the
    probe normalises an embedding (the default).
    ``morphology`` (pretrained features only): ``on`` adds eleven morphology statistics of each
    image (light radii, Gini, M20, asymmetries, elongation, size, offsets; see
    ``core.learning.morphology``) to what the probe reads, standardised on the unlabelled images;
    ``auto`` (the default) turns them on for single-band images, the usual astronomical cutout;
    a new session (and ``evaluate``) decides for colour images from the images themselves: on
    for a central source on a dark sky (a colour survey cutout), off for photographs (see
    ``core.io.autocrop``); ``off`` never.

    Its flat setting names (``SessionConfig.with_settings``, the CLI's options) are the fields
    with a ``probe_`` prefix: ``probe_views``, ``--probe-views``.
    """

    regularisation: float = 3.0
    features: str = "pretrained"
    size: int = 0
    layers: str = "pyramid"
    views: str = AUTO
    centre: bool = True
    morphology: str = "auto"

    def uses_morphology(self, in_chans: int) -> bool:
        """Whether the probe reads morphology statistics of images with ``in_chans`` channels."""
        if self.features != "pretrained":
            return False
        return self.morphology == "on" or (self.morphology == "auto" and in_chans == 1)

    def __post_init__(self) -> None:
        owner = "probe"
        check_range(owner, "regularisation", self.regularisation, 0.0, 1e6, low_open=True)
        check_choice(owner, "features", self.features, PROBE_FEATURES)
        check_choice(owner, "views", self.views, PROBE_VIEWS)
        check_choice(owner, "layers", self.layers, PROBE_LAYERS)
        check_choice(owner, "morphology", self.morphology, PROBE_MORPHOLOGY)
        if not isinstance(self.centre, bool):
            raise ConfigError(f"probe.centre must be true or false; got {self.centre!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or (self.size != 0 and self.size < 16):
            raise ConfigError(f"probe.size must be 0 (the model's input size) or an integer >= 16; "
                              f"got {self.size!r}")


@dataclass(frozen=True)
class ScoreConfig:
    """How a collection is streamed through the model.

    Scores are written to disk ``part_size`` images at a time (the unit of
    resuming); the parts of a sharded collection never straddle two shards.
    ``precision`` and ``compile`` both ``auto``: the fastest path measured on
    the run's images whose ranking agrees with float32 (see ``core.scoring.pathchoice``);
    ``precision="bfloat16-mixed"``: bf16 after the network's first stages, which stay float32
    (see ``scoring.mixed``);
    ``compile``: ``none`` (eager), ``fused`` (eager with the batch norms folded
    into the convolutions), ``inductor`` (``torch.compile``) or ``torchscript``
    (deprecated with torch's TorchScript).
    """

    batch_size: int = 256
    num_workers: int = -1
    top_k: int = 1000
    precision: str = "auto"
    tta: bool = False
    part_size: int = 16_384
    compile: str = "auto"

    def __post_init__(self) -> None:
        check_int("score", "batch_size", self.batch_size, 1)
        if not isinstance(self.num_workers, int) or self.num_workers < -1:
            raise ConfigError(
                f"score.num_workers must be -1 (automatic) or >= 0; got {self.num_workers!r}"
            )
        check_int("score", "top_k", self.top_k, 0)
        check_choice("score", "precision", self.precision, PRECISIONS)
        check_int("score", "part_size", self.part_size, 1)
        check_choice("score", "compile", self.compile, COMPILE_MODES)


@dataclass(frozen=True)
class SkyConfig:
    """Where a candidate is looked at on the sky (``core.review.sky``, ``core.review.samp``).

    ``viewer``: the web sky viewer a candidate opens in (the Legacy Surveys viewer, ESASky or
    Aladin Lite); ``samp_top``: how many of the best candidates go to TOPCAT or Aladin over SAMP.
    Their flat setting names are ``sky_viewer`` and ``samp_top``.
    """

    viewer: str = SKY_VIEWER_NAMES[0]
    samp_top: int = 1000

    def __post_init__(self) -> None:
        check_choice("sky", "viewer", self.viewer, SKY_VIEWER_NAMES)
        check_int("sky", "samp_top", self.samp_top, 1)


def resolve_source(source: str | Path) -> str:
    """``source`` as a session stores it: ``~`` expanded and absolute, a glob's folders included,
    so that the session opens from any working folder.

    Raises
    ------
    ConfigError
        For an empty source.
    """
    text = str(source)
    if not text.strip():
        raise ConfigError("no data source given; choose a folder, a file or a glob pattern of images")
    return os.path.abspath(os.path.expanduser(text))
