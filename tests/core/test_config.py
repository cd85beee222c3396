"""Settings are validated once, with messages naming the value, and round-trip through TOML."""

from __future__ import annotations

import pytest

from napari_anomalymatch.core.config import (
    DataConfig,
    ModelConfig,
    NormalisationConfig,
    ScoreConfig,
    SessionConfig,
    TrainConfig,
)
from napari_anomalymatch.core.errors import ConfigError


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: TrainConfig(confidence_threshold=1.5),
         r"train.confidence_threshold must lie in \[0.5, 1.0\]; got 1.5"),
        (lambda: TrainConfig(iterations=0), r"train.iterations must be an integer >= 1; got 0"),
        (lambda: TrainConfig(batch_size=2.5), r"train.batch_size must be an integer >= 2; got 2.5"),
        (lambda: TrainConfig(ema_decay=1.0), r"train.ema_decay must lie in \[0.0, 1.0\); got 1.0"),
        (lambda: TrainConfig(weak_pass="both"), r"train.weak_pass must be one of \['joint', 'separate'\]"),
        (lambda: NormalisationConfig(method="sqrt"), r"normalisation.method must be one of"),
        (lambda: NormalisationConfig(low_percentile=90, high_percentile=10), r"low_percentile \(90\) must be below"),
        (lambda: ModelConfig(image_size=8), r"model.image_size must be an integer >= 16; got 8"),
        (lambda: ScoreConfig(num_workers=-2), r"score.num_workers must be -1 \(automatic\) or >= 0; got -2"),
        (lambda: DataConfig(on_error="ignore"), r"data.on_error must be one of \['raise', 'skip'\]"),
    ],
)
def test_invalid_settings_are_named(factory, message):
    with pytest.raises(ConfigError, match=message):
        factory()


def test_defaults_are_the_papers():
    train = TrainConfig()
    assert (train.confidence_threshold, train.lambda_u, train.ema_decay) == (0.95, 1.0, 0.99)
    assert (train.learning_rate, train.momentum, train.batch_size) == (0.0075, 0.9, 16)
    assert (train.iterations, train.unlabelled_pool_size, train.temperature) == (100, 10_000, 0.5)
    assert ModelConfig().name == "tf_efficientnet_lite0"


def test_toml_round_trip(tmp_path):
    config = SessionConfig(
        data=DataConfig(source="/data/cutouts.h5", options={"dataset": "images", "hdu": [1, 2, 3]},
                        on_error="skip", normalisation=NormalisationConfig(method="zscale")),
        model=ModelConfig(image_size=96),
        train=TrainConfig(iterations=7, seed=3),
        score=ScoreConfig(tta=True),
    )
    config.to_toml(tmp_path / "session.toml")
    assert SessionConfig.from_toml(tmp_path / "session.toml") == config


def test_unknown_keys_are_rejected(tmp_path):
    path = tmp_path / "session.toml"
    path.write_text("[train]\niteratons = 5\n")
    with pytest.raises(ConfigError, match=r"train: unknown setting\(s\) \['iteratons'\]"):
        SessionConfig.from_toml(path)


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "session.toml"
    path.write_text("[train\n")
    with pytest.raises(ConfigError, match="session.toml: not valid TOML"):
        SessionConfig.from_toml(path)
