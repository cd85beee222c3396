"""A first ranking with zero labels: how unusual each image's pretrained embedding is.

The embedding is the linear probe's (``learning.probe.FrozenEmbedder``: the frozen ImageNet
network, with morphology statistics on single-band images), the statistics scaled on a reference
sample of the collection as the probe's are (``statistics_of``, ``probe_input``). Two novelty
scores are offered:

* ``knn``: the mean cosine distance to the ``K_NEIGHBOURS`` nearest images of the reference
  sample (exact; an image of the sample is never its own neighbour);
* ``isolation-forest``: scikit-learn's isolation forest fitted on the reference sample, the
  baseline of Astronomaly (Lochner & Bassett 2021); the score is minus its ``score_samples``.

Only the reference sample is held in memory; the collection is then streamed through the
embedder part by part, like a trained model's scoring run (``run.score_parts``), so the scores
land in the same resumable store and tables.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..config import check_novelty_method
from ..errors import ConfigError
from ..io.base import ImageCollection
from ..learning.probe import FrozenEmbedder, probe_input, statistics_of
from ..loading import iterate_batches
from ..transforms import Normaliser

K_NEIGHBOURS = 10
REFERENCE_SAMPLE = 8192  # images the novelty is measured against: exact k-NN stays cheap
# cosine similarity above 1 - this is an image meeting itself (embedded in another batch)
SELF_TOLERANCE = 1e-4


@dataclass(frozen=True)
class EmbedProgress:
    """How many images of the reference sample are embedded."""

    n_done: int
    n_total: int


def reference_indices(n_images: int, seed: int, sample: int = REFERENCE_SAMPLE) -> np.ndarray:
    """The sorted indices of the reference sample (all images of a small collection)."""
    if n_images <= sample:
        return np.arange(n_images, dtype=np.int64)
    return np.sort(np.random.default_rng([seed, 20]).choice(n_images, size=sample, replace=False))


class NoveltyScorer:
    """Scores batches like ``inference.ScoringModel`` (``start(images, valid).result()``), by novelty.

    Build one with ``fit_novelty``; ``reference`` are the reference sample's probe inputs and
    ``reference_index`` their collection indices.
    """

    def __init__(self, embedder: FrozenEmbedder, statistics, method: str, reference: torch.Tensor,
                 reference_index: np.ndarray, device: torch.device, seed: int) -> None:
        self.embedder = embedder
        self.statistics = statistics
        self.method = check_novelty_method(method)
        self.reference = reference
        self.reference_index = reference_index
        self.device = device
        self.forest = None
        if method == "isolation-forest":
            from sklearn.ensemble import IsolationForest

            self.forest = IsolationForest(n_estimators=200, random_state=seed).fit(reference.numpy())

    @contextlib.contextmanager
    def tuned(self) -> Iterator[None]:
        yield

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """What the novelty is measured on: the probe's input of each image, on the CPU."""
        with torch.inference_mode():
            embedding = self.embedder.embed(images.to(self.device).float()).float().cpu()
        stats = self.statistics
        return probe_input(embedding, stats.centre.cpu(), stats.extra_scale.cpu(),
                           torch.tensor(stats.extra_limit))

    def novelty(self, features: torch.Tensor) -> np.ndarray:
        """Novelty of images with these ``features`` (larger: more unusual)."""
        if self.forest is not None:
            return (-self.forest.score_samples(features.numpy())).astype(np.float32)
        k = min(K_NEIGHBOURS, len(self.reference) - 1)
        nearest = (features @ self.reference.T).topk(k + 1, dim=1).values
        # an image of the reference sample finds itself first (similarity 1): skip that one
        is_self = nearest[:, 0] > 1 - SELF_TOLERANCE
        chosen = torch.where(is_self[:, None], nearest[:, 1:], nearest[:, :-1])
        return (1.0 - chosen).mean(1).numpy().astype(np.float32)

    def start(self, images: torch.Tensor, valid=None) -> _Done:
        features = self.features(images)
        scores = self.novelty(features)
        embeddings = features.numpy().astype(np.float16)  # stored: "more like this" and the map read them
        if valid is not None:
            unusable = ~np.asarray(valid, dtype=bool)
            scores[unusable] = np.nan
            embeddings[unusable] = np.nan
        return _Done(scores, embeddings)


@dataclass(frozen=True)
class _Done:
    scores: np.ndarray
    embedded: np.ndarray

    def result(self) -> np.ndarray:
        return self.scores

    def embeddings(self) -> np.ndarray:
        return self.embedded


def embed_reference(embedder: FrozenEmbedder, collection: ImageCollection, normaliser: Normaliser,
                    image_size: int, indices: np.ndarray, device: torch.device, batch_size: int = 256,
                    num_workers: int = -1):
    """Embeddings ``(N, D)`` of the usable images among ``indices`` and those images' indices,
    yielding ``EmbedProgress``."""
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    out, kept, done = [], [], 0
    with iterate_batches(collection, normaliser, image_size, batches, num_workers, device) as loaded:
        for batch, (images, valid) in zip(batches, loaded, strict=True):
            with torch.inference_mode():
                embedding = embedder.embed(images.float()).float().cpu()
            keep = valid.numpy().astype(bool)
            out.append(embedding[torch.from_numpy(keep)])
            kept.append(batch[keep])
            done += len(batch)
            yield EmbedProgress(done, len(indices))
    if not kept or sum(len(k) for k in kept) < 2:
        raise ConfigError(f"{collection.source}: fewer than two usable images; an unsupervised ranking "
                          "needs a collection to compare each image with")
    return torch.cat(out), np.concatenate(kept)


def fit_novelty(embedder: FrozenEmbedder, collection: ImageCollection, normaliser: Normaliser,
                image_size: int, method: str, device: torch.device, seed: int, num_workers: int = -1,
                sample: int = REFERENCE_SAMPLE):
    """Embed the reference sample and fit the novelty ``method`` on it (yields ``EmbedProgress``;
    returns a ``NoveltyScorer``)."""
    check_novelty_method(method)
    indices = reference_indices(len(collection), seed, sample)
    embeddings, kept = yield from embed_reference(embedder, collection, normaliser, image_size, indices,
                                                  device, num_workers=num_workers)
    # the morphology statistics scaled as the probe's, on the same sample; the network's part is
    # not centred: centred, a typical image's small remainder points anywhere, so typical images
    # would look far apart under a cosine distance
    statistics = statistics_of(embeddings, embedder.extra_dims, centre=False)
    reference = probe_input(embeddings, statistics.centre, statistics.extra_scale,
                            torch.tensor(statistics.extra_limit))
    return NoveltyScorer(embedder, statistics, method, reference, kept, device, seed)

