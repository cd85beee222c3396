"""What the unlabelled images can teach a linear head on the frozen network's features.

The default network keeps its pretrained backbone, so all FixMatch can change is a linear head
on fixed features: the probe's features. This script replays the paper's protocol (3 cycles;
after cycles 1 and 2 the oracle labels the 10 highest-scoring true anomalies and normal images
still unlabelled) with heads fitted in closed form on those features, each using the unlabelled
images in a different way:

* ``probe``: logistic regression on the labelled images alone at the probe's default C, the
  baseline; at a third and three times that C it shows how far a run moves when only the
  oracle's path changes;
* ``self-training``: also fitted on the unlabelled pool with the probe's soft pseudo-labels;
* ``neighbour-smoothed``: the same, each pseudo-label averaged with those of its 10 nearest
  neighbours in a bank of 2,048 unlabelled images (the memory bank of CoMatch/SimMatch);
* ``unlabelled-as-normal``: the pool taken as normal (positive-unlabelled learning), cross-fitted
  so no image is scored by a head that was fitted on it;
* ``graph-smoothed score``: the probe's score averaged with its 10 nearest pool neighbours'.

Every head sees the image as it is (one view), so the probe here differs a little from the
protocol's; the comparison between heads is on the same features and the same oracle.

Usage::

    python benchmarks/frozen_space.py                        # FIRST's 4 classes, CIFAR-10's 5
    python benchmarks/frozen_space.py --datasets first --classes FRI Bent
    python benchmarks/frozen_space.py --render     # the table again from the JSON

Features are cached in ``benchmarks/work/frozen_space``; writes
``benchmarks/results/frozen_space.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_anomalymatch.core.config import ProbeConfig

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import (  # noqa: E402
    CIFAR_ANOMALIES,
    CIFAR_ARCHIVE,
    FIRST_ANOMALIES,
    RESULTS,
    WORK,
    cifar_manifest,
    cifar_root,
    code_version,
    first_manifest,
)

CACHE = WORK / "frozen_space"
SIZE = 64
POOL = 10_000  # TrainConfig.unlabelled_pool_size
BANK = 2_048  # training.CENTRE_SAMPLE: the unlabelled images each cycle embeds anyway
NEIGHBOURS = 10
CYCLES = 3
# name -> (method, options); the first is the baseline every other is compared with.
PROBE_C = ProbeConfig().regularisation
HEADS: dict[str, tuple[str, dict]] = {
    "probe": ("probe", {}),
    f"probe C={PROBE_C / 3:g}": ("probe", {"C": PROBE_C / 3}),
    f"probe C={PROBE_C * 3:g}": ("probe", {"C": PROBE_C * 3}),
    "self-training": ("self", {}),
    "neighbour-smoothed": ("self", {"smoothing": 0.5}),
    "unlabelled-as-normal": ("pu", {}),
    "graph-smoothed score": ("graph", {}),
}


def probe_features(manifest: Path) -> dict[str, np.ndarray]:
    """The probe's inputs (``probe_input`` of the frozen embedder's features, centred on the
    collection) of every image of ``manifest``, with its truth and initial labels; cached."""
    cached = CACHE / f"{manifest.parent.name}-{manifest.stem}.npz"
    if cached.exists():
        return dict(np.load(cached))
    import torch
    from framing import frozen_features

    from napari_anomalymatch.core.config import SessionConfig
    from napari_anomalymatch.core.evaluation.manifest import read_benchmark
    from napari_anomalymatch.core.io.autocrop import resolve_automatic
    from napari_anomalymatch.core.learning.probe import probe_input, statistics_of

    benchmark = read_benchmark(manifest)
    config = SessionConfig()
    config = resolve_automatic(replace(config, model=replace(config.model, image_size=SIZE)), benchmark.collection)
    views, valid, extra_dims = frozen_features(benchmark, config, views=(0,))
    features = views[0]
    statistics = statistics_of(features, extra_dims)
    x = probe_input(features, statistics.centre, statistics.extra_scale, torch.tensor(statistics.extra_limit))
    data = {"x": x.numpy().astype(np.float32), "truth": benchmark.is_anomaly.astype(bool),
            "initial": benchmark.initial_labels.astype(np.int64), "valid": np.asarray(valid, dtype=bool)}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, **data)
    return data


def _logistic(x: np.ndarray, y: np.ndarray, weight: np.ndarray, regularisation: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=regularisation, max_iter=3000).fit(x, y, sample_weight=weight)


def _balanced(labels: np.ndarray) -> np.ndarray:
    """Weights that give each class half of the total, as the probe's class_weight='balanced'."""
    from sklearn.utils.class_weight import compute_sample_weight

    return compute_sample_weight("balanced", labels)


def _probe(x: np.ndarray, labelled: np.ndarray, labels: np.ndarray, regularisation: float):
    return _logistic(x[labelled], labels, _balanced(labels), regularisation)


def head_scores(x: np.ndarray, labelled: np.ndarray, labels: np.ndarray, pool: np.ndarray,
                method: str, C: float = PROBE_C, smoothing: float = 0.0) -> np.ndarray:
    """Log-odds of every image by one head, fitted on the labelled images and the pool."""
    probe = _probe(x, labelled, labels, C)
    scores = probe.decision_function(x)
    if method == "probe":
        return scores
    if method == "graph":
        neighbours = _neighbours(x[pool], x, NEIGHBOURS + 1)[:, 1:]  # skip the first: a pool image's own
        return (scores + scores[pool][neighbours].mean(1)) / 2
    if method == "self":
        pseudo = scores[pool]
        if smoothing:
            bank = pool[:BANK]
            of_neighbours = scores[bank][_neighbours(x[bank], x[pool], NEIGHBOURS)].mean(1)
            pseudo = (1 - smoothing) * pseudo + smoothing * of_neighbours
        p = 1 / (1 + np.exp(-pseudo))
        inputs = np.concatenate([x[labelled], x[pool], x[pool]])
        targets = np.concatenate([labels, np.ones(len(pool), int), np.zeros(len(pool), int)])
        weights = np.concatenate([_balanced(labels), p, 1 - p])  # a soft label as two weighted rows
        return _logistic(inputs, targets, weights, C).decision_function(x)
    if method == "pu":
        # Cross-fitted: each half of the pool is scored by the head fitted on the other half (a head
        # fitted on an image as normal would rank it low); the other images by both heads' mean.
        halves = np.array_split(pool, 2)
        by_half = []
        for half in halves:
            inputs = np.concatenate([x[labelled], x[half]])
            targets = np.concatenate([labels, np.zeros(len(half), int)])
            by_half.append(_logistic(inputs, targets, _balanced(targets), C).decision_function(x))
        out = (by_half[0] + by_half[1]) / 2
        out[halves[0]], out[halves[1]] = by_half[1][halves[0]], by_half[0][halves[1]]
        return out
    raise ValueError(f"unknown head method {method!r}")


def _neighbours(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k).fit(bank).kneighbors(queries, return_distance=False)


def replay_protocol(data: dict[str, np.ndarray], method: str, options: dict, seed: int = 0) -> list[dict]:
    """AUROC/AUPRC of the still-unlabelled images after each cycle, the oracle following the head."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from napari_anomalymatch.core.evaluation.protocol import OracleSettings, oracle_picks

    x, truth, valid = data["x"], data["truth"], data["valid"]
    labels = data["initial"].copy()
    ever = labels >= 0
    rng = np.random.default_rng(seed)
    cycles = []
    for cycle in range(1, CYCLES + 1):
        candidates = np.flatnonzero(~ever & valid)
        pool = np.sort(rng.choice(candidates, size=min(POOL, len(candidates)), replace=False))
        labelled = np.flatnonzero(labels >= 0)
        scores = head_scores(x, labelled, labels[labelled], rng.permutation(pool), method, **options)
        cycles.append({"auroc": float(roc_auc_score(truth[candidates], scores[candidates])),
                       "auprc": float(average_precision_score(truth[candidates], scores[candidates]))})
        if cycle < CYCLES:
            unlabelled = np.zeros(len(x), bool)
            unlabelled[candidates] = True
            picks, _ = oracle_picks(scores, truth, unlabelled, OracleSettings(), seed)
            labels[picks] = truth[picks].astype(np.int64)
            ever[picks] = True
    return cycles


def manifests(datasets: list[str], classes: list[str] | None) -> list[tuple[str, str, Path]]:
    chosen = []
    if "first" in datasets:
        chosen += [("first", c, first_manifest(c, 0)) for c in FIRST_ANOMALIES if not classes or c in classes]
    if "cifar10" in datasets:
        root = cifar_root(CIFAR_ARCHIVE)
        chosen += [("cifar10", c, cifar_manifest(root, c, 0)) for c in CIFAR_ANOMALIES if not classes or c in classes]
    return chosen


def markdown(result: dict) -> str:
    names = list(HEADS)
    lines = ["AUROC / AUPRC of the never-labelled images after the last cycle, every head replaying the "
             "paper's protocol on the frozen network's features (seed 0; the oracle follows each head; "
             "every head, the probe too, is fitted on the images as they are, one view each, so the "
             "probe's figures differ a little from the protocol's).", "",
             "| dataset | class | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for dataset, runs in result["runs"].items():
        for cls, heads in runs.items():
            cells = [f"{heads[n][-1]['auroc']:.3f} / {heads[n][-1]['auprc']:.3f}" for n in names]
            lines.append(f"| {dataset} | {cls} | " + " | ".join(cells) + " |")
        means = [(np.mean([h[n][-1]["auroc"] for h in runs.values()]),
                  np.mean([h[n][-1]["auprc"] for h in runs.values()])) for n in names]
        lines.append(f"| {dataset} | **mean** | " + " | ".join(f"{a:.3f} / {p:.3f}" for a, p in means) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["first", "cifar10"], choices=["first", "cifar10"])
    parser.add_argument("--classes", nargs="+", help="only these anomaly classes")
    parser.add_argument("--render", action="store_true", help="rewrite the table from frozen_space.json")
    args = parser.parse_args(argv)
    if args.render:
        (RESULTS / "frozen_space.md").write_text(markdown(json.loads((RESULTS / "frozen_space.json").read_text())))
        return 0
    result = {"settings": {"size": SIZE, "pool": POOL, "bank": BANK, "neighbours": NEIGHBOURS, "cycles": CYCLES,
                           "oracle": "OracleSettings() (the paper's)", "heads": HEADS, "code": code_version()},
              "runs": {}}
    for dataset, cls, manifest in manifests(args.datasets, args.classes):
        started = time.perf_counter()
        data = probe_features(manifest)
        heads = {name: replay_protocol(data, method, options) for name, (method, options) in HEADS.items()}
        result["runs"].setdefault(dataset, {})[cls] = heads
        print(f"{dataset} {cls}: " + "; ".join(f"{n} {h[-1]['auroc']:.3f}/{h[-1]['auprc']:.3f}"
                                              for n, h in heads.items())
              + f" ({time.perf_counter() - started:.0f} s)", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frozen_space.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "frozen_space.md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
