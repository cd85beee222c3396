"""Scoring a session's whole collection into its score runs (``core.scoring.runs``): with the
latest trained model, here or on a Dask cluster, or, before any training, by how unusual each
image's pretrained embedding is.  A stopped run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

import torch

from ..config import SessionConfig, check_novelty_method
from ..errors import NotTrainedError, SessionError
from ..io.base import ImageCollection
from ..learning.models import build_model, choose_device
from ..learning.probe import FrozenEmbedder
from ..learning.sessionmodel import SessionModel
from ..transforms import Normaliser
from .cluster import score_on_cluster, scoring_job
from .novelty import EmbedProgress, fit_novelty
from .run import (
    ScoreBatch,
    ScoreResult,
    finish_stored_run,
    model_fingerprint,
    prepare_run_scorer,
    score_collection,
    score_parts,
)
from .runs import ScoreRuns
from .store import ScoreManifest


def score_manifest(collection: ImageCollection, config: SessionConfig, model_hash: str, cycle: int,
                   method: str = "", embeddings: bool = False) -> ScoreManifest:
    """What a run of ``collection`` scored with ``config``'s preprocessing records of itself."""
    shard_table = getattr(collection, "shard_table", None)
    preprocessing = repr((config.data.normalisation, config.model.image_size, config.score.tta))
    return ScoreManifest(
        collection=collection.fingerprint(), n_images=len(collection), model_hash=model_hash, cycle=cycle,
        part_size=config.score.part_size, preprocessing=preprocessing,
        shards=shard_table() if shard_table is not None else (), method=method, embeddings=embeddings)


def score_with_model(model: SessionModel, runs: ScoreRuns, collection: ImageCollection, normaliser: Normaliser,
                     config: SessionConfig, cluster: Any | None = None) -> Generator[ScoreBatch, None, ScoreResult]:
    """Score ``collection`` with the session's latest model into that cycle's run (embeddings
    stored); ``cluster``: a ``distributed`` cluster to spread the shards over, None scores here.

    Raises
    ------
    NotTrainedError
        No model is trained yet.
    """
    if model.cycle == 0:
        raise NotTrainedError(f"{runs.folder}: no model yet; run a training cycle before scoring, or "
                              f"'anomalymatch score {runs.folder} --unsupervised' for a first ranking "
                              "without labels")
    trainer = model.trainer
    network = trainer.scoring_model
    model_hash = model_fingerprint(network)
    store = runs.store(trainer.cycle, score_manifest(collection, config, model_hash, trainer.cycle, embeddings=True))
    size, score = config.model.image_size, config.score
    if cluster is None:
        return (yield from score_collection(network, collection, normaliser, size, score, trainer.device,
                                            store=store))
    n_todo = sum(len(part) for part in store.remaining_parts())
    # chosen (or read back) here, once, so every worker and every resume scores alike
    path = prepare_run_scorer(network, collection, normaliser, size, score, trainer.device, store,
                              len(collection)).path
    forced = dataclasses.replace(config, score=path.forced(score))
    job = scoring_job(network, model_hash, forced, trainer.in_chans, n_todo, embeddings=True)
    n_scored, rate = yield from score_on_cluster(cluster, job, collection, normaliser, store)
    return finish_stored_run(store, score.top_k, model_hash, n_scored, rate, tables_for=collection)


def score_without_labels(runs: ScoreRuns, collection: ImageCollection, normaliser: Normaliser,
                         config: SessionConfig, method: str, cycle: int,
                         ) -> Generator[EmbedProgress | ScoreBatch, None, ScoreResult]:
    """A first ranking with zero labels: every image scored by how unusual its pretrained
    embedding is (``core.scoring.novelty``), stored as cycle 0's run marked ``unsupervised:<method>``.

    Yields the reference sample's ``EmbedProgress`` then a ``ScoreBatch`` per batch.

    Raises
    ------
    ConfigError
        An unknown ``method``.
    SessionError
        The session has a trained model already (``cycle`` > 0: its ranking is the one reviewed).
    """
    check_novelty_method(method)
    if cycle > 0:
        raise SessionError(f"{runs.folder}: the session has a trained model (cycle {cycle}) whose "
                           "ranking the review shows; the unsupervised ranking is for a start "
                           "without labels: run 'anomalymatch score' for the model's ranking")
    probe, channels = config.probe, collection.shape[2]
    with torch.random.fork_rng(devices=[]):  # the new head's random weights leave the caller's RNG alone
        network = build_model(config.model, channels).model
    embedder = FrozenEmbedder(network, probe.size, probe.layers, probe.uses_morphology(channels))
    device = choose_device(config.model.device)
    embedder.to(device)
    key = f"unsupervised:{method}"
    fingerprint = model_fingerprint(embedder)
    store = runs.store(0, score_manifest(collection, config, f"{method}-{fingerprint}", cycle=0, method=key,
                                         embeddings=True))
    size, score = config.model.image_size, config.score
    scorer = yield from fit_novelty(embedder, collection, normaliser, size, method, device,
                                    config.train.seed, score.num_workers)
    store.record_inference(key)
    n_scored, rate = yield from score_parts(scorer, collection, normaliser, size, score,
                                            store.remaining_parts(), store.write_part, len(collection))
    return finish_stored_run(store, score.top_k, store.manifest.model_hash, n_scored, rate,
                             tables_for=collection)
