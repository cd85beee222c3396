"""A session's settings: the sections (``sections``), checked as they are read (``checks``), the
whole stored as TOML (``sessionconfig``) and changed by flat setting names (``names``)."""

from .names import FLAT_SECTIONS, PROBE_PREFIX, SETTING_ALIASES, setting_names
from .sections import (
    AUTO,
    COMPILE_MODES,
    DEFAULT_NOVELTY_METHOD,
    DEVICES,
    FILTERS,
    NORMALISATIONS,
    NOVELTY_METHODS,
    ON_ERROR,
    ORACLE_ORDER,
    ORACLE_TEST_FRACTION,
    PRECISIONS,
    PROBE_FEATURES,
    PROBE_LAYERS,
    PROBE_MORPHOLOGY,
    PROBE_VIEWS,
    SALIENCY_METHODS,
    SKY_VIEWER_NAMES,
    SOFTENINGS,
    WEAK_PASSES,
    DataConfig,
    ModelConfig,
    NormalisationConfig,
    ProbeConfig,
    ScoreConfig,
    SkyConfig,
    TrainConfig,
    check_novelty_method,
    resolve_source,
)
from .sessionconfig import CONFIG_FILE, SessionConfig, check_source

__all__ = [
    "AUTO", "COMPILE_MODES", "CONFIG_FILE", "DEFAULT_NOVELTY_METHOD", "DEVICES", "FILTERS", "FLAT_SECTIONS",
    "NORMALISATIONS", "NOVELTY_METHODS", "ON_ERROR", "ORACLE_ORDER", "ORACLE_TEST_FRACTION", "PRECISIONS",
    "PROBE_FEATURES", "PROBE_LAYERS", "PROBE_MORPHOLOGY", "PROBE_PREFIX", "PROBE_VIEWS", "SALIENCY_METHODS",
    "SETTING_ALIASES", "SKY_VIEWER_NAMES", "SOFTENINGS", "WEAK_PASSES", "DataConfig", "ModelConfig",
    "NormalisationConfig", "ProbeConfig", "ScoreConfig", "SessionConfig", "SkyConfig", "TrainConfig",
    "check_novelty_method", "check_source", "resolve_source", "setting_names",
]
