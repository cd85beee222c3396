"""Settings by their flat names (``iterations``, ``probe_views``, ``size``), as the command line,
the Train panel and the scripted API give them, and where each lives in the sections."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..io.options import reader_option_names
from .checks import field_names, table
from .sections import ModelConfig, NormalisationConfig, ProbeConfig, ScoreConfig, TrainConfig

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
FLAT_SECTIONS = {"model": ModelConfig, "train": TrainConfig, "score": ScoreConfig}
# The probe section's fields are settings by their name with this prefix (``probe_views``): the
# names they had in ``train`` before the section, kept by the CLI, the scripted API and old files.
PROBE_PREFIX = "probe_"


def setting_names(section: str | None = None) -> list[str]:
    """The flat setting names ``SessionConfig.with_settings`` takes (of one section if given), sorted."""
    return sorted(name for name, path in setting_paths().items() if section in (None, path[0]))


def setting_paths() -> dict[str, tuple[str, ...]]:
    """Each flat setting name and where it lives (section, field[, key])."""
    paths: dict[str, tuple[str, ...]] = {}
    for section, kind in FLAT_SECTIONS.items():
        for name in field_names(kind):
            paths.setdefault(name, (section, name))
    paths.update({PROBE_PREFIX + name: ("probe", name) for name in field_names(ProbeConfig)})
    paths.update({"reader": ("data", "reader"), "on_error": ("data", "on_error")})
    paths.update({name: ("data", "normalisation", name)
                  for name in field_names(NormalisationConfig) if name != "method"})
    paths.update({name: ("data", "options", name) for name in reader_option_names()})  # stored in data.options
    paths.update(SETTING_ALIASES)
    return paths


def move_old_probe_keys(values: dict[str, Any]) -> dict[str, Any]:
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
           if key.startswith(PROBE_PREFIX) and key[len(PROBE_PREFIX):] in field_names(ProbeConfig)}
    if not old:
        return values
    probe = table("probe", values.get("probe", {}))
    both = sorted(name for name in old if name in probe)
    if both:
        raise ConfigError(f"{', '.join(f'train.{old[name]} and probe.{name}' for name in both)} are the same "
                          "setting; keep only the one in [probe] (the [train] probe_* keys are the old layout)")
    probe.update({name: train[key] for name, key in old.items()})
    moved = {key: value for key, value in train.items() if key not in old.values()}
    return {**values, "train": moved, "probe": probe}
