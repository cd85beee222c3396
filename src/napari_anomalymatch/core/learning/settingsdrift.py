"""Settings changed under a session's model and scores (``session.toml`` edited by hand, or an option):
what the change invalidates is said before anything acts on it.

Another ``model.name`` cannot load the checkpoints, so it is refused with the way back; another
``model.image_size`` goes on from the checkpoint at the new size and replaces the scores made at
the old one, which is said as a ``SettingsChangedWarning`` first.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import SessionConfig
from ..errors import ConfigError
from .checkpoints import CheckpointInfo


class SettingsChangedWarning(UserWarning):
    """A setting differs from the one the session's model or scores were made with."""


def check_model_name(config_file: Path, config: SessionConfig, info: CheckpointInfo, checkpoint: Path) -> None:
    """Refuse a ``model.name`` that the session's checkpoints were not made for.

    Raises
    ------
    ConfigError
        Naming both networks, and the two ways on: the old name back, or a new session.
    """
    wanted, made = config.model.name, info.model_name
    if wanted == made:
        return
    raise ConfigError(
        f"{config_file}: model.name is '{wanted}', but this session's model is a '{made}' (latest "
        f"checkpoint {checkpoint}), which cannot be loaded into another network. Set name = '{made}' "
        f"under [model] again to go on; or, for '{wanted}', start a new session (anomalymatch export "
        f"{config_file.parent} labels.csv, then anomalymatch init NEW_FOLDER SOURCE --model {wanted} "
        "--labels labels.csv): this one's labels, checkpoints and scores stay as they are")


def image_size_notice(config_file: Path, config: SessionConfig, info: CheckpointInfo,
                      checkpoint: Path) -> str | None:
    """What going on from ``checkpoint`` at another ``model.image_size`` means, or None for the same size."""
    size, made = config.model.image_size, info.image_size
    if size == made:
        return None
    return (f"{config_file}: model.image_size is {size}, but the model of cycle {info.cycle} ({checkpoint}) "
            f"was trained on {made}-pixel images: it goes on at {size} pixels, and scoring again replaces "
            f"the scores made at {made}. Set image_size = {made} under [model] to keep them")


_SIZE_AT_END = re.compile(r", (\d+), (?:True|False)\)$")  # score_manifest's preprocessing: (norm, size, tta)


def rescoring_notice(run: Path, old_key: str, new_key: str) -> str:
    """Why a finished run of the same model is scored again: its preprocessing settings changed."""
    old, new = _SIZE_AT_END.search(old_key), _SIZE_AT_END.search(new_key)
    what = "the normalisation or test-time augmentation"
    if old and new and old.group(1) != new.group(1):
        what = f"the image size ({old.group(1)} -> {new.group(1)} pixels)"
    return (f"{run}: these scores were made with other settings than the session's now ({what} "
            "changed); they are replaced by scoring the whole collection again")
