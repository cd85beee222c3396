"""How far the frozen network's features can separate each CIFAR-10 anomaly class at all.

The protocol's score is a linear probe on the frozen pretrained network's pyramid features,
fitted on the few images the oracle labelled. This script fits the same probe (the same
``probe_input``, centring and class-balanced logistic regression) with *every* image labelled,
in 5-fold cross-validation, and measures the ranking of each held-out fold. No choice of which
images to label can do better with a linear probe on these features, so it bounds what any
labelling strategy, sampler or query order can reach in ``quality.py``.

The images are a stratified sample of CIFAR-10's train split (``--per-class`` of each class,
default 1,000); every run weighs the normal images so that anomalies make up 1 % of the weight,
the protocol's share (455 of 45,455), so AUPRC and precision in the top 1 % are those of a
1 %-anomaly collection. The probe's input size is varied: 64 px (the protocol's; CIFAR's 32-px
images enlarged) and larger (the images enlarged again before the network, as
``anomalymatch evaluate --probe-size`` does).

Usage::

    python benchmarks/feature_ceiling.py                     # sizes 64 96 128, C 3 and 30
    python benchmarks/feature_ceiling.py --sizes 64 --per-class 500
    python benchmarks/feature_ceiling.py --render   # the table again, with quality.py's latest figures

Writes ``benchmarks/results/feature_ceiling.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import CIFAR_ANOMALIES, CIFAR_ARCHIVE, CIFAR_CLASSES, RESULTS, WORK, cifar_root, git  # noqa: E402

PROTOCOL_SIZE = 64
ANOMALY_SHARE = 455 / 45_455  # quality.py's CIFAR-10 manifests
FOLDS = 5


def sample_manifest(root: Path, per_class: int, seed: int) -> tuple[Path, np.ndarray]:
    """A CSV of ``per_class`` train images of each class, and each row's class index."""
    rng = np.random.default_rng(seed)
    paths, classes = [], []
    for index, name in enumerate(CIFAR_CLASSES):
        pool = sorted((root / "train" / name).glob("*.jpg"))
        if len(pool) < per_class:
            sys.exit(f"{root / 'train' / name}: {len(pool)} images, fewer than --per-class {per_class}")
        for i in sorted(rng.choice(len(pool), per_class, replace=False)):
            paths.append(pool[i])
            classes.append(index)
    path = WORK / "manifests" / f"cifar10-ceiling-{per_class}-seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "is_anomaly", "initial_label"])
        writer.writerows([str(p), 0, ""] for p in paths)
    return path, np.array(classes)


def load_sample(manifest: Path):
    """The manifest's images at the protocol's size, preprocessed as ``anomalymatch evaluate`` does."""
    from napari_anomalymatch.core.config import SessionConfig
    from napari_anomalymatch.core.evaluation.manifest import read_benchmark
    from napari_anomalymatch.core.loading import load_images
    from napari_anomalymatch.core.scoring.run import run_to_end
    from napari_anomalymatch.core.transforms import Normaliser

    config = SessionConfig()
    collection = read_benchmark(manifest).collection
    normaliser = Normaliser(config.data.normalisation, collection.value_range)
    images, valid = run_to_end(load_images(collection, normaliser, PROTOCOL_SIZE, np.arange(len(collection))))
    if not valid.all():
        sys.exit(f"{manifest}: {int((~valid).sum())} images could not be read")
    return images


def embed(images, size: int) -> np.ndarray:
    """The frozen pretrained network's pyramid features of ``images`` enlarged to ``size``."""
    import torch

    from napari_anomalymatch.core.config import ModelConfig
    from napari_anomalymatch.core.learning.models import build_model
    from napari_anomalymatch.core.learning.probe import FrozenEmbedder, embed_views

    model = build_model(ModelConfig(), images.shape[1]).model.to(memory_format=torch.channels_last)
    input_size = 0 if size == PROTOCOL_SIZE else size
    embedder = FrozenEmbedder(model, input_size, "pyramid")
    return embed_views(embedder, images, torch.device("cpu"), views=(0,)).numpy()


def cross_validated_scores(features: np.ndarray, truth: np.ndarray, regularisation: float,
                           seed: int) -> np.ndarray:
    """Each image's probe logit from the probe fitted on the other folds, centred and
    normalised as the protocol's probe is (on the training folds' mean)."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from napari_anomalymatch.core.learning.probe import probe_input

    scores = np.zeros(len(truth))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(features, truth):
        centre = torch.from_numpy(features[train].mean(0))
        prepared = probe_input(torch.from_numpy(features), centre, torch.zeros(0)).numpy()
        classifier = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000)
        classifier.fit(prepared[train], truth[train])
        scores[test] = classifier.decision_function(prepared[test])
    return scores


def weighted_ranking_metrics(scores: np.ndarray, truth: np.ndarray, share: float) -> dict[str, float]:
    """AUROC, and AUPRC and precision in the top 1 % with the normal images weighted so that
    anomalies make up ``share`` of the weight."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    n_anomalies, n_normal = truth.sum(), (~truth).sum()
    weights = np.where(truth, 1.0, n_anomalies * (1 - share) / (share * n_normal))
    order = np.lexsort((np.arange(len(scores)), -scores))
    mass = np.cumsum(weights[order])
    top = mass <= 0.01 * mass[-1]
    top[0] = True
    return {"auroc": float(roc_auc_score(truth, scores)),
            "auprc": float(average_precision_score(truth, scores, sample_weight=weights)),
            "precision_top1pct": float(weights[order][top & truth[order]].sum() / weights[order][top].sum())}


def protocol_figures() -> dict[str, dict]:
    """The protocol's own CIFAR-10 figures per class (``results/quality.json``), for comparison."""
    path = RESULTS / "quality.json"
    if not path.exists():
        return {}
    runs = json.loads(path.read_text())["datasets"].get("cifar10", {}).get("runs", [])
    by_class: dict[str, list] = {}
    for run in runs:
        by_class.setdefault(run["anomaly_class"], []).append(run)
    return {name: {key: float(np.mean([r[key] for r in group])) for key in ("auroc", "auprc")}
            for name, group in by_class.items()}


def markdown(result: dict) -> str:
    protocol = result["protocol"]
    lines = [
        f"Linear probe on the frozen pretrained pyramid features with every image labelled "
        f"({FOLDS}-fold cross-validation; {result['per_class']} images of each CIFAR-10 class, "
        f"normal images weighted to a 1 % anomaly share). Best C of "
        f"{' and '.join(f'{c:g}' for c in result['regularisations'])} "
        f"per size, chosen on the mean AUPRC. The protocol column is `quality.py`'s final ranking "
        f"(AUROC / AUPRC) from a few labels.",
        "",
        "| anomaly | input px | C | AUROC | AUPRC | precision top 1 % | protocol (64 px) | embedding s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size_result in result["sizes"]:
        for name, figures in size_result["classes"].items():
            lines.append(_row(name, size_result, figures, protocol.get(name)))
        lines.append(_row("**mean**", size_result, size_result["mean"], _mean(protocol)))
    lines += ["", "Paper (miniImageNet, 1 % anomalies): AUROC 0.96, AUPRC 0.82, precision top 1 % 0.76.", ""]
    return "\n".join(lines)


def _row(name: str, size_result: dict, figures: dict, protocol: dict | None) -> str:
    compared = f"{protocol['auroc']:.3f} / {protocol['auprc']:.3f}" if protocol else "–"
    return (f"| {name} | {size_result['size']} | {size_result['regularisation']:g} | {figures['auroc']:.3f} | "
            f"{figures['auprc']:.3f} | {figures['precision_top1pct']:.2f} | {compared} | "
            f"{size_result['embedding_seconds']:.0f} |")


def _mean(protocol: dict[str, dict]) -> dict | None:
    if not protocol:
        return None
    return {key: float(np.mean([p[key] for p in protocol.values()])) for key in ("auroc", "auprc")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 96, 128])
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--classes", nargs="+", default=list(CIFAR_ANOMALIES), choices=CIFAR_CLASSES)
    parser.add_argument("--c", dest="regularisations", nargs="+", type=float, default=[3.0, 30.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cifar-archive", type=Path, default=CIFAR_ARCHIVE)
    parser.add_argument("--out", type=Path, default=RESULTS / "feature_ceiling.json")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: write the Markdown table of --out again, with the "
                             "protocol's figures as results/quality.json now has them")
    args = parser.parse_args(argv)
    if args.render:
        if not args.out.exists():
            sys.exit(f"{args.out}: no results to render; run without --render first")
        result = {**json.loads(args.out.read_text()), "protocol": protocol_figures()}
        args.out.write_text(json.dumps(result, indent=1))
        args.out.with_suffix(".md").write_text(markdown(result))
        print(args.out.with_suffix(".md").read_text())
        return 0
    manifest, classes = sample_manifest(cifar_root(args.cifar_archive), args.per_class, args.seed)
    images = load_sample(manifest)
    sizes = []
    for size in args.sizes:
        started = time.perf_counter()
        features = embed(images, size)
        embedding_seconds = time.perf_counter() - started
        sizes.append(best_regularisation(features, classes, args, size, embedding_seconds))
        print(f"{size} px: AUROC {sizes[-1]['mean']['auroc']:.3f} AUPRC {sizes[-1]['mean']['auprc']:.3f} "
              f"(C = {sizes[-1]['regularisation']:g}; embedding {embedding_seconds:.0f} s)", flush=True)
    result = {"per_class": args.per_class, "seed": args.seed, "folds": FOLDS, "anomaly_share": ANOMALY_SHARE,
              "regularisations": args.regularisations, "sizes": sizes, "protocol": protocol_figures(),
              "code": git("rev-parse", "HEAD:src")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(args.out.with_suffix(".md").read_text())
    return 0


def best_regularisation(features: np.ndarray, classes: np.ndarray, args, size: int,
                        embedding_seconds: float) -> dict:
    """The figures of the C with the best mean AUPRC over the anomaly classes."""
    candidates = []
    for regularisation in args.regularisations:
        per_class = {}
        for name in args.classes:
            truth = classes == CIFAR_CLASSES.index(name)
            scores = cross_validated_scores(features, truth, regularisation, args.seed)
            per_class[name] = weighted_ranking_metrics(scores, truth, ANOMALY_SHARE)
        mean = {key: float(np.mean([m[key] for m in per_class.values()])) for key in next(iter(per_class.values()))}
        candidates.append({"size": size, "regularisation": regularisation, "classes": per_class, "mean": mean,
                           "embedding_seconds": embedding_seconds})
    return max(candidates, key=lambda c: c["mean"]["auprc"])


if __name__ == "__main__":
    sys.exit(main())
