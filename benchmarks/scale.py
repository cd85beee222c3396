"""Scoring throughput and peak memory versus collection size, here and on a 2-worker LocalCluster.

Builds synthetic sharded collections of 64 px uint8 RGB cutouts (HDF5 and Zarr
shards of 2,500 images; a pool of 40 distinct shard files, 10^5 images, is
reused through symbolic links for larger collections), a session with an
(untrained) EfficientNet-Lite0 checkpoint for each, and scores each collection
in a fresh process while sampling the resident memory of that process and all
its children (loader workers, Dask workers) every 0.2 s.

    python benchmarks/scale.py                                   # 1e4, 1e5, 1e6; hdf5+zarr; local+dask
    python benchmarks/scale.py --sizes 10000 100000 --formats hdf5 --backends local

Each run replaces its own entry (same n_images, format, backend) in
``benchmarks/results/scale.json``, so sizes can be run separately.  The data
live under ``benchmarks/work/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synthetic import link_shards, synthetic_images, write_hdf5, write_zarr  # noqa: E402

SHARD_SIZE = 2_500
POOL_SHARDS = 40
IMAGE_SIZE = 64
SUFFIX = {"hdf5": ".h5", "zarr": ".zarr"}
WRITERS = {"hdf5": write_hdf5, "zarr": write_zarr}
BACKENDS = {"local": None, "dask": "local:2"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.run_one is not None:
        return _run_one(Path(args.run_one), args.backend, args.batch_size)
    results_path = Path(args.out)
    for fmt in args.formats:
        pool = _shard_pool(Path(args.work) / f"pool-{fmt}", fmt)
        for size in args.sizes:
            folder = link_shards(pool, size // SHARD_SIZE, Path(args.work) / f"{fmt}-{size}", SUFFIX[fmt])
            session = _session(Path(args.work) / f"session-{fmt}-{size}", folder, fmt, args.batch_size)
            for backend in args.backends:
                record = _measure(session, backend, args.batch_size)
                record.update(n_images=size, format=fmt, n_shards=size // SHARD_SIZE,
                              distinct_shards=min(POOL_SHARDS, size // SHARD_SIZE))
                _merge(results_path, record)
                print(json.dumps(record), flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--formats", nargs="+", default=["hdf5", "zarr"], choices=sorted(WRITERS))
    parser.add_argument("--backends", nargs="+", default=["local", "dask"], choices=sorted(BACKENDS))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--out", default=str(HERE / "results" / "scale.json"))
    parser.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="local", help=argparse.SUPPRESS)
    return parser


def _shard_pool(folder: Path, fmt: str) -> list[Path]:
    """``POOL_SHARDS`` distinct shard files of ``SHARD_SIZE`` images (made once)."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = []
    for k in range(POOL_SHARDS):
        path = folder / f"pool-{k:03d}{SUFFIX[fmt]}"
        if not (folder / f".{path.name}.done").exists():
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            WRITERS[fmt](path, synthetic_images(SHARD_SIZE, IMAGE_SIZE, 3, seed=k))
            (folder / f".{path.name}.done").touch()
        pool.append(path)
    return pool


def _session(path: Path, folder: Path, fmt: str, batch_size: int) -> Path:
    """A session over ``folder``'s shards with a cycle-1 checkpoint of the untrained model."""
    from napari_anomalymatch.core.config import DataConfig, ModelConfig, ScoreConfig, SessionConfig
    from napari_anomalymatch.core.session import Session

    config = SessionConfig(data=DataConfig(source=str(folder / f"*{SUFFIX[fmt]}")),
                           model=ModelConfig(image_size=IMAGE_SIZE), score=ScoreConfig(batch_size=batch_size))
    with Session.create(path, config, exist_ok=True) as session:
        if session.model.latest_checkpoint() is None:
            session.trainer.cycle = 1  # scoring speed does not depend on training; skip it
            session.model.save_checkpoint()
    return path


def _measure(session: Path, backend: str, batch_size: int) -> dict:
    """Run one scoring in a child process; sample the RSS of its whole process tree."""
    import psutil

    load_before = os.getloadavg()[0]
    command = [sys.executable, __file__, "--run-one", str(session), "--backend", backend,
               "--batch-size", str(batch_size)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    root = psutil.Process(child.pid)
    peak_tree, peak_main, processes, cpu_seconds = 0, 0, 1, {}
    while child.poll() is None:
        tree = _tree_sample(root)
        if tree:
            peak_tree = max(peak_tree, sum(rss for rss, _ in tree.values()))
            processes = max(processes, len(tree))
            peak_main = max(peak_main, tree.get(child.pid, (0, 0))[0])
            cpu_seconds.update({pid: cpu for pid, (_, cpu) in tree.items()})
        time.sleep(0.2)
    output = child.stdout.read().strip().splitlines()
    if child.returncode != 0 or not output:
        raise RuntimeError(f"scoring {session} with {backend} failed (exit {child.returncode})")
    record = json.loads(output[-1])
    cpu = sum(cpu_seconds.values())
    record.update(backend=backend if backend == "local" else "dask-localcluster-2", peak_rss_mb=peak_tree / 2**20,
                  peak_rss_main_mb=peak_main / 2**20, max_processes=processes, cpu_seconds=cpu,
                  cpu_share=cpu / (record["seconds"] * os.cpu_count()),
                  load_average_before=load_before, load_average_after=os.getloadavg()[0], cpus=os.cpu_count(),
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return record


def _tree_sample(root) -> dict[int, tuple[int, float]]:
    """(RSS, CPU seconds so far) of ``root`` and every process under it."""
    import psutil

    found = {}
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                found[process.pid] = (process.memory_info().rss, times.user + times.system)
        except psutil.NoSuchProcess:
            continue
    return found


def _run_one(session_path: Path, backend: str, batch_size: int) -> int:
    """(child) Score the session afresh and print one JSON line."""
    import torch

    from napari_anomalymatch.core.scoring.run import run_to_end
    from napari_anomalymatch.core.session import Session

    with Session.open(session_path) as session:
        shutil.rmtree(session.runs.directory(1), ignore_errors=True)
        n_images = len(session.collection)
        started = time.perf_counter()
        if BACKENDS[backend] is None:
            result = run_to_end(session.score())
            cluster_seconds = 0.0
        else:
            from napari_anomalymatch.core.scoring.cluster import connect

            with connect(BACKENDS[backend]) as cluster:
                cluster_seconds = time.perf_counter() - started
                result = run_to_end(session.score(cluster))
        seconds = time.perf_counter() - started
    assert result.n_scored == n_images and np.isfinite(np.asarray(result.scores[:1000])).all()
    print(json.dumps({"images_per_second": n_images / seconds, "seconds": seconds,
                      "seconds_starting_cluster": cluster_seconds, "image_size": IMAGE_SIZE,
                      "batch_size": batch_size, "torch_threads": torch.get_num_threads(),
                      "parquet_written": result.catalogue is not None}))
    return 0


def _merge(path: Path, record: dict) -> None:
    data = json.loads(path.read_text()) if path.exists() else {"runs": []}
    key = (record["n_images"], record["format"], record["backend"])
    runs = [r for r in data.get("runs", []) if (r["n_images"], r.get("format"), r["backend"]) != key]
    runs.append(record)
    runs.sort(key=lambda r: (r.get("format", ""), r["backend"], r["n_images"]))
    data["runs"] = runs
    data["description"] = ("Scoring 64 px uint8 RGB cutouts in shards of 2,500 images with an EfficientNet-Lite0 "
                           "session on this machine (benchmarks/scale.py); images_per_second includes model "
                           "preparation, merging and the Parquet tables; peak_rss_mb sums the RSS of the scoring "
                           "process and all its children (loader and Dask workers), peak_rss_main_mb is the "
                           "scoring process alone; cpu_seconds is the CPU time of them all and cpu_share the "
                           "fraction of the machine's cores they got. The 2 cores are shared with other work: "
                           "see load_average_*.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
