"""A session's settings: its sections together, stored as TOML (``SessionConfig.to_toml`` and
``from_toml`` round-trip every field) and changed by flat setting names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ..atomic import atomic_write_bytes
from ..errors import ConfigError
from .checks import check_types, drop_none, field_names, reject_unknown, reject_unknown_settings, table
from .names import move_old_probe_keys, setting_paths
from .sections import DataConfig, ModelConfig, NormalisationConfig, ProbeConfig, ScoreConfig, SkyConfig, TrainConfig

CONFIG_FILE = "session.toml"  # a session's settings, in its folder

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
        ``move_old_probe_keys``).
        """
        sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
                    "probe": ProbeConfig, "score": ScoreConfig, "sky": SkyConfig}
        reject_unknown("session", values, sections)
        values = move_old_probe_keys(values)
        built = {}
        for name, kind in sections.items():
            section = table(name, values.get(name, {}))
            if kind is DataConfig and "normalisation" in section:
                norm = table("data.normalisation", section["normalisation"])
                reject_unknown("data.normalisation", norm, field_names(NormalisationConfig))
                check_types("data.normalisation", norm, NormalisationConfig)
                section["normalisation"] = NormalisationConfig(**norm)
            reject_unknown(name, section, field_names(kind))
            check_types(name, section, kind)
            built[name] = kind(**section)
        return cls(**built)

    def to_toml(self, path: str | Path) -> None:
        """Write the config to ``path`` atomically."""
        import tomli_w

        atomic_write_bytes(Path(path), tomli_w.dumps(drop_none(self.to_dict())).encode())

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
        paths = setting_paths()
        reject_unknown_settings(settings, paths)
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
        paths = setting_paths()
        reject_unknown_settings(names, paths)
        found = {}
        for name in names:
            value: Any = self
            for part in paths[name]:
                value = value.get(part) if isinstance(value, dict) else getattr(value, part)
            found[name] = value
        return found


def check_source(config_file: Path, config: SessionConfig) -> None:
    """Refuse settings without a data source (a ``session.toml`` edited by hand)."""
    if not config.data.source:
        raise ConfigError(f"{config_file}: data.source is missing or empty; a session needs its data "
                          "source: set source = \"/path/to/images\" under [data], or create the session "
                          "again with 'anomalymatch init'")
