"""The estimate of the anomalies left, measured on fast replays of the protocol with the frozen probe.

A protocol run with training costs minutes to an hour on this host; the estimator only needs each
cycle's scores and the labels the review gave. This script replays the paper's protocol with the
frozen probe on cached features (``framing.py``'s: FIRST's four classes, GZ1's mergers and
edge-on spirals; 4 cycles, the oracle in score order, a random audit of 50), records what each
cycle's estimate is made from (``core.evaluation.remaining.RemainingTracker``) and scores the
estimator against the truth: how often the 90 % interval holds the true count, overall and in
the next 100 and 1,000 by rank. ``--inputs`` adds the inputs real protocol runs kept
(``anomalymatch evaluate --json`` writes ``*.remaining.npz``), so a change found on the replays is
checked on runs with training. Synthetic surveys whose scores are miscalibrated by a known slope
(``SURVEY_SLOPES``, the unit tests' survey) show what each variant does where the scores' own
calibration is far off. The variants are settings of the core's estimator
(``core.review.remaining.estimate_remaining``: how wide the slope's prior may be, how much the
posterior is widened), beside the estimator it replaced, read from git at ``PREVIOUS``.

    python benchmarks/remaining_replay.py --seeds 0 1 2 3 4
    python benchmarks/remaining_replay.py --inputs benchmarks/work/first/*/manifest.result.remaining.npz

Writes ``benchmarks/results/remaining_replay.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from napari_anomalymatch.core.config import SessionConfig
from napari_anomalymatch.core.evaluation.protocol import OracleSettings, held_out_split, oracle_picks
from napari_anomalymatch.core.evaluation.remaining import VARIANTS, RemainingTracker, measure_again
from napari_anomalymatch.core.labels import UNLABELED
from napari_anomalymatch.core.review.remaining import HORIZONS, SLOPE_SCALES, estimate_remaining

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from framing import SETS, probe_inputs  # noqa: E402
from quality import RESULTS, WORK, code_version, git  # noqa: E402
from remaining import TARGET  # noqa: E402

CYCLES = 4
OUT = WORK / "remaining_replay"
PARTS = ("total", *(f"next{n}" for n in HORIZONS))
PREVIOUS = "40ecaae"  # the last commit with the free Platt fit and its bootstrap interval
MODULE = "src/napari_anomalymatch/core/review/remaining.py"
SURVEY_SLOPES = (0.25, 0.6, 1.0, 2.5)  # the true slope on the scores' log-odds: < 1 overconfident, > 1 timid
SURVEY_SEEDS = 10
ADOPTED = "learned prior, widened x9 (adopted)"
SURVEY_ESTIMATORS = (f"previous ({PREVIOUS}): free fit, bootstrap", "slope prior sd 0.25, widened x9", ADOPTED)


def replay_inputs(name: str, seed: int) -> dict[str, np.ndarray]:
    """Each cycle's estimate inputs of one probe replay (cached in ``OUT``)."""
    path = OUT / f"{name}-seed{seed}.npz"
    if path.exists():
        return dict(np.load(path))
    x, benchmark, _ = probe_inputs(name, seed, "auto", "auto")
    truth, labels = benchmark.is_anomaly, benchmark.initial_labels.copy()
    ever = labels != UNLABELED
    valid = np.ones(len(truth), dtype=bool)
    test = held_out_split(truth, ~ever, OracleSettings().test_fraction, seed)
    tracker = RemainingTracker(truth, ever, valid, ~ever & ~test, seed)
    for cycle in range(1, CYCLES + 1):
        labelled = np.flatnonzero(ever)
        probe = LogisticRegression(C=SessionConfig().probe.regularisation, class_weight="balanced", max_iter=5000)
        probe.fit(np.concatenate([view[labelled] for view in x]), np.tile(labels[labelled], len(x)))
        scores = 1 / (1 + np.exp(-np.mean([probe.decision_function(view) for view in x], axis=0)))
        scores = scores.astype(np.float32)
        picks, reviewed = (oracle_picks(scores, truth, ~ever & ~test, OracleSettings(), seed)
                           if cycle < CYCLES else (np.zeros(0, dtype=np.int64), 0))
        tracker.cycle(scores, ~ever & ~test, reviewed, "score", seed)
        labels[picks] = truth[picks].astype(labels.dtype)
        ever[picks] = True
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **tracker.replay)
    return tracker.replay


def survey_inputs(slope: float, seed: int, n: int = 6000, reviewed: int = 300,
                  audited: int = 60) -> dict[str, np.ndarray]:
    """One synthetic survey as a tracker keeps it: about 6 % anomalies, whose log-odds are ``slope``
    times the scores' minus 2; the top ``reviewed`` by score reviewed, ``audited`` others at random."""
    rng = np.random.default_rng([seed, 37])
    latent = rng.normal(0, 1.5, n)
    truth = rng.random(n) < 1 / (1 + np.exp(-(1.5 * latent - 4)))
    scores = 1 / (1 + np.exp(-(1.5 * latent - 2) / slope))
    order = np.argsort(-scores)
    top, rest = order[:reviewed], order[reviewed:]
    audit = rng.choice(rest, audited, replace=False)
    kept = {}
    for variant, unreviewed, shown in (("without_audit", rest, np.zeros(0, dtype=np.int64)),
                                       ("with_audit", np.setdiff1d(rest, audit), audit)):
        kept.update({f"cycle1__{variant}__{name}": value for name, value in (
            ("unreviewed_scores", scores[unreviewed]), ("unreviewed_truth", truth[unreviewed]),
            ("reviewed_scores", scores[top]), ("reviewed_labels", truth[top].astype(float)),
            ("audit_scores", scores[shown]), ("audit_labels", truth[shown].astype(float)))})
    return kept


def summary(records: list[dict]) -> dict:
    """Coverage and errors per variant and part."""
    grouped = defaultdict(list)
    for record in records:
        for part in PARTS:
            grouped[(record["variant"], part)].append(record["estimate"][part])
    out = {}
    for (variant, part), found in sorted(grouped.items()):
        true = np.array([f["true"] for f in found], dtype=float)
        expected = np.array([f["expected"] for f in found])
        out[f"{variant}/{part}"] = {
            "estimates": len(found),
            "coverage": float(np.mean([f["low"] <= f["true"] <= f["high"] for f in found])),
            "median_abs_error": float(np.median(np.abs(expected - true))),
            "median_ratio": float(np.median((expected + 1) / (true + 1))),
            "mean_true": float(true.mean()),
            "median_width": float(np.median([f["high"] - f["low"] for f in found]))}
    return out


def markdown(results: dict) -> str:
    lines = ["| estimator | runs | calibration | count | estimates | 90 % interval holds the truth | "
             "median abs. error (mean true) | median (expected+1)/(true+1) | median width |",
             "|---|---|---|---|---|---|---|---|---|"]
    for estimator, groups in results["summaries"].items():
        for group, rows in groups.items():
            if group.startswith("survey"):
                continue
            for key, s in rows.items():
                variant, part = key.split("/")
                hit = f"**{s['coverage']:.0%}**" if s["coverage"] >= TARGET else f"{s['coverage']:.0%}"
                lines.append(f"| {estimator} | {group} | {variant.replace('_', ' ')} | {part} | {s['estimates']} | "
                             f"{hit} | {s['median_abs_error']:.1f} ({s['mean_true']:.1f}) | "
                             f"{s['median_ratio']:.2f} | {s['median_width']:.0f} |")
    lines += ["", f"Probe replays: {', '.join(results['replays'])}; {CYCLES} cycles each (the oracle in score "
              "order, 10 + 10 labels per cycle, a random audit of 50 known to the estimator only). "
              f"Protocol runs with training: {results['protocol_runs'] or 'none'}. Target: the truth inside the "
              f"90 % interval in at least {TARGET:.0%} of estimates. The previous estimator is read from git at "
              f"{PREVIOUS}; the others are settings of today's (a prior on the slope centred on 1, its width fixed "
              "or learned from the labels, the posterior's covariance widened or not). Code "
              f"{results['code']}.", "", *by_set_markdown(results), "", *survey_markdown(results)]
    return "\n".join(lines) + "\n"


def by_set_markdown(results: dict) -> list[str]:
    """The adopted estimator's replays set by set: coverage (median width) of each count."""
    lines = [f"| {ADOPTED}: replays of | calibration | estimates | total | next 100 | next 1000 |",
             "|---|---|---|---|---|---|"]
    for name, rows in results["by_set"].items():
        for variant in VARIANTS:
            cells = [f"{rows[f'{variant}/{part}']['coverage']:.0%} ({rows[f'{variant}/{part}']['median_width']:.0f})"
                     for part in PARTS]
            lines.append(f"| {name} | {variant.replace('_', ' ')} | {rows[f'{variant}/total']['estimates']} | "
                         + " | ".join(cells) + " |")
    return lines


def survey_markdown(results: dict) -> list[str]:
    """The synthetic surveys' table: the total's coverage, error and width per true slope."""
    lines = ["| estimator | survey: true slope on the log-odds | calibration | total: interval holds the truth | "
             "median (expected+1)/(true+1) | median width | next 100: holds the truth |",
             "|---|---|---|---|---|---|---|"]
    for estimator in SURVEY_ESTIMATORS:
        for slope in SURVEY_SLOPES:
            rows = results["summaries"][estimator][f"survey slope {slope}"]
            for variant in VARIANTS:
                total, top = rows[f"{variant}/total"], rows[f"{variant}/next100"]
                lines.append(f"| {estimator} | {slope} | {variant.replace('_', ' ')} | {total['coverage']:.0%} | "
                             f"{total['median_ratio']:.2f} | {total['median_width']:.0f} | {top['coverage']:.0%} |")
    return [*lines, "", f"Synthetic surveys ({SURVEY_SEEDS} seeds each): 6,000 images, about 6 % anomalies, the "
                        "top 300 by score reviewed, 60 others audited at random; the truth's log-odds are the slope "
                        "times the scores' minus 2 (slope 1: the scores' own shape, shifted)."]


def previous_estimator():
    """``estimate_remaining`` as it was at ``PREVIOUS``, loaded from git beside today's module."""
    module = types.ModuleType("napari_anomalymatch.core.review.remaining_previous")
    module.__package__ = "napari_anomalymatch.core.review"  # its relative imports resolve as they did
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(git("show", f"{PREVIOUS}:{MODULE}"), f"{PREVIOUS}:{MODULE}", "exec"), module.__dict__)
    return module.estimate_remaining


def setting(**settings):
    """The core's estimator with some of its settings changed."""
    return lambda scores, labels, horizons, level: estimate_remaining(scores, labels, horizons, level, **settings)


FREE = (SLOPE_SCALES[-1],)  # a prior too wide to matter: the free fit
ESTIMATORS = {f"previous ({PREVIOUS}): free fit, bootstrap": previous_estimator,
              "free fit (Laplace)": lambda: setting(slope_scales=FREE, widening=1.0),
              "slope prior sd 0.25": lambda: setting(slope_scales=(0.25,), widening=1.0),
              "slope prior sd 0.25, widened x9": lambda: setting(slope_scales=(0.25,), widening=9.0),
              "learned prior": lambda: setting(widening=1.0),
              "learned prior, widened x4": lambda: setting(widening=4.0),
              ADOPTED: lambda: estimate_remaining}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--inputs", nargs="*", type=Path, default=[],
                        help="*.remaining.npz of protocol runs with training (anomalymatch evaluate --json)")
    args = parser.parse_args(argv)
    sources = {f"{name} seed {seed}": ("replay", replay_inputs(name, seed))
               for name in args.sets for seed in args.seeds}
    sources.update({str(path.relative_to(WORK) if path.is_relative_to(WORK) else path):
                    ("protocol", dict(np.load(path))) for path in args.inputs})
    sources.update({f"survey slope {slope} seed {seed}": (f"survey slope {slope}", survey_inputs(slope, seed))
                    for slope in SURVEY_SLOPES for seed in range(SURVEY_SEEDS)})
    results = {"code": code_version(), "replays": [k for k, (kind, _) in sources.items() if kind == "replay"],
               "protocol_runs": [k for k, (kind, _) in sources.items() if kind == "protocol"], "summaries": {}}
    for estimator_name, make in ESTIMATORS.items():
        estimator, records = make(), defaultdict(list)
        for source, (kind, inputs) in sources.items():
            if kind.startswith("survey") and estimator_name not in SURVEY_ESTIMATORS:
                continue
            for cycle in measure_again(inputs, estimator):
                records[kind] += [{"source": source, "cycle": cycle["cycle"], "variant": variant,
                                   "estimate": cycle[variant]} for variant in VARIANTS if "total" in cycle[variant]]
        results["summaries"][estimator_name] = {kind: summary(found) for kind, found in records.items() if found}
        if estimator_name == ADOPTED:
            of_set = {name: [r for r in records["replay"] if r["source"].startswith(f"{name} seed ")]
                      for name in args.sets}
            results["by_set"] = {name: summary(found) for name, found in of_set.items()}
        print(estimator_name, "done", flush=True)
    (RESULTS / "remaining_replay.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "remaining_replay.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
