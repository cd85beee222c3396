"""The estimate of the anomalies left, measured on fast replays of the protocol with the frozen probe.

A protocol run with training costs minutes to an hour on this host; the estimator only needs each
cycle's scores and the labels the review gave. This script replays the paper's protocol with the
frozen probe on cached features (``framing.py``'s: FIRST's four classes, GZ1's mergers and
edge-on spirals; 4 cycles, the oracle in score order, a random audit of 50), records what each
cycle's estimate is made from (``core.evaluation.remaining.RemainingTracker``) and scores the
estimator against the truth: how often the 90 % interval holds the true count, overall and in
the next 100 and 1,000 by rank. ``--inputs`` adds the inputs real protocol runs kept
(``anomalymatch evaluate --json`` writes ``*.remaining.npz``), so a change found on the replays is
checked on runs with training.

    python benchmarks/remaining_replay.py --seeds 0 1 2 3 4
    python benchmarks/remaining_replay.py --inputs benchmarks/work/first/*/manifest.result.remaining.npz

Writes ``benchmarks/results/remaining_replay.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from napari_anomalymatch.core.config import SessionConfig
from napari_anomalymatch.core.evaluation.protocol import OracleSettings, held_out_split, oracle_picks
from napari_anomalymatch.core.evaluation.remaining import RemainingTracker
from napari_anomalymatch.core.labels import UNLABELED
from napari_anomalymatch.core.review.remaining import HORIZONS, LEVEL, CalibrationLabels, estimate_remaining

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from framing import SETS, probe_inputs  # noqa: E402
from quality import RESULTS, WORK, code_version  # noqa: E402
from remaining import TARGET  # noqa: E402

CYCLES = 4
OUT = WORK / "remaining_replay"
PARTS = ("total", *(f"next{n}" for n in HORIZONS))
VARIANTS = ("without_audit", "with_audit")
LABEL_FIELDS = ("reviewed_scores", "reviewed_labels", "audit_scores", "audit_labels")


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


def cases(inputs: dict[str, np.ndarray]) -> list[tuple[str, str, np.ndarray, np.ndarray, CalibrationLabels]]:
    """(cycle, variant, unreviewed scores, their truth, calibration labels) of each recorded estimate."""
    found = []
    for key in sorted(k for k in inputs if k.endswith("__unreviewed_scores")):
        cycle, variant, _ = key.split("__")
        prefix = f"{cycle}__{variant}__"
        labels = CalibrationLabels(*(inputs[prefix + name].astype(np.float64) for name in LABEL_FIELDS))
        found.append((cycle, variant, inputs[key].astype(np.float64), inputs[prefix + "unreviewed_truth"], labels))
    return found


def check(estimator, scores: np.ndarray, truth: np.ndarray, labels: CalibrationLabels) -> dict | None:
    """Each part's estimate and the truth (None where the estimator refuses: too few labels)."""
    try:
        estimate = estimator(scores, labels)
    except Exception as err:  # noqa: BLE001 - the estimator's refusal (ConfigError) or failure, counted
        return None if "at least" in str(err) else {"failed": str(err)}
    by_rank = truth[np.argsort(-scores, kind="stable")]
    true = {"total": int(truth.sum()), **{f"next{n}": int(by_rank[:n].sum()) for n in HORIZONS}}
    parts = {"total": estimate.total, **{f"next{n}": e for n, e in estimate.next.items()}}
    return {part: {"expected": e.expected, "low": e.low, "high": e.high, "true": true[part]}
            for part, e in parts.items()}


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
            for key, s in rows.items():
                variant, part = key.split("/")
                hit = f"**{s['coverage']:.0%}**" if s["coverage"] >= TARGET else f"{s['coverage']:.0%}"
                lines.append(f"| {estimator} | {group} | {variant.replace('_', ' ')} | {part} | {s['estimates']} | "
                             f"{hit} | {s['median_abs_error']:.1f} ({s['mean_true']:.1f}) | "
                             f"{s['median_ratio']:.2f} | {s['median_width']:.0f} |")
    lines += ["", f"Probe replays: {', '.join(results['replays'])}; {CYCLES} cycles each (the oracle in score "
              "order, 10 + 10 labels per cycle, a random audit of 50 known to the estimator only). "
              f"Protocol runs with training: {results['protocol_runs'] or 'none'}. Target: the truth inside the "
              f"90 % interval in at least {TARGET:.0%} of estimates. Code {results['code']}."]
    return "\n".join(lines) + "\n"


def prior_estimator(slope_sd: float, intercept_sd: float, draws: int = 400, inflate: float = 1.0):
    """Platt scaling with a Gaussian prior centred on the score's own calibration (slope 1,
    intercept 0) and the interval from the posterior's Laplace approximation: where the labels
    cover a narrow stretch of scores, the prior, not a flat fit, says how the rest behave."""
    from napari_anomalymatch.core.review import remaining as r

    def estimate(scores, labels):
        z, y, audit, method = r._calibration_set(labels)
        centre = np.array([1.0, 0.0])
        precision = np.diag([1 / slope_sd**2, 1 / intercept_sd**2])
        theta = centre.copy()
        for _ in range(100):
            p = r._sigmoid(theta[0] * z + theta[1])
            gradient = np.array([((y - p) * z).sum(), (y - p).sum()]) - precision @ (theta - centre)
            c = p * (1 - p)
            hessian = np.array([[(c * z * z).sum(), (c * z).sum()], [(c * z).sum(), c.sum()]]) + precision
            step = np.linalg.solve(hessian, gradient)
            theta += step
            if np.abs(step).max() < 1e-9:
                break
        unreviewed = np.sort(r.logit(scores[np.isfinite(scores)]))[::-1]
        sizes = [len(unreviewed)] + [min(int(n), len(unreviewed)) for n in HORIZONS]
        counts, centres = r._binned(unreviewed, sizes)
        point = counts @ r._sigmoid(theta[0] * centres + theta[1])
        rng = np.random.default_rng(0)
        samples = rng.multivariate_normal(theta, inflate * np.linalg.inv(hessian), size=draws)
        means = counts @ r._sigmoid(samples[:, :1] * centres[None, :] + samples[:, 1:]).T
        drawn = rng.poisson(np.maximum(means, 0))
        low, high = np.quantile(drawn, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=1)
        found = [r.Expectation(n, float(e), float(lo), float(hi)) for n, e, lo, hi in zip(sizes, point, low, high)]
        return r.RemainingEstimate(found[0], dict(zip(HORIZONS, found[1:])), method, 0, 0, LEVEL, *theta)

    return estimate


def bootstrap_prior_estimator(slope_sd: float, intercept_sd: float):
    """Today's bootstrap interval, with the ridge centred on the score's own calibration."""
    from napari_anomalymatch.core.review import remaining as r

    def estimate(scores, labels):
        original = r.fit_platt

        def fit(z, y, weights=None, iterations=50):
            w = np.ones((1, len(z))) if weights is None else np.asarray(weights, dtype=np.float64)
            centre, precision = np.array([1.0, 0.0]), np.diag([1 / slope_sd**2, 1 / intercept_sd**2])
            theta = np.tile(centre, (len(w), 1))
            for _ in range(iterations):
                p = r._sigmoid(theta[:, :1] * z + theta[:, 1:])
                residual, curvature = w * (y - p), w * p * (1 - p)
                gradient = np.stack([residual @ z, residual.sum(1)], axis=1) - (theta - centre) @ precision
                zz, z1, n = curvature @ (z * z), curvature @ z, curvature.sum(1)
                hessian = np.stack([np.stack([zz, z1], -1), np.stack([z1, n], -1)], axis=1) + precision
                step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
                theta += step
                if np.abs(step).max() < 1e-8:
                    break
            return theta[0] if weights is None else theta

        r.fit_platt = fit
        try:
            return estimate_remaining(scores, labels, HORIZONS, LEVEL)
        finally:
            r.fit_platt = original

    return estimate


ESTIMATORS = {"current": lambda scores, labels: estimate_remaining(scores, labels, HORIZONS, LEVEL),
              **{f"prior s{s_sd} (Laplace x{k})": prior_estimator(s_sd, 10.0, inflate=k)
                 for s_sd in (0.15, 0.25) for k in (1, 4, 9)},
              "prior s0.15 (bootstrap)": bootstrap_prior_estimator(0.15, 10.0)}


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
    results = {"code": code_version(), "replays": [k for k, (kind, _) in sources.items() if kind == "replay"],
               "protocol_runs": [k for k, (kind, _) in sources.items() if kind == "protocol"], "summaries": {}}
    for estimator_name, estimator in ESTIMATORS.items():
        records = {"replay": [], "protocol": []}
        for source, (kind, inputs) in sources.items():
            for cycle, variant, scores, truth, labels in cases(inputs):
                found = check(estimator, scores, truth, labels)
                if found is not None and "failed" not in found:
                    records[kind].append({"source": source, "cycle": cycle, "variant": variant, "estimate": found})
        results["summaries"][estimator_name] = {kind: summary(found) for kind, found in records.items() if found}
        print(estimator_name, "done", flush=True)
    (RESULTS / "remaining_replay.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "remaining_replay.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
