"""What runs on a Dask worker: the model, loaded once, and the scoring of whole shards.

Imported only on workers and by ``core.scoring.cluster`` once ``dask.distributed``
is known to be installed.  A ``ScoringModelPlugin`` builds the model from the
job's weights when it is registered on a worker (and on every worker that
joins later); ``score_shard`` tasks then use it, one at a time per worker.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ..config import ModelConfig, ScoreConfig
from ..io.base import ImageCollection
from ..learning.lpft import ProbedNetwork
from ..learning.models import build_model, choose_device
from ..learning.probe import AnomalyScorer, FrozenEmbedder, LinearProbe
from ..transforms import Normaliser
from .inference import ScoringModel, prepare_scoring_model
from .run import embedding_network, score_parts
from .store import Part

BUFFER_PREFIX = "__buffer__."


@dataclass(frozen=True)
class ScoringJob:
    """Everything a worker needs besides the images: the weights and the settings."""

    weights: bytes  # the scoring model's state dict in safetensors format
    model_hash: str
    model: ModelConfig
    in_chans: int
    image_size: int
    score: ScoreConfig
    n_images: int  # images to score in the whole run (chooses the inference graph as locally)
    head: str | None = None  # an AnomalyScorer's head; None: a bare classifier
    frozen_size: int | None = None  # its frozen embedder's input size; None: it has none
    frozen_layers: str = "head"  # what its frozen embedder pools (ProbeConfig.layers)
    frozen_morphology: bool = False  # whether it adds morphology statistics
    network_morphology: bool | None = None  # a ProbedNetwork's (head lpft) morphology; None: a classifier
    embeddings: bool = False  # whether each part's embeddings come back too (the run stores them)

    @property
    def plugin_name(self) -> str:
        return f"napari-anomalymatch-model-{self.model_hash}"


@dataclass(frozen=True)
class ShardScores:
    """A task's answer: the scores of each part it scored and how it ran."""

    parts: list[tuple[int, np.ndarray, np.ndarray | None]]  # number, scores, embeddings (None: not asked)
    worker: str
    loader_workers: int
    graph: str


class ScoringModelPlugin(WorkerPlugin):
    """Holds one worker's prepared model; ``torch_threads`` sets its intra-op threads."""

    def __init__(self, job: ScoringJob, torch_threads: int | None = None) -> None:
        self.job = job
        self.torch_threads = torch_threads
        self.scorer: ScoringModel | None = None
        self.lock: threading.Lock | None = None

    def setup(self, worker: Any) -> None:
        self.lock = threading.Lock()
        threads = self.torch_threads or getattr(getattr(worker, "state", None), "nthreads", None)
        if threads:
            torch.set_num_threads(int(threads))
        self.scorer = _build_scorer(self.job, _device_for(self.job.model, worker))

    def teardown(self, worker: Any) -> None:
        self.scorer = None


def score_shard(plugin_name: str, collection: ImageCollection, normaliser: Normaliser,
                parts: list[Part]) -> ShardScores:
    """Score ``parts`` (one shard's) on this worker with the plugin's model."""
    worker = get_worker()
    plugin = worker.plugins[plugin_name]
    job: ScoringJob = plugin.job
    config = job.score
    if multiprocessing.current_process().daemon and config.num_workers != 0:
        config = dataclasses.replace(config, num_workers=0)  # daemonic workers cannot have children
    found: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def keep(number: int, scores: np.ndarray, embeddings: np.ndarray | None = None) -> None:
        found[number] = (scores, embeddings)

    with plugin.lock:
        for _ in score_parts(plugin.scorer, collection, normaliser, job.image_size, config, parts, keep):
            pass
    return ShardScores([(p.number, *found[p.number]) for p in parts], str(worker.address),
                       config.num_workers, plugin.scorer.graph)


def _build_scorer(job: ScoringJob, device: torch.device) -> ScoringModel:
    from safetensors.torch import load

    built = build_model(dataclasses.replace(job.model, pretrained=False), job.in_chans)
    tensors = load(job.weights)
    state = {k: v for k, v in tensors.items() if not k.startswith(BUFFER_PREFIX)}
    module: torch.nn.Module = built.model
    if job.network_morphology is not None:
        module = ProbedNetwork(built.model, job.network_morphology)
    if job.head is not None:
        probe = LinearProbe.from_state(state)
        frozen = None
        if job.frozen_size is not None:  # its weights come with the job, like the model's
            config = dataclasses.replace(job.model, pretrained=False)
            frozen = FrozenEmbedder(build_model(config, job.in_chans).model, job.frozen_size, job.frozen_layers,
                                    job.frozen_morphology)
        module = AnomalyScorer(module, probe, job.head, frozen)
    module.load_state_dict(state, strict=True)
    buffers = dict(module.named_buffers())
    for key, value in tensors.items():
        if key.startswith(BUFFER_PREFIX):
            buffers[key[len(BUFFER_PREFIX):]].copy_(value)
    shape = (job.in_chans, job.image_size, job.image_size)
    module = module.to(device)
    scorer = prepare_scoring_model(module, job.score, shape, device, n_images=job.n_images)
    if job.embeddings:
        scorer.store_embeddings(lambda: embedding_network(module, device))
    return scorer


def _device_for(model: ModelConfig, worker: Any) -> torch.device:
    """The job's device; with several GPUs, LocalCluster worker ``k`` takes GPU ``k mod n``."""
    device = choose_device(model.device)
    if device.type == "cuda" and torch.cuda.device_count() > 1:
        tail = str(getattr(worker, "name", "0")).rsplit("-", 1)[-1]
        number = int(tail) if tail.isdigit() else 0
        device = torch.device("cuda", number % torch.cuda.device_count())
    return device
