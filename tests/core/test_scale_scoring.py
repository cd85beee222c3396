"""Scoring sharded collections: a part per shard, resuming, and merged outputs that do not
depend on the order in which shards finished."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from napari_anomalymatch.core.config import DataConfig, ModelConfig, ScoreConfig, SessionConfig, TrainConfig
from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.scoring.run import finish_stored_run, run_to_end, score_collection
from napari_anomalymatch.core.scoring.store import ScoreManifest, ScoreStore, best_of
from napari_anomalymatch.core.session import Session

from ..conftest import TINY_TRAINING, blob_images

SHARD_SIZE = 30


def write_blob_shards(folder, n_shards=3, seed=0):
    """``n_shards`` HDF5 files of 30 grey 32x32 blobs (every 5th a ring); returns the truth."""
    images, truth = blob_images(n_shards * SHARD_SIZE, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_shards):
        with h5py.File(folder / f"field_{k}.h5", "w") as f:
            f.create_dataset("images", data=images[k * SHARD_SIZE:(k + 1) * SHARD_SIZE])
            if k != 1:
                f.create_dataset("ra", data=np.linspace(10 * k, 10 * k + 1, SHARD_SIZE))
                f.create_dataset("dec", data=np.full(SHARD_SIZE, -5.0))
    return truth


def trained_session(tmp_path, **score):
    truth = write_blob_shards(tmp_path / "survey")
    settings = {"batch_size": 16, "num_workers": 0, "precision": "float32", **score}
    config = SessionConfig(data=DataConfig(source=str(tmp_path / "survey" / "*.h5")),
                           model=ModelConfig(image_size=32), train=TrainConfig(**TINY_TRAINING),
                           score=ScoreConfig(**settings))
    session = Session.create(tmp_path / "session", config)
    ids = session.collection.ids()
    for i in np.flatnonzero(truth)[:2]:
        session.label(ids[i], "anomaly")
    for i in np.flatnonzero(~truth)[:3]:
        session.label(ids[i], "normal")
    list(session.train())
    return session


def test_a_killed_run_resumes_by_skipping_finished_shards(tmp_path):
    session = trained_session(tmp_path)
    run = session.score()
    seen = [next(run) for _ in range(3)]  # shard 0 (2 batches) and half of shard 1
    run.close()  # as if killed here
    folder = session.runs.directory(1)
    parts = sorted(p.name for p in folder.glob("part-*.npy"))
    assert parts == ["part-000000-field_0.h5.npy"]
    assert seen[-1].n_done == 46
    finished = (folder / parts[0]).stat()
    resumed = session.score()
    batches = []
    while True:
        try:
            batches.append(next(resumed))
        except StopIteration as stop:
            result = stop.value
            break
    assert sum(len(b.indices) for b in batches) == 60 and result.n_scored == 60
    assert min(b.indices.min() for b in batches) == SHARD_SIZE  # shard 0 was not read again
    assert (folder / parts[0]).stat().st_mtime_ns == finished.st_mtime_ns
    assert sorted(p.name for p in folder.glob("part-*.npy")) == [
        "part-000000-field_0.h5.npy", "part-000001-field_1.h5.npy", "part-000002-field_2.h5.npy"]
    model = session.trainer.scoring_model
    fresh = run_to_end(score_collection(model, session.collection, session.normaliser, 32,
                                        session.config.score))
    # float32 sums differ in the last bits with the batch a shard's images land in (1.3e-6 seen)
    np.testing.assert_allclose(result.scores, fresh.scores, rtol=0, atol=1e-5)
    assert isinstance(result.scores, np.memmap)  # the scores are not held in memory


def test_shards_larger_than_a_part_are_split_but_never_mixed():
    manifest = ScoreManifest("c", 70, "h", 1, 16, "p", shards=(("a/x.h5", 40), ("b y.h5", 30)))
    assert [(p.start, p.stop, p.shard) for p in manifest.parts] == [
        (0, 16, "a/x.h5"), (16, 32, "a/x.h5"), (32, 40, "a/x.h5"), (40, 56, "b y.h5"), (56, 70, "b y.h5")]
    assert manifest.parts[0].name == "part-000000-a_x.h5.npy"
    assert manifest.parts[4].name == "part-000004-b_y.h5.npy"
    plain = ScoreManifest("c", 20, "h", 1, 16, "p")
    assert [p.name for p in plain.parts] == ["part-000000.npy", "part-000001.npy"]


def test_merged_outputs_do_not_depend_on_the_order_shards_finished(tmp_path):
    write_blob_shards(tmp_path / "survey")
    collection = open_collection(str(tmp_path / "survey" / "*.h5"))
    # scores with many ties, so the tie-break (index) is exercised
    scores = np.round(np.random.default_rng(3).random(len(collection)), 1).astype(np.float32)
    scores[[4, 50]] = np.nan
    manifest = ScoreManifest(collection.fingerprint(), len(collection), "h", 1, 16, "p",
                             shards=collection.shard_table())
    results = []
    for seed, name in ((0, "run_a"), (1, "run_b")):
        store = ScoreStore(tmp_path / name, manifest)
        for number in np.random.default_rng(seed).permutation(manifest.n_parts):
            start, stop = manifest.part_range(number)
            store.write_part(int(number), scores[start:stop])
        results.append(finish_stored_run(store, 25, "h", len(collection), 1.0, tables_for=collection))
    first, second = results
    np.testing.assert_array_equal(first.top_indices, second.top_indices)
    assert first.catalogue.read_bytes() == second.catalogue.read_bytes()  # byte for byte
    assert first.top_table.read_bytes() == second.top_table.read_bytes()
    assert (tmp_path / "run_a" / "scores.npy").read_bytes() == (tmp_path / "run_b" / "scores.npy").read_bytes()
    top = pq.read_table(first.top_table).to_pydict()
    expected = sorted(np.flatnonzero(np.isfinite(scores)), key=lambda i: (-scores[i], i))[:25]
    assert top["index"] == expected and top["rank"] == list(range(1, 26))
    assert top["id"][0] == collection.id_of(expected[0])
    table = pq.read_table(first.catalogue).to_pydict()
    assert table["index"] == list(range(90)) and table["id"][31] == "field_1.h5:1"
    assert table["shard"][89] == "field_2.h5" and np.isnan(table["score"][4])
    assert np.isnan(table["ra"][31]) and table["ra"][60] == pytest.approx(20.0)


def test_best_of_breaks_ties_by_index_and_skips_nan():
    scores = np.array([0.5, np.nan, 0.9, 0.5, 0.9, 0.1], dtype=np.float32)
    indices = np.array([10, 11, 12, 13, 14, 15])
    assert indices[best_of(scores, indices, 3)].tolist() == [12, 14, 10]
    assert indices[best_of(scores, indices, 10)].tolist() == [12, 14, 10, 13, 15]
    assert best_of(scores, indices, 0).size == 0


def test_session_score_writes_parquet_and_scores_are_memory_mapped(tmp_path):
    session = trained_session(tmp_path, top_k=7)
    result = run_to_end(session.score())
    assert result.n_scored == 90 and np.isfinite(result.scores).all()
    catalogue = pq.read_table(result.catalogue)
    assert catalogue.num_rows == 90
    assert catalogue.column_names == ["index", "id", "shard", "score", "ra", "dec"]
    top = pq.read_table(result.top_table).to_pydict()
    assert len(top["id"]) == 7 and top["index"] == result.top_indices.tolist()
    assert np.all(np.diff(top["score"]) <= 0)
    again = run_to_end(session.score())  # a finished run is not scored or merged again
    assert again.n_scored == 0 and again.catalogue == result.catalogue
    np.testing.assert_array_equal(again.scores, result.scores)
