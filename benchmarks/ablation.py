"""Ablations of the method on the FIRST benchmark, written to ``benchmarks/results/ablation.md``.

Every trial runs the paper's protocol (``anomalymatch evaluate``, 3 cycles x 100 iterations,
64 px) on the same manifests and seeds as ``quality.py`` and changes one setting of the
default. Each run also reports the classifier head, the linear probe and their ensemble
separately, so the score heads are compared on every trial for free. A default run that
``quality.py`` recorded in ``results/quality.json`` (same class and seed, no extra options) is
reused, not repeated.

Usage::

    python benchmarks/ablation.py                          # Bent, seeds 0 1, every trial
    python benchmarks/ablation.py --classes Bent FRI --seeds 0 --trials default tta
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import DATASET_OPTIONS, FIRST_ANOMALIES, RESULTS, first_manifest, run_one  # noqa: E402

TRIALS = {
    "default": ([], "central half kept, separate weak pass, classifier + probe ensemble, no TTA"),
    "no-crop": (["--crop", "1.0"], "the whole 300 px cutout shrunk to 64 px"),
    "asinh": (["--normalisation", "asinh"], "asinh stretch between percentiles instead of the fixed 0-255 range"),
    "joint-weak-pass": (["--weak-pass", "joint"], "weak views inside the training batch (the paper)"),
    "tta": (["--tta"], "scores averaged over the 8 flips/quarter turns"),
    "backbone-lr-0.1": (["--backbone-lr-scale", "0.1"], "backbone learns at 1/10 of the head's rate"),
    "supervised-only": (["--unlabelled-ratio", "0"], "no FixMatch term: labelled images only"),
}
HEAD_KEYS = ("auroc", "auprc", "precision_top1pct")


def recorded_default_runs(path: Path) -> dict[tuple[str, int], dict]:
    """FIRST runs of ``quality.py`` with the default settings, by (class, seed)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data["settings"].get("extra"):
        return {}
    runs = data["datasets"].get("first", {}).get("runs", [])
    return {(r["anomaly_class"], r["seed"]): r for r in runs}


def head_rows(result: dict) -> dict[str, dict[str, float]]:
    """Final-ranking metrics of each score head in one evaluate result."""
    final = result["cycles"][-1]
    heads = dict(final.get("head_metrics") or {})
    heads["scored"] = {k: result[k] for k in HEAD_KEYS}
    return heads


def mean_std(values: list[float]) -> str:
    array = np.asarray(values, dtype=float)
    spread = array.std(ddof=1) if array.size > 1 else 0.0
    return f"{array.mean():.3f} ± {spread:.3f}"


def markdown(records: list[dict], classes: list[str], seeds: list[int]) -> str:
    lines = [f"FIRST radio galaxies, anomaly classes {', '.join(classes)}, seeds {seeds}: "
             "mean ± std over runs of the final ranking (3 cycles x 100 iterations, 64 px).", "",
             "| trial | what changes | head | runs | AUROC | AUPRC | precision top 1 % | minutes/run |",
             "|---|---|---|---|---|---|---|---|"]
    for trial, (_, what) in TRIALS.items():
        runs = [r for r in records if r["trial"] == trial]
        if not runs:
            continue
        seconds = [r["wall_seconds"] for r in runs if r["wall_seconds"] is not None]
        minutes = f"{np.mean(seconds) / 60:.1f}" if seconds else "–"
        for head in ("classifier", "probe", "ensemble"):
            rows = [r["heads"][head] for r in runs if head in r["heads"]]
            if not rows:
                continue
            cells = " | ".join(mean_std([row[k] for row in rows]) for k in HEAD_KEYS)
            lines.append(f"| {trial} | {what} | {head} | {len(rows)} | {cells} | {minutes} |")
    return "\n".join(lines) + "\n"


def heads_over_quality_runs(path: Path) -> str:
    """Classifier vs probe vs ensemble over every run ``quality.py`` recorded (same runs, three scores)."""
    if not path.exists():
        return ""
    data = json.loads(path.read_text())
    lines = ["", "Score heads over every run of `quality.py` (each run scored three ways):", "",
             "| dataset | runs | head | AUROC | AUPRC | precision top 1 % |", "|---|---|---|---|---|---|"]
    for name, summary in data["datasets"].items():
        runs = [head_rows(run) for run in summary["runs"]]
        for head in ("classifier", "probe", "ensemble"):
            rows = [r[head] for r in runs if head in r]
            if rows:
                cells = " | ".join(mean_std([row[k] for row in rows]) for k in HEAD_KEYS)
                lines.append(f"| {name} | {len(rows)} | {head} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", nargs="+", default=["Bent"], choices=FIRST_ANOMALIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--trials", nargs="+", default=list(TRIALS), choices=list(TRIALS))
    parser.add_argument("--out", type=Path, default=RESULTS / "ablation.json")
    parser.add_argument("--reuse", action="store_true",
                        help="read runs an earlier (interrupted) call left instead of repeating them")
    args = parser.parse_args(argv)
    records = []
    recorded = recorded_default_runs(RESULTS / "quality.json")
    for trial in args.trials:
        options = TRIALS[trial][0]
        for cls in args.classes:
            for seed in args.seeds:
                result = recorded.get((cls, seed)) if trial == "default" else None
                result = result or run_one(first_manifest(cls, seed), seed, DATASET_OPTIONS["first"] + options,
                                           reuse=args.reuse)
                heads = head_rows(result)
                records.append({"trial": trial, "options": options, "anomaly_class": cls, "seed": seed,
                                "wall_seconds": result["wall_seconds"], "heads": heads})
                shown = ", ".join(f"{h} {m['auroc']:.3f}" for h, m in heads.items())
                print(f"{trial} {cls} seed {seed}: AUROC {shown}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"records": records, "classes": args.classes, "seeds": args.seeds},
                                   indent=1))
    args.out.with_suffix(".md").write_text(markdown(records, args.classes, args.seeds)
                                           + heads_over_quality_runs(RESULTS / "quality.json"))
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
