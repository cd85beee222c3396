"""Sessions: create, label, train, score (and resume), rank, reopen."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from napari_anomalymatch.core.config import DataConfig, ModelConfig, ScoreConfig, SessionConfig, TrainConfig
from napari_anomalymatch.core.errors import ConfigError, NotTrainedError, SessionError, UnknownIdError
from napari_anomalymatch.core.labels import ANOMALY, NORMAL
from napari_anomalymatch.core.learning.training import TrainProgress
from napari_anomalymatch.core.loading import LoadProgress
from napari_anomalymatch.core.scoring.orders import rank
from napari_anomalymatch.core.scoring.run import run_to_end
from napari_anomalymatch.core.session import Session

from ..conftest import TINY_TRAINING


def _config(source) -> SessionConfig:
    return SessionConfig(data=DataConfig(source=str(source)), model=ModelConfig(image_size=32),
                         train=TrainConfig(**TINY_TRAINING),
                         score=ScoreConfig(batch_size=16, part_size=16, num_workers=0))


@pytest.fixture
def session(tmp_path, blob_folder):
    folder, truth = blob_folder
    with Session.create(tmp_path / "session", _config(folder)) as s:
        ids = s.collection.ids()
        for i in np.flatnonzero(truth)[:2]:
            s.label(ids[i], "anomaly")
        for i in np.flatnonzero(~truth)[:3]:
            s.label(ids[i], "normal")
        yield s


def test_create_refuses_to_overwrite_and_open_needs_a_session(tmp_path, session):
    with pytest.raises(SessionError, match="a session exists here already"):
        Session.create(session.path, session.config)
    with pytest.raises(SessionError, match="not a session folder"):
        Session.open(tmp_path)


def test_labels_are_checked_against_the_collection(session):
    with pytest.raises(UnknownIdError, match="no image with id 'nope.png'"):
        session.label("nope.png", "anomaly")
    indices, labels = session.labelled()
    assert sorted(labels.tolist()) == [NORMAL] * 3 + [ANOMALY] * 2
    assert all(session.collection.id_of(i) in session.labels.current() for i in indices)


def test_scoring_before_training_is_refused(session):
    with pytest.raises(NotTrainedError, match="run a training cycle before scoring"):
        next(session.score())


def test_training_without_both_classes_is_refused(tmp_path, blob_folder):
    with Session.create(tmp_path / "s", _config(blob_folder[0])) as s:
        s.label(s.collection.id_of(0), "anomaly")
        with pytest.raises(ConfigError, match="1 anomalies and 0 normal"):
            next(s.train())


def test_train_score_rank_and_reopen(session):
    events = list(session.train())
    assert any(isinstance(e, LoadProgress) for e in events)
    steps = [e for e in events if isinstance(e, TrainProgress)]
    assert [s.iteration for s in steps] == [1, 2]
    assert session.cycle == 1 and session.model.checkpoint_path(1).exists()
    result = run_to_end(session.score())
    assert result.n_scored == 40 and np.isfinite(result.scores).all()
    assert (result.scores >= 0).all() and (result.scores <= 1).all()
    ranking = session.ranking("score", "unlabelled")
    assert len(ranking) == 35 and set(ranking).isdisjoint(session.labelled()[0])
    assert np.all(np.diff(result.scores[ranking]) <= 0)
    uncertain = session.ranking("uncertainty", "all")
    assert np.all(np.diff(np.abs(result.scores[uncertain] - 0.5)) >= 0)
    path = session.path
    session.close()
    with Session.open(path) as again:
        assert again.cycle == 1
        assert len(again.labels.current()) == 5
        cycle, scores = again.runs.scores()
        np.testing.assert_array_equal(scores, result.scores)
        list(again.train())  # continues the same model
        assert again.cycle == 2 and again.trainer.iterations_done == 4


def test_interrupted_scoring_resumes_without_rescoring(session):
    list(session.train())
    run = session.score()
    batches = [next(run) for _ in range(2)]  # 2 batches of 16 = parts 0 and 1 written
    run.close()
    store = session.runs.directory(1)
    assert sorted(p.name for p in store.glob("part-*.npy")) == ["part-000000.npy", "part-000001.npy"]
    assert batches[-1].n_done == 32
    first_parts = [np.load(p) for p in sorted(store.glob("part-*.npy"))]
    resumed = session.score()
    remaining = []
    while True:
        try:
            remaining.append(next(resumed))
        except StopIteration as stop:
            result = stop.value
            break
    assert sum(len(b.indices) for b in remaining) == 8  # only the last part was scored
    assert result.n_scored == 8 and np.isfinite(result.scores).all()
    np.testing.assert_array_equal(result.scores[:16], first_parts[0])
    assert json.loads((store / "complete.json").read_text())["n_scored"] == 40


def test_stopping_training_keeps_a_usable_checkpoint(session):
    run = session.train()
    for event in run:
        if isinstance(event, TrainProgress):
            break
    run.close()
    assert session.cycle == 1
    assert run_to_end(session.score()).n_scored == 40


def test_import_labels_checks_every_id_first(tmp_path, session):
    good = tmp_path / "good.csv"
    ids = session.collection.ids()
    with open(good, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "label"], [ids[10], "anomaly"], [ids[11], "normal"]])
    assert session.import_labels(good) == 2
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "label"], [ids[12], "anomaly"], ["ghost.png", "normal"]])
    before = session.labels.current()
    with pytest.raises(UnknownIdError, match=r"bad\.csv, row 3: .*'ghost\.png'"):
        session.import_labels(bad)
    assert session.labels.current() == before  # nothing half-imported


def test_rank_orders_and_puts_missing_last():
    scores = np.array([0.2, np.nan, 0.9, 0.5, 0.45])
    candidates = np.arange(5)
    assert rank(scores, candidates, "score").tolist() == [2, 3, 4, 0, 1]
    assert rank(scores, candidates, "uncertainty").tolist() == [3, 4, 0, 2, 1]
    assert sorted(rank(scores, candidates, "random", seed=1).tolist()[:4]) == [0, 2, 3, 4]


def test_a_resumed_run_scores_bit_for_bit_as_an_uninterrupted_one(session, monkeypatch, tmp_path):
    """The path chosen when the run starts (here bf16, timed faster) is stored in its manifest and used
    for the last part too, although 8 images left would not be measured and would score in float32."""
    from napari_anomalymatch.core.scoring import pathchoice

    monkeypatch.setenv(pathchoice.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(pathchoice, "native_reduced_precisions", lambda device: ["bfloat16"])
    monkeypatch.setattr(pathchoice, "_images_per_second",
                        lambda scorer, batch: 200.0 if scorer.__self__.dtype == torch.bfloat16 else 100.0)
    monkeypatch.setattr(pathchoice, "agrees", lambda agreement: True)
    monkeypatch.setattr(pathchoice, "MEASURE_MIN_IMAGES", 1)
    list(session.train())
    store = session.runs.directory(1)
    uninterrupted = np.array(run_to_end(session.score()).scores)
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["inference"] == "bfloat16+eager"
    assert set(manifest["inference_agreement"]["bfloat16+eager"]) >= {"spearman", "top_overlap"}  # why it was chosen
    shutil.rmtree(store)
    run = session.score()
    [next(run) for _ in range(2)]  # parts 0 and 1 written
    run.close()
    monkeypatch.setattr(pathchoice, "MEASURE_MIN_IMAGES", 2048)  # 8 images left: not worth measuring
    resumed = run_to_end(session.score())
    assert resumed.n_scored == 8 and resumed.inference == "bfloat16+eager"
    np.testing.assert_array_equal(np.asarray(resumed.scores), uninterrupted)
    shutil.rmtree(store)
    float32 = np.asarray(run_to_end(session.score()).scores)  # what the last part would have had
    assert not np.array_equal(float32[32:], uninterrupted[32:])
