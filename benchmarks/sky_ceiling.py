"""How far the frozen features can separate each FIRST and GZ1 anomaly class at all.

The companion of ``feature_ceiling.py`` (CIFAR-10) for the two sky sets. The default score is a
linear head on the frozen pretrained network's features (and, here, the morphology statistics),
so no choice of which images to label can make the probe rank better than the same probe fitted
with *every* image labelled. This script fits it that way, in 5-fold cross-validation over one
run's whole collection (the session's crop, views and probe inputs, cached by ``framing.py``),
and scores each held-out fold; beside it, the protocol's final ranking from a few labels
(``quality.py``'s default head, mean over its runs). A target above the ceiling cannot be met by
labelling strategy, sampler or query order alone: only by features that learn.

Usage::

    python benchmarks/sky_ceiling.py                 # FIRST's four classes and GZ1's two, C 1, 3, 9
    python benchmarks/sky_ceiling.py --sets FRI --c 3

Writes ``benchmarks/results/sky_ceiling.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from napari_anomalymatch.core.evaluation.metrics import ranking_metrics

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from framing import SETS, probe_inputs  # noqa: E402
from quality import RESULTS, code_version  # noqa: E402

SKY_SETS = [name for name, dataset in SETS.items() if dataset != "cifar10"]
FOLDS = 5


def cross_validated_scores(x: np.ndarray, truth: np.ndarray, regularisation: float, seed: int) -> np.ndarray:
    """Each image's probe log-odds (mean over its views) from the probe fitted on the other folds."""
    scores = np.zeros(len(truth))
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x[0], truth):
        probe = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000)
        probe.fit(np.concatenate([view[train] for view in x]), np.tile(truth[train], len(x)))
        scores[test] = np.mean([probe.decision_function(view[test]) for view in x], axis=0)
    return scores


def protocol_figures() -> dict[str, dict]:
    """The protocol's final ranking per class (``results/quality.json``, default head, mean over runs)."""
    datasets = json.loads((RESULTS / "quality.json").read_text())["datasets"]
    by_class: dict[str, list] = {}
    for dataset in ("first", "gz1"):
        for run in datasets.get(dataset, {}).get("runs", []):
            by_class.setdefault(run["anomaly_class"], []).append(run)
    return {name: {key: float(np.mean([r[key] for r in runs])) for key in ("auroc", "auprc")}
            for name, runs in by_class.items()}


def markdown(result: dict) -> str:
    lines = [f"Linear probe on the frozen features with every image of one run's collection labelled "
             f"({FOLDS}-fold cross-validation, seed {result['seed']}; the session's crop, views and "
             "morphology statistics; the best C per class). The protocol column is `quality.py`'s final "
             "ranking from a few labels (default head, mean over its runs).", "",
             "| set | images | anomalies | C | AUROC | AUPRC | protocol AUROC / AUPRC |",
             "|---|---|---|---|---|---|---|"]
    for name, entry in result["sets"].items():
        protocol = result["protocol"].get(name)
        compared = f"{protocol['auroc']:.3f} / {protocol['auprc']:.3f}" if protocol else "–"
        lines.append(f"| {name} | {entry['n']} | {entry['anomalies']} | {entry['regularisation']:g} | "
                     f"{entry['auroc']:.3f} | {entry['auprc']:.3f} | {compared} |")
    for dataset, names in (("FIRST", ("FRI", "FRII", "Compact", "Bent")), ("GZ1", ("merger", "edge-on"))):
        chosen = [result["sets"][n] for n in names if n in result["sets"]]
        if chosen:
            lines.append(f"| {dataset} **mean** | | | | {np.mean([e['auroc'] for e in chosen]):.3f} | "
                         f"{np.mean([e['auprc'] for e in chosen]):.3f} | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=SKY_SETS, choices=SKY_SETS)
    parser.add_argument("--c", dest="regularisations", nargs="+", type=float, default=[1.0, 3.0, 9.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = {"seed": args.seed, "folds": FOLDS, "code": code_version(), "sets": {}, "protocol": protocol_figures()}
    for name in args.sets:
        x, benchmark, _ = probe_inputs(name, args.seed, "auto", "auto")
        truth = benchmark.is_anomaly.astype(bool)
        fits = []
        for regularisation in args.regularisations:
            metrics = ranking_metrics(cross_validated_scores(x, truth, regularisation, args.seed), truth)
            fits.append({"regularisation": regularisation, "auroc": metrics["auroc"], "auprc": metrics["auprc"]})
        best = max(fits, key=lambda fit: fit["auprc"])
        result["sets"][name] = {**best, "n": int(len(truth)), "anomalies": int(truth.sum()), "fits": fits}
        print(f"{name}: AUROC {best['auroc']:.3f} AUPRC {best['auprc']:.3f} (C = {best['regularisation']:g})",
              flush=True)
    out = RESULTS / "sky_ceiling.json"
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
