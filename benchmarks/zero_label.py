"""The first ranking with zero labels (``Session.score_unsupervised``) on the benchmark sets.

For FIRST's four classes and five CIFAR-10 classes (seed 0, every image of the quality
benchmark's manifest), the k-NN and isolation-forest novelty of the pretrained embedding are
measured with the paper's metrics. The images are embedded once per collection (FIRST: one
for its four classes; CIFAR-10: one per class; cached under /tmp, never in the repository) and
both methods read the same embeddings and reference sample, exactly as ``Session.score_unsupervised`` computes them.

Usage::

    nice -n 5 python benchmarks/zero_label.py [--datasets first cifar10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # noqa: E402

CACHE = Path("/tmp/anomalymatch-zero-label")
OUT = HERE / "results" / "zero_label.json"
CLASSES = {"first": quality.FIRST_ANOMALIES, "cifar10": quality.CIFAR_ANOMALIES}
SHARED_COLLECTION = {"first": True, "cifar10": False}
SEED = 0


def manifest(dataset: str, cls: str) -> Path:
    if dataset == "first":
        return quality.first_manifest(cls, SEED)
    return quality.cifar_manifest(quality.cifar_root(quality.CIFAR_ARCHIVE), cls, SEED)


def novelty_scores(collection, seed: int = SEED) -> tuple[dict[str, np.ndarray], float]:
    """Each method's scores of every image of ``collection`` and the seconds it took."""
    from napari_anomalymatch.core.config import NOVELTY_METHODS, SessionConfig
    from napari_anomalymatch.core.io.autocrop import resolve_automatic
    from napari_anomalymatch.core.learning.models import build_model
    from napari_anomalymatch.core.learning.probe import FrozenEmbedder
    from napari_anomalymatch.core.loading import iterate_batches
    from napari_anomalymatch.core.runs import run_to_end
    from napari_anomalymatch.core.scoring.novelty import NoveltyScorer, fit_novelty
    from napari_anomalymatch.core.transforms import Normaliser

    started = time.perf_counter()
    config = resolve_automatic(SessionConfig(), collection)
    channels, size = collection.shape[2], config.model.image_size
    embedder = FrozenEmbedder(build_model(config.model, channels).model, config.probe.size,
                              config.probe.layers, config.probe.uses_morphology(channels))
    normaliser = Normaliser(config.data.normalisation, collection.value_range)
    device = torch.device("cpu")
    knn = run_to_end(fit_novelty(embedder, collection, normaliser, size, "knn", device, seed))
    scorers = {"knn": knn}
    for method in list(NOVELTY_METHODS)[1:]:
        scorers[method] = NoveltyScorer(embedder, knn.statistics, method, knn.reference,
                                        knn.reference_index, device, seed)
    batches = [np.arange(i, min(i + 256, len(collection))) for i in range(0, len(collection), 256)]
    features = []
    with iterate_batches(collection, normaliser, size, batches, -1, device) as loaded:
        for images, _ in loaded:
            features.append(knn.features(images))
    features = torch.cat(features)
    return {name: s.novelty(features) for name, s in scorers.items()}, time.perf_counter() - started


def measure(dataset: str) -> dict:
    from napari_anomalymatch.core.evaluation.manifest import read_benchmark
    from napari_anomalymatch.core.evaluation.metrics import ranking_metrics

    classes = CLASSES[dataset]
    benchmarks = {cls: read_benchmark(manifest(dataset, cls)) for cls in classes}
    rows, seconds, sizes = {}, {}, {}
    for cls, benchmark in benchmarks.items():
        # every FIRST manifest holds all 2,158 images, so one embedding serves its four classes;
        # each CIFAR-10 manifest is its own collection (45,000 normal images + one class's anomalies)
        source = benchmarks[classes[0]] if SHARED_COLLECTION[dataset] else benchmark
        name = f"{dataset}-seed{SEED}" if SHARED_COLLECTION[dataset] else f"{dataset}-{cls}-seed{SEED}"
        scores, seconds[name] = cached_scores(name, source.collection)
        sizes[cls] = len(source.collection)
        ids = {image_id: i for i, image_id in enumerate(source.collection.ids())}
        order = np.array([ids[i] for i in benchmark.collection.ids()])  # the same images, maybe reordered
        rows[cls] = {}
        for method, values in scores.items():
            m = ranking_metrics(values[order], benchmark.is_anomaly)
            rows[cls][method] = {key: m[key] for key in ("auroc", "auprc", "precision_top1pct",
                                                          "anomalies_in_top50", "n_scored", "n_anomalies")}
    return {"n_images": max(sizes.values()), "seconds_to_embed_and_score": round(sum(seconds.values()), 1),
            "collections_embedded": len(seconds), "classes": rows}


def cached_scores(name: str, collection) -> tuple[dict[str, np.ndarray], float]:
    """``novelty_scores`` of ``collection``, kept under /tmp between calls."""
    cache = CACHE / f"{name}.npz"
    if cache.exists():
        stored = np.load(cache)
        return {k: stored[k] for k in stored.files if k != "seconds"}, float(stored["seconds"])
    scores, seconds = novelty_scores(collection)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, seconds=seconds, **scores)
    return scores, seconds


def host_cpu() -> str:
    from napari_anomalymatch.core.scoring.pathchoice import _processor  # the name the inference cache keys on

    return _processor()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(CLASSES), choices=list(CLASSES))
    args = parser.parse_args(argv)
    results = json.loads(OUT.read_text()) if OUT.exists() else {"datasets": {}}
    for dataset in args.datasets:
        found = measure(dataset)
        found["host"] = {"cpu": host_cpu(), "torch": torch.__version__, "threads": torch.get_num_threads()}
        results["datasets"][dataset] = found
        print(json.dumps(found, indent=1))
    results["seed"] = SEED
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(f"results: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
