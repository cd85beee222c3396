"""Settings of a session, validated once and stored as TOML.

Each dataclass is frozen and checks its own fields in ``__post_init__``; the
rest of the engine trusts what it receives.  ``SessionConfig.to_toml`` and
``SessionConfig.from_toml`` round-trip every field.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from .atomic import atomic_write_bytes
from .errors import ConfigError
from .heads import LPFT, get_head, head_names
from .io.options import reader_option_names

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


def _check_range(owner: str, name: str, value: float, low: float, high: float,
                 low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{owner}.{name} must be a number; got {value!r} ({type(value).__name__})")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ConfigError(
            f"{owner}.{name} must lie in {left}{low}, {high}{right}; got {value!r}"
        )


def _check_choice(owner: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{name} must be one of {list(choices)}; got {value!r}")


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}.{name} must be an integer >= {minimum}; got {value!r}")


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
        _check_choice(owner, "method", self.method, NORMALISATIONS)
        _check_range(owner, "low_percentile", self.low_percentile, 0.0, 100.0)
        _check_range(owner, "high_percentile", self.high_percentile, 0.0, 100.0)
        if self.low_percentile >= self.high_percentile:
            raise ConfigError(
                f"normalisation.low_percentile ({self.low_percentile}) must be below "
                f"high_percentile ({self.high_percentile})"
            )
        _check_range(owner, "asinh_a", self.asinh_a, 0.0, 1.0, low_open=True)
        _check_choice(owner, "asinh_softening", self.asinh_softening, SOFTENINGS)
        _check_range(owner, "log_a", self.log_a, 0.0, 1e9, low_open=True)
        if self.crop != AUTO:
            if isinstance(self.crop, bool) or not isinstance(self.crop, (int, float)):
                raise ConfigError(f"normalisation.crop must be 'auto' or a fraction in (0, 1]; got {self.crop!r}")
            _check_range(owner, "crop", self.crop, 0.0, 1.0, low_open=True)


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
        _check_choice("data", "on_error", self.on_error, ON_ERROR)
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
        _check_int("model", "image_size", self.image_size, 16)
        _check_choice("model", "device", self.device, DEVICES)


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
        _check_int(owner, "iterations", self.iterations, 1)
        _check_int(owner, "batch_size", self.batch_size, 2)
        _check_int(owner, "unlabelled_ratio", self.unlabelled_ratio, 0)
        _check_range(owner, "confidence_threshold", self.confidence_threshold, 0.5, 1.0)
        _check_range(owner, "temperature", self.temperature, 0.0, 10.0, low_open=True)
        _check_range(owner, "lambda_u", self.lambda_u, 0.0, 100.0)
        _check_range(owner, "ema_decay", self.ema_decay, 0.0, 1.0, high_open=True)
        _check_range(owner, "learning_rate", self.learning_rate, 0.0, 10.0, low_open=True)
        if self.backbone_lr_scale is not None:
            _check_range(owner, "backbone_lr_scale", self.backbone_lr_scale, 0.0, 10.0)
        if self.head_lr_scale is not None:
            _check_range(owner, "head_lr_scale", self.head_lr_scale, 0.0, 1000.0, low_open=True)
        _check_range(owner, "momentum", self.momentum, 0.0, 1.0, high_open=True)
        _check_range(owner, "weight_decay", self.weight_decay, 0.0, 1.0)
        _check_int(owner, "unlabelled_pool_size", self.unlabelled_pool_size, 0)
        _check_int(owner, "strong_ops", self.strong_ops, 0)
        _check_range(owner, "strong_magnitude", self.strong_magnitude, 0, 30)
        _check_choice(owner, "weak_pass", self.weak_pass, WEAK_PASSES)
        _check_choice(owner, "head", self.head, head_names())
        _check_int(owner, "seed", self.seed, 0)


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
        _check_range(owner, "regularisation", self.regularisation, 0.0, 1e6, low_open=True)
        _check_choice(owner, "features", self.features, PROBE_FEATURES)
        _check_choice(owner, "views", self.views, PROBE_VIEWS)
        _check_choice(owner, "layers", self.layers, PROBE_LAYERS)
        _check_choice(owner, "morphology", self.morphology, PROBE_MORPHOLOGY)
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
        _check_int("score", "batch_size", self.batch_size, 1)
        if not isinstance(self.num_workers, int) or self.num_workers < -1:
            raise ConfigError(
                f"score.num_workers must be -1 (automatic) or >= 0; got {self.num_workers!r}"
            )
        _check_int("score", "top_k", self.top_k, 0)
        _check_choice("score", "precision", self.precision, PRECISIONS)
        _check_int("score", "part_size", self.part_size, 1)
        _check_choice("score", "compile", self.compile, COMPILE_MODES)


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
        _check_choice("sky", "viewer", self.viewer, SKY_VIEWER_NAMES)
        _check_int("sky", "samp_top", self.samp_top, 1)


@dataclass(frozen=True)
class SessionConfig:
    """Everything a session needs to be re-opened and continued."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    sky: SkyConfig = field(default_factory=SkyConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SessionConfig:
        """Build a config from nested dictionaries, rejecting unknown keys.

        The layout before the ``probe`` section, ``probe_*`` keys in ``train``, is read too (see
        ``_move_old_probe_keys``).
        """
        sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
                    "probe": ProbeConfig, "score": ScoreConfig, "sky": SkyConfig}
        _reject_unknown("session", values, sections)
        values = _move_old_probe_keys(values)
        built = {}
        for name, kind in sections.items():
            section = _table(name, values.get(name, {}))
            if kind is DataConfig and "normalisation" in section:
                norm = _table("data.normalisation", section["normalisation"])
                _reject_unknown("data.normalisation", norm, _field_names(NormalisationConfig))
                _check_types("data.normalisation", norm, NormalisationConfig)
                section["normalisation"] = NormalisationConfig(**norm)
            _reject_unknown(name, section, _field_names(kind))
            _check_types(name, section, kind)
            built[name] = kind(**section)
        return cls(**built)

    def to_toml(self, path: str | Path) -> None:
        """Write the config to ``path`` atomically."""
        import tomli_w

        atomic_write_bytes(Path(path), tomli_w.dumps(_drop_none(self.to_dict())).encode())

    @classmethod
    def from_toml(cls, path: str | Path) -> SessionConfig:
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text())
        except FileNotFoundError as err:
            raise ConfigError(f"{path}: no such config file") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from err
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not valid UTF-8 TOML ({err}); fix the file or create the session "
                              "again with 'anomalymatch init'") from err
        try:
            return cls.from_dict(values)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err

    def replace(self, **sections: Any) -> SessionConfig:
        """Return a copy with some sections replaced, e.g. ``train=TrainConfig(...)``."""
        return dataclasses.replace(self, **sections)

    def with_settings(self, **settings: Any) -> SessionConfig:
        """A copy with settings changed by their flat names, e.g. ``iterations=50, image_size=64``.

        The names are those of ``setting_names()``: every model, training and scoring field, the
        probe's fields prefixed ``probe_`` (``probe_views``), the data settings, and the short names
        of the CLI's options and the Train panel's fields.

        Raises
        ------
        ConfigError
            For a name that is no setting (naming the close ones), or a value its section refuses.
        """
        paths = _setting_paths()
        _reject_unknown_settings(settings, paths)
        if not settings:
            return self
        values = self.to_dict()
        for name, value in settings.items():
            *tables, key = paths[name]
            table = values
            for part in tables:
                table = table[part]
            table[key] = value
        return SessionConfig.from_dict(values)

    def settings(self, *names: str) -> dict[str, Any]:
        """The values of settings by their flat names (see ``with_settings``)."""
        paths = _setting_paths()
        _reject_unknown_settings(names, paths)
        found = {}
        for name in names:
            value: Any = self
            for part in paths[name]:
                value = value.get(part) if isinstance(value, dict) else getattr(value, part)
            found[name] = value
        return found


# Flat names whose field is called otherwise: the CLI's short options and the Train panel's fields.
SETTING_ALIASES: dict[str, tuple[str, ...]] = {
    "size": ("model", "image_size"), "model": ("model", "name"), "model_name": ("model", "name"),
    "pool_size": ("train", "unlabelled_pool_size"), "threshold": ("train", "confidence_threshold"),
    "lr": ("train", "learning_rate"), "probe_c": ("probe", "regularisation"),
    "score_batch_size": ("score", "batch_size"), "workers": ("score", "num_workers"),
    "normalisation": ("data", "normalisation", "method"),
    "sky_viewer": ("sky", "viewer"), "samp_top": ("sky", "samp_top"),
}
# Sections whose fields are settings by their own name; on a clash the first section's wins
# (``batch_size`` is the training one; the scoring one is ``score_batch_size``).
FLAT_SECTIONS = ("model", "train", "score")
# The probe section's fields are settings by their name with this prefix (``probe_views``): the
# names they had in ``train`` before the section, kept by the CLI, the scripted API and old files.
PROBE_PREFIX = "probe_"


def setting_names(section: str | None = None) -> list[str]:
    """The flat setting names ``SessionConfig.with_settings`` takes (of one section if given), sorted."""
    return sorted(name for name, path in _setting_paths().items() if section in (None, path[0]))


def _setting_paths() -> dict[str, tuple[str, ...]]:
    """Each flat setting name and where it lives (section, field[, key])."""
    defaults = SessionConfig()
    paths: dict[str, tuple[str, ...]] = {}
    for section in FLAT_SECTIONS:
        for name in _field_names(type(getattr(defaults, section))):
            paths.setdefault(name, (section, name))
    paths.update({PROBE_PREFIX + name: ("probe", name) for name in _field_names(ProbeConfig)})
    paths.update({"reader": ("data", "reader"), "on_error": ("data", "on_error")})
    paths.update({name: ("data", "normalisation", name)
                  for name in _field_names(NormalisationConfig) if name != "method"})
    paths.update({name: ("data", "options", name) for name in reader_option_names()})  # stored in data.options
    paths.update(SETTING_ALIASES)
    return paths


def _move_old_probe_keys(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the ``train`` table's ``probe_<field>`` keys (the layout before the ``probe``
    section) moved into ``probe``.

    Raises
    ------
    ConfigError
        When a setting is in both places: neither is silently preferred.
    """
    train = values.get("train")
    if not isinstance(train, dict):
        return values  # nothing to move; a table of the wrong type is refused by its section
    old = {key[len(PROBE_PREFIX):]: key for key in train
           if key.startswith(PROBE_PREFIX) and key[len(PROBE_PREFIX):] in _field_names(ProbeConfig)}
    if not old:
        return values
    probe = _table("probe", values.get("probe", {}))
    both = sorted(name for name in old if name in probe)
    if both:
        raise ConfigError(f"{', '.join(f'train.{old[name]} and probe.{name}' for name in both)} are the same "
                          "setting; keep only the one in [probe] (the [train] probe_* keys are the old layout)")
    probe.update({name: train[key] for name, key in old.items()})
    moved = {key: value for key, value in train.items() if key not in old.values()}
    return {**values, "train": moved, "probe": probe}


def _reject_unknown_settings(names: Any, paths: dict[str, tuple[str, ...]]) -> None:
    unknown = [name for name in names if name not in paths]
    if unknown:
        close = sorted({match for name in unknown for match in difflib.get_close_matches(name, paths)})
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                          f"{hint}; known settings: {sorted(paths)}")


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


# The Python types a TOML value of each annotated field may have (an int is a valid float).
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                       "dict[str, Any]": (dict,)}


def _table(owner: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"[{owner}] must be a table of settings; got {value!r} ({type(value).__name__})")
    return dict(value)


def _check_types(owner: str, values: dict[str, Any], kind: type) -> None:
    """Refuse a value whose type is not its field's (``learning_rate = "fast"``, ``source = 5``)."""
    annotations = {f.name: str(f.type) for f in dataclasses.fields(kind)}
    for name, value in values.items():
        allowed = _TYPES.get(annotations[name])
        if allowed is None:
            continue
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            expected = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
                        "dict[str, Any]": "a table"}[annotations[name]]
            raise ConfigError(f"{owner}.{name} must be {expected}; got {value!r} ({type(value).__name__})")


def _field_names(kind: type) -> set[str]:
    return {f.name for f in dataclasses.fields(kind)}


def _reject_unknown(owner: str, values: dict[str, Any], known: Any) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{owner}: unknown setting(s) {unknown}; known: {sorted(known)}")


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value
