"""How well does the estimate of the anomalies still unreviewed hold against the truth?

Runs ``anomalymatch evaluate`` (the paper's protocol, ``quality.PROTOCOL`` but with more cycles, so
more estimates per run) on FIRST classes and seeds; every cycle records, before the oracle reviews,
the estimate of the anomalies left among the unreviewed images (overall, in the next 100 and
1,000 by rank) and the true count (``core/evaluation/remaining.py``), with and without a random
audit sample of 50 images. Writes ``results/remaining.json`` and ``results/remaining.md``:
the interval's coverage (target: the truth inside the 90 % interval in at least 80 % of cycles)
and the estimate's error.

    python benchmarks/remaining.py --classes FRI FRII Compact Bent --seeds 0 1
    python benchmarks/remaining.py --reuse --from-quality   # add every quality.py run that recorded them

``--from-quality`` also reads the runs ``quality.py`` made (FIRST, CIFAR-10, GZ1: 3 cycles each),
so one set of protocol runs measures both the ranking and the estimate.

Each estimate is made again, with the estimator of the code at hand, from the inputs the run kept
beside its JSON (``*.remaining.npz``): a change to the estimator is measured on the same runs
without training them again. Runs made before their inputs were kept are left out and named.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from napari_anomalymatch.core.evaluation.remaining import measure_again

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import FIRST_ANOMALIES, PROTOCOL, RESULTS, WORK, first_manifest, git  # noqa: E402
from zero_label import host_cpu  # noqa: E402

CYCLES = 4  # the protocol's 3, and one more: each cycle after the first is one more estimate to check
OUT = WORK / "remaining"  # this benchmark's own result files, apart from quality.py's
VARIANTS = ("without_audit", "with_audit")
PARTS = ("total", "next100", "next1000")
TARGET = 0.8


def run(cls: str, seed: int, reuse: bool) -> dict | None:
    """One protocol run's per-cycle estimates (with ``reuse``: read back, None when not made)."""
    out = OUT / f"first-{cls}-seed{seed}.json"
    if reuse and not out.exists():
        return None
    if not reuse:
        OUT.mkdir(parents=True, exist_ok=True)
        protocol = list(PROTOCOL)
        protocol[protocol.index("--cycles") + 1] = str(CYCLES)
        started = time.perf_counter()
        load = os.getloadavg()[0]
        subprocess.run([sys.executable, "-m", "napari_anomalymatch.cli", "evaluate", str(first_manifest(cls, seed)),
                        *protocol, "--seed", str(seed), "--json", str(out)], check=True, stdout=subprocess.DEVNULL)
        result = json.loads(out.read_text())
        result["wall_seconds"] = time.perf_counter() - started
        result["load_before"] = load
        out.write_text(json.dumps(result, indent=1))
    return described(out, "first", cls, seed)


def quality_runs() -> list[dict]:
    """The per-cycle estimates of every ``quality.py`` run (default head) that recorded them."""
    found = [(path, "first", *path.parent.name.rsplit("-seed", 1)) for path in (WORK / "first").glob(
        "*/manifest.result.json")]
    for path in (WORK / "manifests").glob("*.result.json"):
        dataset, rest = path.name.removesuffix(".result.json").split("-", 1)
        found.append((path, dataset, *rest.rsplit("-seed", 1)))
    runs = []
    for path, dataset, cls, seed in sorted(found):
        if all("remaining" in c for c in json.loads(path.read_text())["cycles"]):  # else: made before the estimate
            runs.append({**described(path, dataset, cls, int(seed)), "source": "quality.py"})
    return runs


def described(path: Path, dataset: str, cls: str, seed: int) -> dict:
    """One run's settings and, where it kept their inputs, its per-cycle estimates made again with
    today's estimator (``cycles`` None where it kept none)."""
    result = json.loads(path.read_text())
    kept = path.with_suffix(".remaining.npz")
    return {"dataset": dataset, "class": cls, "seed": seed, "wall_seconds": result.get("wall_seconds"),
            "load_before": result.get("load_before"), "n_images": result["settings"]["n_images"],
            "n_anomalies": result["settings"]["n_anomalies"],
            "cycles": measure_again(dict(np.load(kept))) if kept.exists() else None}


def summarise_by_dataset(runs: list[dict]) -> dict:
    """``summarise`` over every run, and over each dataset's."""
    datasets = sorted({r["dataset"] for r in runs})
    groups = {"all": runs, **{d: [r for r in runs if r["dataset"] == d] for d in datasets}} if len(datasets) > 1 \
        else {datasets[0] if datasets else "all": runs}
    return {name: summarise(group) for name, group in groups.items()}


def summarise(runs: list[dict]) -> dict:
    """Coverage, error and interval width per variant and part, over every cycle estimated."""
    summary = {}
    for variant in VARIANTS:
        records = [c[variant] for r in runs for c in r["cycles"] if "total" in c.get(variant, {})]
        skipped = sum("error" in c.get(variant, {}) for r in runs for c in r["cycles"])
        for part in PARTS:
            found = [rec[part] for rec in records]
            if not found:
                continue
            true = np.array([f["true"] for f in found], dtype=float)
            expected = np.array([f["expected"] for f in found])
            inside = np.array([f["low"] <= f["true"] <= f["high"] for f in found])
            summary[f"{variant}/{part}"] = {
                "estimates": len(found), "not_estimated": skipped, "coverage": float(inside.mean()),
                "mean_abs_error": float(np.abs(expected - true).mean()),
                "mean_signed_error": float((expected - true).mean()),
                "mean_relative_error": float(np.mean(np.abs(expected - true) / np.maximum(true, 1))),
                "median_width": float(np.median([f["high"] - f["low"] for f in found])),
                "mean_true": float(true.mean()),
            }
    return summary


def markdown(results: dict) -> str:
    lines = ["| runs | calibration | count | estimates | 90 % interval holds the truth | mean abs. error "
             "(mean true) | mean signed error | median interval width |", "|---|---|---|---|---|---|---|---|"]
    for group, summary in results["summary"].items():
        for key, s in summary.items():
            variant, part = key.split("/")
            name = "labels + 50-image audit" if variant == "with_audit" else "labels only"
            hit = f"**{s['coverage']:.0%}**" if s["coverage"] >= TARGET else f"{s['coverage']:.0%}"
            lines.append(f"| {group} | {name} | {part.replace('next', 'next ')} | {s['estimates']} | {hit} | "
                         f"{s['mean_abs_error']:.1f} ({s['mean_true']:.1f}) | {s['mean_signed_error']:+.1f} | "
                         f"{s['median_width']:.0f} |")
    runs = results["runs"]
    left_out = ", ".join(f"{r['dataset']} {r['class']} seed {r['seed']} ({r['source']})" for r in results["left_out"])
    skipped = {v: sum("error" in c.get(v, {}) for r in runs for c in r["cycles"]) for v in VARIANTS}
    names = "; ".join(f"{d}: " + ", ".join(sorted({f"{r['class']} seed {r['seed']}" for r in runs
                                                     if r["dataset"] == d}))
                      for d in sorted({r["dataset"] for r in runs}))
    walls = [r["wall_seconds"] for r in runs if r.get("wall_seconds")]
    loads = [r["load_before"] for r in runs if r.get("load_before") is not None]
    lines += ["", f"Runs: {names}. `remaining.py`'s own runs (FIRST) have {CYCLES} cycles "
              f"(`{' '.join(PROTOCOL)}` with `--cycles {CYCLES}`); `quality.py`'s have 3. "
              "Every cycle's estimate is made before the oracle reviews, and made again with this code from the "
              f"inputs the run kept. Left out (made before their inputs were kept): {left_out or 'none'}. "
              f"Target: the truth inside the 90 % interval in at least {TARGET:.0%} of cycles. "
              f"Not estimated (fewer than 2 anomalies and 2 normal images reviewed in score order yet, "
              f"always the first cycle): {skipped['without_audit']} cycles without the audit. "
              f"On {results['host']}, {sum(walls) / 60:.0f} min of runs{_loads(loads)}; code "
              f"{results['code']}."]
    return "\n".join(lines) + "\n"


def _loads(loads: list[float]) -> str:
    """The load averages the runs started at, where recorded (runs of quality.py record none)."""
    if not loads:
        return ""
    return (f" (load average before each run {min(loads):.1f}-{max(loads):.1f}: shared with other work, "
            "times inflated)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", nargs="+", default=list(FIRST_ANOMALIES), choices=FIRST_ANOMALIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--reuse", action="store_true", help="read back the runs made (leave out those not made)")
    parser.add_argument("--from-quality", action="store_true",
                        help="add the estimates every quality.py run recorded (FIRST, CIFAR-10, GZ1)")
    args = parser.parse_args(argv)
    runs = [found for seed in args.seeds for cls in args.classes if (found := run(cls, seed, args.reuse))]
    for run_ in runs:
        run_["source"] = "remaining.py"
    if args.from_quality:
        runs += quality_runs()
    left_out = [{key: r[key] for key in ("source", "dataset", "class", "seed")} for r in runs if r["cycles"] is None]
    runs = [r for r in runs if r["cycles"] is not None]
    results = {"runs": runs, "left_out": left_out, "summary": summarise_by_dataset(runs), "host": host_cpu(),
               "target_coverage": TARGET, "code": git("rev-parse", "--short", "HEAD")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "remaining.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "remaining.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
