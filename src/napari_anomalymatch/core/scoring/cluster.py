"""Scoring on a Dask cluster, when one node is not enough.

One task per shard (per part for a single large file): each worker loads the
model once (``cluster_worker.ScoringModelPlugin``), reads its shards itself and
sends back their scores; this process writes each shard's part file as it
arrives, so a run stopped at any point resumes by skipping finished shards,
exactly like a local run, and the merged outputs are the same.

``dask.distributed`` is optional: ``pip install napari-anomalymatch[distributed]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import SessionConfig
from ..errors import ConfigError
from ..heads import LPFT
from ..io.base import ImageCollection
from ..transforms import Normaliser
from .run import ScoreBatch
from .store import Part, ScoreStore

INSTALL_HINT = "pip install napari-anomalymatch[distributed]"
SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")
IN_FLIGHT_PER_WORKER = 2


class LoaderFallbackWarning(UserWarning):
    """Dask workers could not start loader processes; they decode images in their own thread."""


@dataclass(frozen=True)
class DaskCluster:
    """A connected Dask client; ``torch_threads`` per worker when we started the cluster."""

    client: Any
    address: str
    torch_threads: int | None = None


def require_dask() -> Any:
    """The ``distributed`` module, or a ConfigError saying how to install it."""
    try:
        import distributed
    except ImportError as err:
        raise ConfigError(f"scoring on a Dask cluster needs dask.distributed: {INSTALL_HINT}") from err
    return distributed


def parse_cluster_address(text: str) -> tuple[str, int | None]:
    """``'local'`` / ``'local:N'`` -> ``('local', N)``; a scheduler address -> ``(address, None)``.

    Raises
    ------
    ConfigError
        For anything else, naming the forms accepted.
    """
    text = text.strip()
    if text == "local":
        return "local", None
    if text.startswith("local:"):
        count = text.split(":", 1)[1]
        if count.isdigit() and int(count) >= 1:
            return "local", int(count)
    elif text.startswith(SCHEMES):
        return text, None
    elif text.count(":") == 1 and text.rsplit(":", 1)[1].isdigit():
        return f"tcp://{text}", None
    raise ConfigError(
        f"--dask {text!r} is not understood; use 'local', 'local:N' (N worker processes here) or a "
        "scheduler address such as tcp://scheduler:8786"
    )


@contextlib.contextmanager
def connect(address: str) -> Iterator[DaskCluster]:
    """Connect to a Dask cluster for the duration of a ``with`` block.

    Parameters
    ----------
    address
        ``'local'`` (a LocalCluster here: one worker per GPU, else one per four
        CPU cores, at least one), ``'local:N'`` (N workers) or a scheduler
        address (``tcp://host:8786``).  A local cluster's workers may start
        loader processes and share the CPU cores between them; it is closed
        at the end of the block.

    Yields
    ------
    DaskCluster

    Raises
    ------
    ConfigError
        If dask.distributed is missing or the address is not understood.
    """
    distributed = require_dask()
    import dask

    target, count = parse_cluster_address(address)
    if target != "local":
        with distributed.Client(target) as client:
            yield DaskCluster(client, target)
        return
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = count or (torch.cuda.device_count() if torch.cuda.is_available() else max(1, cpus // 4))
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
    try:
        with distributed.Client(cluster) as client:
            yield DaskCluster(client, f"local:{count}", torch_threads=max(1, cpus // count))
    finally:
        cluster.close()


def scoring_job(model: torch.nn.Module, model_hash: str, config: SessionConfig, in_chans: int,
                n_images: int, embeddings: bool = False) -> Any:
    """The ``ScoringJob`` sent to every worker: the model's weights and the run's settings."""
    require_dask()
    from safetensors.torch import save

    # deferred: the worker module imports dask.distributed, an optional extra
    from .cluster_worker import BUFFER_PREFIX, ScoringJob

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for name, buffer in model.named_buffers():  # input scaling is not part of the state dict
        if name not in tensors:
            tensors[f"{BUFFER_PREFIX}{name}"] = buffer.detach().cpu().contiguous()
    return ScoringJob(weights=save(tensors), model_hash=model_hash, model=config.model, in_chans=in_chans,
                      image_size=config.model.image_size, score=config.score, n_images=n_images,
                      head=getattr(model, "head", None), embeddings=embeddings, **_frozen_settings(model))


def _frozen_settings(model: torch.nn.Module) -> dict[str, Any]:
    """What a worker must build besides the weights: a probe-initialised network's morphology, and
    the input size and layers of a scorer's frozen embedder (none: it has none)."""
    settings: dict[str, Any] = {}
    network = getattr(model, "model", None)
    if getattr(network, "component_name", None) == LPFT:
        settings["network_morphology"] = network.morphology
    frozen = getattr(model, "frozen", None)
    if frozen is not None:
        settings.update(frozen_size=frozen.input_size, frozen_layers=frozen.layers,
                        frozen_morphology=frozen.morphology)
    return settings


def score_on_cluster(cluster: DaskCluster, job: Any, collection: ImageCollection, normaliser: Normaliser,
                     store: ScoreStore) -> Generator[ScoreBatch, None, tuple[int, float]]:
    """Score ``store``'s missing parts on ``cluster``, one task per shard, writing parts as they come.

    Parameters
    ----------
    cluster
        From ``connect`` (or ``DaskCluster(client, address)`` around your own client).
    job
        From ``scoring_job``: the weights and settings every worker loads once.
    collection, normaliser
        What to score and how to normalise it; the workers must see the same files.
    store
        The run's folder; its finished parts are skipped.

    Yields
    ------
    ScoreBatch
        One per finished shard (or part).

    Returns
    -------
    ``(n_scored, images_per_second)``; a worker's error is raised here.
    """
    distributed = require_dask()
    # deferred: the worker module imports dask.distributed, an optional extra
    from .cluster_worker import ScoringModelPlugin, score_shard

    client = cluster.client
    groups = shard_groups(store.remaining_parts())
    n_todo = sum(len(p) for group in groups for p in group)
    n_before = store.manifest.n_images - n_todo
    client.register_plugin(ScoringModelPlugin(job, cluster.torch_threads), name=job.plugin_name)
    started, n_done, warned = time.perf_counter(), 0, False
    submitted: set[Any] = set()  # futures not yet handled
    try:
        shared = client.scatter(collection, broadcast=True, hash=False) if groups else None
        waiting = distributed.as_completed()
        to_submit = iter(groups)

        def submit_more() -> None:
            # a few tasks per worker at a time, so shards go to whichever worker frees up
            while waiting.count() < IN_FLIGHT_PER_WORKER * max(1, len(client.nthreads())):
                group = next(to_submit, None)
                if group is None:
                    return
                future = client.submit(score_shard, job.plugin_name, shared, normaliser, group, pure=False,
                                       retries=1, key=f"anomalymatch-score-{job.model_hash}-{group[0].number}")
                submitted.add(future)
                waiting.add(future)

        submit_more()
        for future in waiting:
            answer = future.result()
            submitted.discard(future)
            future.release()
            for number, scores, embeddings in answer.parts:
                store.write_part(number, scores, embeddings)
            warned = warned or _warn_if_no_loaders(answer, job)
            n_done += sum(len(s) for _, s, _ in answer.parts)
            submit_more()
            yield _shard_batch(store, answer, n_before + n_done, store.manifest.n_images,
                               n_done / max(time.perf_counter() - started, 1e-9))
    finally:
        client.cancel(list(submitted))
        client.unregister_worker_plugin(job.plugin_name)
    return n_todo, n_todo / max(time.perf_counter() - started, 1e-9)


def shard_groups(parts: list[Part]) -> list[list[Part]]:
    """Parts grouped into tasks: all the parts of one shard together; unsharded parts alone."""
    groups: list[list[Part]] = []
    for part in parts:
        if groups and part.shard and groups[-1][-1].shard == part.shard:
            groups[-1].append(part)
        else:
            groups.append([part])
    return groups


def _shard_batch(store: ScoreStore, answer: Any, n_done: int, n_total: int, rate: float) -> ScoreBatch:
    ranges = [store.manifest.part_range(number) for number, _, _ in answer.parts]
    indices = np.concatenate([np.arange(start, stop, dtype=np.int64) for start, stop in ranges])
    scores = np.concatenate([scores for _, scores, _ in answer.parts])
    return ScoreBatch(indices, scores, n_done, n_total, rate)


def _warn_if_no_loaders(answer: Any, job: Any) -> bool:
    if answer.loader_workers == 0 and job.score.num_workers != 0:
        warnings.warn(
            f"Dask worker {answer.worker} runs as a daemonic process, so it cannot start loader "
            "processes and decodes images in its own thread; start workers with "
            "DASK_DISTRIBUTED__WORKER__DAEMON=False to decode in parallel", LoaderFallbackWarning,
            stacklevel=3)
        return True
    return False


__all__ = ["DaskCluster", "connect", "parse_cluster_address", "require_dask",
           "score_on_cluster", "scoring_job", "shard_groups"]
