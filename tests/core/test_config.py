"""Settings are validated once, with messages naming the value, and round-trip through TOML."""

from __future__ import annotations

import pytest
import tomllib

from napari_anomalymatch.core.config import (
    DataConfig,
    ModelConfig,
    NormalisationConfig,
    ProbeConfig,
    ScoreConfig,
    SessionConfig,
    TrainConfig,
)
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.session import Session

from ..conftest import blob_images, write_pngs


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
        (lambda: ProbeConfig(views="rotations"), r"probe.views must be one of \['auto', 'dihedral', 'flip', 'none'\]"),
        (lambda: ProbeConfig(size=8), r"probe.size must be 0 \(the model's input size\) or an integer >= 16; got 8"),
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
        probe=ProbeConfig(views="none", centre=False, size=96),
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


# A session.toml as 'anomalymatch init --probe-views flip --probe-c 0.5' wrote it before the
# [probe] section (at 1ec503e): the probe's settings were train.probe_*.
OLD_SESSION = """\
[data]
source = "SOURCE"
reader = "auto"
on_error = "raise"

[data.options]

[data.normalisation]
method = "auto"
low_percentile = 0.5
high_percentile = 99.5
asinh_a = 0.1
asinh_softening = "fixed"
log_a = 1000.0
crop = 1.0

[model]
name = "tf_efficientnet_lite0"
pretrained = true
image_size = 64
device = "auto"

[train]
iterations = 100
batch_size = 16
unlabelled_ratio = 5
confidence_threshold = 0.95
temperature = 0.5
lambda_u = 1.0
ema_decay = 0.99
learning_rate = 0.0075
momentum = 0.9
weight_decay = 0.0005
unlabelled_pool_size = 10000
strong_ops = 2
strong_magnitude = 10
weak_pass = "separate"
head = "lpft"
probe_regularisation = 0.5
probe_features = "pretrained"
probe_size = 0
probe_layers = "pyramid"
probe_views = "flip"
probe_centre = true
probe_morphology = "auto"
seed = 0

[score]
batch_size = 256
num_workers = -1
top_k = 1000
precision = "auto"
tta = false
part_size = 16384
compile = "auto"
"""


def test_a_session_toml_from_before_the_probe_section_is_read_and_saved_in_the_new_layout(tmp_path):
    path = tmp_path / "session.toml"
    path.write_text(OLD_SESSION.replace("SOURCE", "/data/cutouts"))
    config = SessionConfig.from_toml(path)
    assert config.probe == ProbeConfig(regularisation=0.5, views="flip")
    assert config.train == TrainConfig() and config.data.source == "/data/cutouts"
    config.to_toml(path)
    saved = tomllib.loads(path.read_text())
    assert saved["probe"] == {"regularisation": 0.5, "features": "pretrained", "size": 0, "layers": "pyramid",
                              "views": "flip", "centre": True, "morphology": "auto"}
    assert not [key for key in saved["train"] if key.startswith("probe")]
    assert SessionConfig.from_toml(path) == config


def test_an_old_session_folder_opens_with_its_probe_settings(tmp_path):
    folder = tmp_path / "images"
    write_pngs(folder, blob_images(4)[0])
    session = Session.create(tmp_path / "session", SessionConfig(data=DataConfig(source=str(folder))))
    session.close()
    (tmp_path / "session" / "session.toml").write_text(OLD_SESSION.replace("SOURCE", str(folder)))
    with Session.open(tmp_path / "session") as reopened:
        assert reopened.config.probe.views == "flip" and reopened.config.probe.regularisation == 0.5
        assert reopened.trainer.probe_config == reopened.config.probe


def test_a_probe_setting_in_both_layouts_is_refused(tmp_path):
    path = tmp_path / "session.toml"
    path.write_text("[train]\nprobe_views = \"flip\"\nprobe_size = 96\n\n[probe]\nviews = \"none\"\n")
    with pytest.raises(ConfigError, match=r"session.toml: train.probe_views and probe.views are the same setting; "
                                          r"keep only the one in \[probe\]"):
        SessionConfig.from_toml(path)
    path.write_text("[train]\nprobe_size = 96\n\n[probe]\nviews = \"none\"\n")  # apart, both are kept
    assert SessionConfig.from_toml(path).probe == ProbeConfig(size=96, views="none")


def test_an_old_probe_key_is_checked_and_an_unknown_one_refused_in_its_table(tmp_path):
    path = tmp_path / "session.toml"
    path.write_text("[train]\nprobe_views = \"sideways\"\n")
    with pytest.raises(ConfigError, match=r"probe.views must be one of"):
        SessionConfig.from_toml(path)
    path.write_text("[train]\nprobe_colour = \"red\"\n")
    with pytest.raises(ConfigError, match=r"train: unknown setting\(s\) \['probe_colour'\]"):
        SessionConfig.from_toml(path)


def test_the_probe_settings_keep_their_flat_names():
    config = SessionConfig().with_settings(probe_views="flip", probe_c=0.5, probe_centre=False)
    assert config.probe == ProbeConfig(views="flip", regularisation=0.5, centre=False)
    assert config.train == TrainConfig()
    assert config.settings("probe_views", "probe_regularisation") == {"probe_views": "flip",
                                                                      "probe_regularisation": 0.5}
    with pytest.raises(ConfigError, match=r"probe.morphology must be one of"):
        config.with_settings(probe_morphology="maybe")
