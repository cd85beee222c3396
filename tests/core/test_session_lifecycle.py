"""The one front door every front end uses: open or create a session, first labels, settings by name."""

from __future__ import annotations

import csv

import pytest

from napari_anomalymatch.core.config import (
    DataConfig,
    ModelConfig,
    ProbeConfig,
    ScoreConfig,
    SessionConfig,
    TrainConfig,
    resolve_source,
    setting_names,
)
from napari_anomalymatch.core.errors import ConfigError, SessionError, UnknownIdError
from napari_anomalymatch.core.io.labelfiles import import_catalogue_labels
from napari_anomalymatch.core.labels import ANOMALY, NORMAL
from napari_anomalymatch.core.runs import run_to_end
from napari_anomalymatch.core.session import Session

from ..conftest import TINY_TRAINING, blob_images, write_pngs

TINY = SessionConfig(model=ModelConfig(image_size=32), train=TrainConfig(**TINY_TRAINING),
                     score=ScoreConfig(batch_size=16, part_size=16, num_workers=0))


@pytest.fixture
def catalogue(tmp_path):
    """A CSV catalogue of 10 PNGs whose first two rows carry labels."""
    write_pngs(tmp_path / "images", blob_images(10)[0])
    path = tmp_path / "cat.csv"
    rows = [["path", "label"], ["images/img_000.png", "anomaly"], ["images/img_001.png", "normal"],
            *[[f"images/img_{i:03d}.png", ""] for i in range(2, 10)]]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_open_or_create_creates_with_an_absolute_source_then_reopens(tmp_path, blob_folder, monkeypatch):
    folder, _ = blob_folder
    monkeypatch.chdir(folder.parent)
    with Session.open_or_create("session", data=DataConfig(source=folder.name), config=TINY) as session:
        assert session.config.data.source == str(folder)  # the session opens from any folder
        assert session.config.model.image_size == 32 and len(session.collection) == 40
    monkeypatch.chdir(tmp_path / "session")
    with Session.open_or_create(tmp_path / "session") as session:
        assert session.config.model.image_size == 32
    with Session.open_or_create(tmp_path / "session", data=DataConfig(source=str(folder)),
                                config=SessionConfig()) as session:
        assert session.config.model.image_size == 32  # an existing session keeps its own settings


def test_open_or_create_refuses_what_it_cannot_do(tmp_path, blob_folder, catalogue):
    folder, _ = blob_folder
    Session.open_or_create(tmp_path / "session", data=DataConfig(source=str(folder)), config=TINY).close()
    with pytest.raises(SessionError, match=rf"reviews {folder}, not {catalogue}; choose an empty folder"):
        Session.open_or_create(tmp_path / "session", data=DataConfig(source=str(catalogue)))
    with pytest.raises(SessionError, match="a session exists here already"):
        Session.open_or_create(tmp_path / "session", data=DataConfig(source=str(folder)), reopen=False)
    with pytest.raises(SessionError, match="not a session folder yet; choose a data source"):
        Session.open_or_create(tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_open_or_create_expands_home_in_the_folder_and_the_source(tmp_path, blob_folder, monkeypatch):
    folder, _ = blob_folder
    monkeypatch.setenv("HOME", str(folder.parent))
    with Session.open_or_create("~/session", data=DataConfig(source=f"~/{folder.name}"), config=TINY) as session:
        assert session.path == folder.parent / "session" and session.config.data.source == str(folder)


def test_open_or_create_imports_a_label_file_and_closes_on_a_bad_one(tmp_path, blob_folder):
    folder, truth = blob_folder
    good = tmp_path / "good.csv"
    good.write_text("id,label\nimg_000.png,anomaly\nimg_001.png,normal\n")
    with Session.open_or_create(tmp_path / "s", data=DataConfig(source=str(folder)), config=TINY,
                                labels=good) as session:
        assert session.labels.current() == {"img_000.png": ANOMALY, "img_001.png": NORMAL}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nimg_002.png,anomaly\nnope.png,normal\n")
    with pytest.raises(UnknownIdError, match="nope.png"):
        Session.open_or_create(tmp_path / "s", labels=bad)
    with Session.open(tmp_path / "s") as session:  # the failed attempt left the store as it was, and closed
        assert session.labels.current() == {"img_000.png": ANOMALY, "img_001.png": NORMAL}


def test_catalogue_labels_are_imported_once_into_a_session_without_history(tmp_path, catalogue):
    with Session.open_or_create(tmp_path / "s", data=DataConfig(source=str(catalogue)), config=TINY) as session:
        assert session.labels.current() == {"images/img_000.png": ANOMALY, "images/img_001.png": NORMAL}
        assert {event.source for event in session.labels.history()} == {"catalogue"}
        session.label("images/img_000.png", "normal")  # the user disagrees with the catalogue
        assert import_catalogue_labels(session.labels, session.collection) == 0
    with Session.open_or_create(tmp_path / "s", data=DataConfig(source=str(catalogue))) as session:
        assert session.labels.current()["images/img_000.png"] == NORMAL  # reopening never brings it back


def test_training_needs_both_classes_with_one_message(tmp_path, blob_folder):
    folder, _ = blob_folder
    with Session.open_or_create(tmp_path / "s", data=DataConfig(source=str(folder)), config=TINY) as session:
        session.label("img_000.png", "anomaly")
        expected = r"at least one anomaly and one normal label; the session has 1 anomalies and 0 normal"
        with pytest.raises(ConfigError, match=expected):
            session.check_trainable()
        with pytest.raises(ConfigError, match=expected):
            next(session.train())
        session.label("img_001.png", "normal")
        session.check_trainable()


def test_resolve_source_is_absolute_with_home_expanded_and_keeps_globs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "/home/someone")
    assert resolve_source("images") == str(tmp_path / "images")
    assert resolve_source("shards/../images/*.fits") == str(tmp_path / "images" / "*.fits")
    assert resolve_source("~/survey/**/*.h5") == "/home/someone/survey/**/*.h5"
    assert resolve_source(tmp_path / "x.zarr") == str(tmp_path / "x.zarr")
    with pytest.raises(ConfigError, match="no data source given"):
        resolve_source(" ")


@pytest.mark.parametrize(("settings", "where", "expected"), [
    ({"iterations": 7}, ("train", "iterations"), 7),
    ({"batch_size": 4}, ("train", "batch_size"), 4),  # the training batch; scoring's is score_batch_size
    ({"score_batch_size": 64}, ("score", "batch_size"), 64),
    ({"lr": 0.01}, ("train", "learning_rate"), 0.01),  # the CLI's short names
    ({"size": 48}, ("model", "image_size"), 48),
    ({"model": "resnet18"}, ("model", "name"), "resnet18"),
    ({"workers": 0}, ("score", "num_workers"), 0),
    ({"probe_c": 1.5}, ("probe", "regularisation"), 1.5),
    ({"model_name": "resnet18"}, ("model", "name"), "resnet18"),  # the Train panel's
    ({"pool_size": 99}, ("train", "unlabelled_pool_size"), 99),
    ({"image_size": 40}, ("model", "image_size"), 40),  # the scripted API's field names
    ({"top_k": 5}, ("score", "top_k"), 5),
    ({"normalisation": "log"}, ("data", "normalisation", "method"), "log"),
    ({"crop": 0.5}, ("data", "normalisation", "crop"), 0.5),
    ({"hdu": [1, "SCI"]}, ("data", "options", "hdu"), [1, "SCI"]),
    ({"on_error": "skip"}, ("data", "on_error"), "skip"),
])
def test_with_settings_puts_each_flat_name_in_its_section(settings, where, expected):
    config = SessionConfig().with_settings(**settings)
    value = config
    for part in where:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    assert value == expected
    assert config.settings(*settings) == settings  # and reads it back by the same name
    untouched = SessionConfig().to_dict()
    changed = config.to_dict()
    assert sum(changed[s] != untouched[s] for s in untouched) == 1  # one section changed


def test_with_settings_keeps_what_it_is_not_given_and_validates():
    base = SessionConfig(data=DataConfig(source="/data", options={"dataset": "images"}), train=TrainConfig(seed=3))
    changed = base.with_settings(hdu=2, iterations=5)
    assert changed.data.options == {"dataset": "images", "hdu": 2} and changed.data.source == "/data"
    assert changed.train.seed == 3 and changed.train.iterations == 5 and base.train.iterations == 100
    assert base.with_settings() == base
    with pytest.raises(ConfigError, match=r"train\.iterations must be an integer >= 1; got 0"):
        base.with_settings(iterations=0)
    with pytest.raises(ConfigError, match=r"train\.learning_rate must be a number; got 'fast'"):
        base.with_settings(lr="fast")


def test_an_unknown_setting_is_named_with_the_close_ones():
    with pytest.raises(ConfigError, match=r"unknown setting 'iteration' \(did you mean 'iterations'\?\); "
                                          r"known settings: \[.*'workers'\]"):
        SessionConfig().with_settings(iteration=3)
    with pytest.raises(ConfigError, match=r"unknown settings 'colour', 'speed'"):
        SessionConfig().with_settings(colour=1, speed=2)
    with pytest.raises(ConfigError, match=r"unknown setting 'size_px'"):
        SessionConfig().settings("size_px")


def test_setting_names_cover_every_model_training_and_scoring_field():
    names = set(setting_names())
    for section, kind in (("model", ModelConfig), ("train", TrainConfig)):
        assert {f for f in kind.__dataclass_fields__} <= names, section
    assert set(ScoreConfig.__dataclass_fields__) - {"batch_size"} <= names
    assert {f"probe_{f}" for f in ProbeConfig.__dataclass_fields__} == set(setting_names("probe")) - {"probe_c"}
    assert set(setting_names("data")) >= {"reader", "on_error", "normalisation", "crop", "hdu", "dataset"}


def test_run_to_end_closes_the_generator_when_the_caller_stops():
    cleaned = []

    def events():
        try:
            yield from range(5)
            return "done"
        finally:
            cleaned.append(True)

    seen = []
    assert run_to_end(events(), seen.append) == "done" and seen == [0, 1, 2, 3, 4]

    def interrupt(event):
        if event == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_end(events(), interrupt)
    assert cleaned == [True, True]  # the stopped one cleaned up too (a cycle saves its checkpoint)



def test_update_config_says_whether_the_settings_changed_and_writes_only_a_change(tmp_path, blob_folder):
    folder, _ = blob_folder
    with Session.open_or_create(tmp_path / "s", data=DataConfig(source=str(folder)), config=TINY) as session:
        settings = tmp_path / "s" / "session.toml"
        settings.write_text(settings.read_text() + "# kept while nothing changes\n")
        assert session.update_config(session.config) is False
        assert settings.read_text().endswith("# kept while nothing changes\n")
        assert session.update_config(session.config.with_settings(iterations=7)) is True
    with Session.open(tmp_path / "s", read_only=True) as reopened:
        assert reopened.config.train.iterations == 7
