"""Scoring on a Dask cluster gives the local run's scores; addresses and grouping; the optional import."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from astropy.io import fits

from napari_anomalymatch.core.config import (
    DataConfig,
    ModelConfig,
    NormalisationConfig,
    ScoreConfig,
    SessionConfig,
    TrainConfig,
)
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.folder.opening import CUTOUTS_FOLDER
from napari_anomalymatch.core.io.mosaic import MosaicCollection
from napari_anomalymatch.core.scoring import cluster as dist
from napari_anomalymatch.core.scoring.run import run_to_end
from napari_anomalymatch.core.scoring.store import ScoreManifest, ScoreStore
from napari_anomalymatch.core.session import Session

from ..conftest import TINY_TRAINING
from .mosaics import TILE, positions, write_catalogue, write_two_band_mosaic
from .test_scale_scoring import trained_session

distributed = pytest.importorskip("distributed")


@pytest.mark.parametrize(("text", "expected"), [
    ("local", ("local", None)), ("local:3", ("local", 3)), ("tcp://10.0.0.1:8786", ("tcp://10.0.0.1:8786", None)),
    ("scheduler:8786", ("tcp://scheduler:8786", None)), ("tls://head:8786", ("tls://head:8786", None)),
])
def test_cluster_addresses(text, expected):
    assert dist.parse_cluster_address(text) == expected


@pytest.mark.parametrize("text", ["local:0", "local:two", "slurm", "http://x"])
def test_bad_cluster_addresses_say_what_is_accepted(text):
    with pytest.raises(ConfigError, match="use 'local', 'local:N' .* tcp://scheduler:8786"):
        dist.parse_cluster_address(text)


def test_missing_dask_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(ConfigError, match=r"pip install napari-anomalymatch\[distributed\]"):
        dist.require_dask()


def test_one_task_per_shard():
    manifest = ScoreManifest("c", 50, "h", 1, 10, "p", shards=(("a", 25), ("b", 5), ("c", 20)))
    groups = dist.shard_groups(list(manifest.parts))
    assert [[p.number for p in g] for g in groups] == [[0, 1, 2], [3], [4, 5]]
    plain = ScoreManifest("c", 25, "h", 1, 10, "p")
    assert [[p.number for p in g] for g in dist.shard_groups(list(plain.parts))] == [[0], [1], [2]]


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # numerics depend on the thread count; the workers use one
    yield
    torch.set_num_threads(before)


def test_two_worker_cluster_equals_the_local_run(tmp_path, one_thread):
    session = trained_session(tmp_path, top_k=20)
    scorer = session.trainer.scoring_model
    assert scorer.frozen is not None  # the workers must rebuild the probe's frozen network too
    job = dist.scoring_job(scorer, "x", session.config, session.trainer.in_chans, 90)
    assert (job.head, job.frozen_size, job.frozen_layers, job.frozen_morphology) == (
        session.config.train.head, scorer.frozen.input_size, session.config.probe.layers, True)
    local = run_to_end(session.score())
    local_scores = np.array(local.scores)
    local_embeddings = np.array(ScoreStore.existing(session.runs.directory(1)).embeddings())
    local_tables = (local.catalogue.read_bytes(), local.top_table.read_bytes())
    folder = session.runs.directory(1)
    for path in folder.iterdir():
        path.unlink()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        batches = []
        run = session.score(dist.DaskCluster(client, "test", torch_threads=1))
        while True:
            try:
                batches.append(next(run))
            except StopIteration as stop:
                remote = stop.value
                break
        workers = {w for w in client.scheduler_info()["workers"]}
    assert len(workers) == 2
    assert sorted(len(b.indices) for b in batches) == [30, 30, 30]  # one task per shard
    np.testing.assert_array_equal(np.array(remote.scores), local_scores)
    np.testing.assert_array_equal(remote.top_indices, local.top_indices)
    assert (remote.catalogue.read_bytes(), remote.top_table.read_bytes()) == local_tables
    assert pq.read_table(remote.top_table).num_rows == 20
    # the workers' embeddings come back with their scores: "more like this" and the map work on a cluster run
    remote_embeddings = ScoreStore.existing(folder).embeddings()
    np.testing.assert_allclose(np.array(remote_embeddings, dtype=np.float32), local_embeddings.astype(np.float32),
                               rtol=1e-3, atol=1e-3)
    assert len(session.similar([0], top=5).indices) == 5


def test_daemonic_workers_decode_in_their_own_thread(tmp_path):
    session = trained_session(tmp_path, num_workers=1)  # asks for a loader process
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       dashboard_address=None)  # daemonic workers, as dask starts them
    with (cluster, distributed.Client(cluster) as client,
          pytest.warns(dist.LoaderFallbackWarning, match="DASK_DISTRIBUTED__WORKER__DAEMON=False")):
        result = run_to_end(session.score(dist.DaskCluster(client, "test")))
    assert result.n_scored == 90 and np.isfinite(result.scores).all()


def mosaic_session(tmp_path) -> Session:
    """A session of 128 cutouts from a two-band mosaic written here (every 6th position a bright ring), trained
    one tiny cycle and opened again (as ``anomalymatch score --dask`` opens it, keeping cutouts in the session);
    scored in two parts of 64 (one cutout chunk each), in float32 and without loader processes."""
    bands = write_two_band_mosaic(tmp_path / "tiles")
    pixels = [(10.5 + 8 * (k % 8), 10.5 + 5.5 * (k // 8 % 8), k // 64) for k in range(128)]
    catalogue = write_catalogue(tmp_path / "sources.csv", *positions(pixels))
    for path in sorted((tmp_path / "tiles").glob("t*_g.fits")):  # rings on band g: what the labels tell apart
        with fits.open(path, mode="update") as hdul:
            tile = int(path.name[1])
            for x, y, _ in [p for k, p in enumerate(pixels) if k % 6 == 0 and p[2] == tile]:
                yy, xx = np.mgrid[:TILE[0], :TILE[1]]
                hdul[0].data[np.abs(np.hypot(xx - x, yy - y) - 4) < 1] += 5e6
    data = DataConfig(source=str(catalogue), options={"mosaic": bands, "cutout_size": "16px", "channels": "1,2,2"},
                      normalisation=NormalisationConfig(method="percentile", crop=1.0))
    config = SessionConfig(data=data, model=ModelConfig(image_size=32), train=TrainConfig(**TINY_TRAINING),
                           score=ScoreConfig(batch_size=32, part_size=64, num_workers=0, precision="float32",
                                             compile="none"))
    session = Session.create(tmp_path / "session", config)
    for k in (0, 6):
        session.label(f"src{k}", "anomaly")
    for k in (1, 2, 3):
        session.label(f"src{k}", "normal")
    list(session.train())
    session.close()
    return Session.open(tmp_path / "session")


def test_a_mosaic_is_cut_on_the_workers_and_scores_as_in_one_process(tmp_path, one_thread, monkeypatch):
    session = mosaic_session(tmp_path)
    local = run_to_end(session.score())
    for path in session.runs.directory(1).iterdir():
        path.unlink()
    cutouts = tmp_path / "session" / CUTOUTS_FOLDER
    shutil.rmtree(cutouts)  # what the client cut: the workers cut again, from the tiles

    def refuse(*_):
        raise AssertionError("the client cut a cutout")

    monkeypatch.setattr(MosaicCollection, "_cut", refuse)  # here only: the workers are processes of their own
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        remote = run_to_end(session.score(dist.DaskCluster(client, "test", torch_threads=1)))
    np.testing.assert_array_equal(np.array(remote.scores), np.array(local.scores))
    np.testing.assert_array_equal(remote.top_indices, local.top_indices)
    assert len(list(cutouts.rglob("chunk-*.npy"))) == 2  # each 64-image chunk kept, by the workers
