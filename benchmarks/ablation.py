"""Ablations of the method, written to ``benchmarks/results/ablation.md``.

Every trial runs the paper's protocol (``anomalymatch evaluate``, 3 cycles x 100 iterations,
64 px) on the same manifests and seeds as ``quality.py`` and changes one setting of the
default. Each run also reports the classifier head, the linear probe and their ensemble
separately, so the score heads are compared on every trial for free. A default run that
``quality.py`` recorded in ``results/quality.json`` (same class and seed, no extra options) is
reused, not repeated. Records of earlier calls are kept (by dataset, trial, class and seed), so
trials can be run a few at a time.

Usage::

    python benchmarks/ablation.py                          # FIRST Bent, seeds 0 1, every trial
    python benchmarks/ablation.py --classes Bent FRI --seeds 0 --trials default tta
    python benchmarks/ablation.py --dataset cifar10 --classes cat --seeds 0 --trials probe-128
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import (  # noqa: E402
    CIFAR_ANOMALIES,
    CIFAR_ARCHIVE,
    DATASET_OPTIONS,
    FIRST_ANOMALIES,
    RESULTS,
    cifar_manifest,
    cifar_root,
    first_manifest,
    git,
    run_one,
    source_changed,
)

TRIALS = {
    "default": ([], "the defaults of the commit in the code column (from dbf36e9 on: the lpft network, "
                    "whose head starts as the probe, 0.1 backbone rate; crop chosen from the images; the "
                    "oracle in score order, the paper's protocol; no per-dataset options. Before: from "
                    "3116bde on: the probe on the "
                    "frozen pretrained network, C = 1, views: FIRST 8, CIFAR-10 2; centred from the "
                    "commit after; pyramid features and C = 3 from the pyramid's commit on; morphology "
                    "statistics on single-band images, i.e. FIRST, from the morphology commit on; the "
                    "oracle labels in uncertainty order from the oracle-order commit on); central half "
                    "kept (FIRST)"),
    "head-features-c1": (["--probe-layers", "head", "--probe-c", "1"],
                         "the probe reads the head's pooled features alone, C = 1 (before the pyramid)"),
    "fine-tuned-probe": (["--probe-features", "fine-tuned", "--probe-c", "0.1"],
                         "the previous default: the probe reads the fine-tuned model's embedding, C = 0.1"),
    "no-morphology": (["--probe-morphology", "off"], "the probe reads the network's features alone, "
                      "without the 11 morphology statistics (FIRST's default before the morphology commit)"),
    "morphology": (["--probe-morphology", "on"], "the probe also reads the 11 morphology statistics of "
                   "colour images (of their mean band; CIFAR-10's default is without)"),
    "no-centre": (["--no-probe-centre"], "the probe's embeddings are not centred on the unlabelled images' mean"),
    "dihedral-views": (["--probe-views", "dihedral"], "the probe learns from all 8 flips/quarter turns "
                       "(FIRST's default; CIFAR-10's is the image and its mirror)"),
    "probe-128": (["--probe-size", "128"], "the frozen network sees the images enlarged to 128 px"),
    "no-crop": (["--crop", "1.0"], "the whole 300 px cutout shrunk to 64 px"),
    "asinh": (["--normalisation", "asinh"], "asinh stretch between percentiles instead of the fixed 0-255 range"),
    "joint-weak-pass": (["--weak-pass", "joint"], "weak views inside the training batch (the paper)"),
    "score-order": (["--oracle-order", "score"], "the oracle labels the most anomalous images first, "
                    "given explicitly: the paper's protocol, the default from dbf36e9 on; a run of the "
                    "diverse-order runs' commit is their same-code baseline (runs of older commits were "
                    "against the then default, the decision boundary first)"),
    "tta": (["--tta"], "scores averaged over the 8 flips/quarter turns (FIRST's default from the "
                       "robust-statistics commit on)"),
    "no-tta": (["--no-tta"], "each image scored as it is, not as the mean of its 8 flips/quarter turns "
                             "(FIRST's default before the robust-statistics commit)"),
    "backbone-lr-0.1": (["--backbone-lr-scale", "0.1"], "backbone learns at 1/10 of the head's rate"),
    "supervised-only": (["--unlabelled-ratio", "0"], "no FixMatch term: labelled images only"),
    "lpft-backbone-lr-1": (["--backbone-lr-scale", "1"], "the lpft network's backbone learns at the head's full rate"),
    "lpft-head-only": (["--backbone-lr-scale", "0"], "only the lpft network's head learns (frozen backbone)"),
    "classifier": (["--head", "classifier"], "the paper's fine-tuned classifier scores and the oracle follows it"),
    "uncertainty-order": (["--oracle-order", "uncertainty"], "the oracle labels the images nearest the decision "
                          "boundary first instead of the most anomalous (the paper's protocol)"),
    "diverse-order": (["--oracle-order", "diverse"], "the oracle reviews the top 500 clustered into 25 by the "
                      "scoring network's embeddings, the best of each cluster first, instead of in score order"),
}
HEAD_KEYS = ("auroc", "auprc", "precision_top1pct")
HEADS = ("lpft", "classifier", "probe", "ensemble")


def recorded_default_runs(path: Path, dataset: str) -> dict[tuple[str, int], dict]:
    """Runs of ``quality.py`` on ``dataset`` with the default settings, by (class, seed)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data["settings"].get("extra"):
        return {}
    runs = data["datasets"].get(dataset, {}).get("runs", [])
    return {(r["anomaly_class"], r["seed"]): r for r in runs}


def manifest_for(dataset: str, cls: str, seed: int) -> Path:
    if dataset == "cifar10":
        return cifar_manifest(cifar_root(CIFAR_ARCHIVE), cls, seed)
    return first_manifest(cls, seed)


def earlier_records(path: Path) -> list[dict]:
    """What earlier calls recorded (records without a dataset are FIRST's; those without a
    commit were made before records named one, by the code of commit 2d876e0 or older)."""
    if not path.exists():
        return []
    records = json.loads(path.read_text())["records"]
    return [{"dataset": "first", "commit": "≤2d876e0", **r} for r in records]


def current_commit() -> str:
    """The checked-out commit (with ``+`` when the working tree differs from it)."""
    return git("rev-parse", "--short", "HEAD") + ("+" if source_changed() else "")


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


def markdown(records: list[dict]) -> str:
    lines = ["Mean ± std over runs of the final ranking (3 cycles x 100 iterations, 64 px); classes "
             "and seeds in the runs column.", "",
             "| dataset | trial | what changes | head | runs | AUROC | AUPRC | precision top 1 % | minutes/run "
             "| code |", "|---|---|---|---|---|---|---|---|---|---|"]
    for dataset in ("first", "cifar10"):
        for trial in TRIALS:
            runs = [r for r in records if r["trial"] == trial and r["dataset"] == dataset]
            if runs:
                lines.extend(_trial_rows(dataset, trial, runs))
    return "\n".join(lines) + "\n"


def _trial_rows(dataset: str, trial: str, runs: list[dict]) -> list[str]:
    what = TRIALS[trial][1]
    classes = ", ".join(dict.fromkeys(r["anomaly_class"] for r in runs))
    which = f"{classes}; seeds {', '.join(str(s) for s in sorted({r['seed'] for r in runs}))}"
    commits = ", ".join(sorted({r["commit"] for r in runs}))
    seconds = [r.get("protocol_seconds") or r["wall_seconds"] for r in runs if r["wall_seconds"] is not None]
    minutes = f"{np.mean(seconds) / 60:.1f}" if seconds else "–"
    lines = []
    for head in HEADS:
        rows = [r["heads"][head] for r in runs if head in r["heads"]]
        if rows:
            cells = " | ".join(mean_std([row[k] for row in rows]) for k in HEAD_KEYS)
            lines.append(f"| {dataset} | {trial} | {what} | {head} | {len(rows)} ({which}) | {cells} | {minutes} "
                         f"| {commits} |")
    return lines


def heads_over_quality_runs(path: Path) -> str:
    """The heads over every run ``quality.py`` recorded (same runs and labels, each head's score)."""
    if not path.exists():
        return ""
    data = json.loads(path.read_text())
    lines = ["", "Score heads over every run of `quality.py` (runs with `--compare-heads` scored by each head "
             "on the same labels; the ranking and the oracle's picks followed the default head):", "",
             "| dataset | runs | head | AUROC | AUPRC | precision top 1 % |", "|---|---|---|---|---|---|"]
    for name, summary in data["datasets"].items():
        runs = [head_rows(run) for run in summary["runs"]]
        for head in HEADS:
            rows = [r[head] for r in runs if head in r]
            if rows:
                cells = " | ".join(mean_std([row[k] for row in rows]) for k in HEAD_KEYS)
                lines.append(f"| {name} | {len(rows)} | {head} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="first", choices=["first", "cifar10"])
    parser.add_argument("--classes", nargs="+", default=None,
                        help=f"anomaly classes (FIRST: {FIRST_ANOMALIES}, default Bent; "
                             f"CIFAR-10: {CIFAR_ANOMALIES}, default cat)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--trials", nargs="+", default=list(TRIALS), choices=list(TRIALS))
    parser.add_argument("--out", type=Path, default=RESULTS / "ablation.json")
    parser.add_argument("--reuse", action="store_true",
                        help="read runs an earlier (interrupted) call left instead of repeating them")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: rewrite the report from the recorded runs and quality.json")
    args = parser.parse_args(argv)
    if args.render:
        write_report(args.out, earlier_records(args.out))
        return 0
    classes = args.classes or (["Bent"] if args.dataset == "first" else ["cat"])
    recorded = recorded_default_runs(RESULTS / "quality.json", args.dataset)
    records = {_key(r): r for r in earlier_records(args.out)}
    commit = current_commit()
    for trial in args.trials:
        options = TRIALS[trial][0]
        for cls in classes:
            for seed in args.seeds:
                recorded_run = recorded.get((cls, seed)) if trial == "default" else None
                result = recorded_run or run_one(manifest_for(args.dataset, cls, seed), seed,
                                           DATASET_OPTIONS[args.dataset] + options, reuse=args.reuse)
                record = {"dataset": args.dataset, "trial": trial, "options": options, "anomaly_class": cls,
                          "seed": seed, "wall_seconds": result["wall_seconds"],
                          "protocol_seconds": result.get("protocol_seconds"), "heads": head_rows(result),
                          "commit": f"src {recorded_run['code'][:7]}" if recorded_run else commit}
                records[_key(record)] = record
                shown = ", ".join(f"{h} {m['auroc']:.3f}" for h, m in record["heads"].items())
                print(f"{args.dataset} {trial} {cls} seed {seed}: AUROC {shown}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"records": list(records.values())}, indent=1))
    write_report(args.out, list(records.values()))
    return 0


def write_report(out: Path, records: list[dict]) -> None:
    report = out.with_suffix(".md")
    report.write_text(markdown(records) + heads_over_quality_runs(RESULTS / "quality.json"))
    print(report.read_text())


def _key(record: dict) -> tuple:
    return record["dataset"], record["trial"], record["anomaly_class"], record["seed"]


if __name__ == "__main__":
    sys.exit(main())
