"""Directions for learning from the rounds of labels, replayed with the frozen probe.

The same replay as ``framing.py`` (the paper's protocol on cached frozen features, the probe
refitted in closed form each cycle, every cycle measured on the fixed test split) with the
session's own framing and morphology, varying what the probe does with the oracle's rounds:

* ``default``: the session's probe;
* ``hard-negatives-0.3``: the normal images the oracle labelled (the highest-scoring ones, which
  pull a boundary fitted on a few dozen labels towards them) weigh 0.3 of an initial label;
* ``average-rounds``: each cycle's score is the mean of its probe's and the previous cycle's;
* ``novelty-0.25``, ``novelty-0.5``: the probe's log-odds (in units of their spread) plus this
  many standard scores of each image's distance to its 10th nearest neighbour (a blend in the
  spirit of Astronomaly's NeighbourScore).

Usage::

    python benchmarks/replay_variants.py                 # every set, 5 seeds (CIFAR-10: 3)
    python benchmarks/replay_variants.py --sets FRI --seeds 0 1

Writes ``benchmarks/results/replay_variants.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from framing import CYCLES, SETS, _mean_cell, probe_inputs, replay  # noqa: E402
from quality import RESULTS, code_version  # noqa: E402

VARIANTS = {"default": {}, "hard-negatives-0.3": {"hard_weight": 0.3}, "average-rounds": {"average": True},
            "novelty-0.25": {"novelty": 0.25}, "novelty-0.5": {"novelty": 0.5}}
NEIGHBOUR = 10


def neighbour_novelty(x: np.ndarray) -> np.ndarray:
    """Each image's distance to its ``NEIGHBOUR``-th nearest neighbour, as a standard score."""
    points = torch.from_numpy(x)
    distances = torch.cdist(points, points)
    distances.fill_diagonal_(float("inf"))
    kth = distances.topk(NEIGHBOUR, largest=False).values[:, -1].numpy()
    return (kth - kth.mean()) / kth.std()


def markdown(results: dict) -> str:
    lines = ["| set | variant | runs | " + " | ".join(f"test cycle {c} AUROC / AUPRC" for c in range(1, CYCLES + 1))
             + f" | pool cycle {CYCLES} AUROC / AUPRC |", "|---|---|---|" + "---|" * (CYCLES + 1)]
    for name, variants in results["sets"].items():
        for variant, runs in variants.items():
            if not runs:  # a variant not run on this set
                continue
            lines.append(f"| {name} | {variant} | {len(runs)} | "
                         + " | ".join(_mean_cell(runs, "test", c) for c in range(CYCLES))
                         + f" | {_mean_cell(runs, 'pool', CYCLES - 1)} |")
    return "\n".join(lines) + "\n\nFrozen probe at 64 px with the session's crop and morphology; means over seeds.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="default: 5 seeds, 3 for CIFAR-10's classes")
    args = parser.parse_args(argv)
    out = RESULTS / "replay_variants.json"
    results = json.loads(out.read_text()) if out.exists() else {"sets": {}}  # other sets' rows stay
    results["code"] = code_version()
    for name in args.sets:
        seeds = args.seeds if args.seeds is not None else list(range(3 if SETS[name] == "cifar10" else 5))
        runs: dict[str, list] = {variant: [] for variant in VARIANTS}
        for seed in seeds:
            x, benchmark, _ = probe_inputs(name, seed, "auto", "auto")
            cifar = SETS[name] == "cifar10"  # 45,000 images: a full distance matrix would not fit
            novelty = None if cifar else neighbour_novelty(x[0])
            for variant, options in VARIANTS.items():
                if cifar and "novelty" in options:
                    continue
                runs[variant].append(replay(x, benchmark.is_anomaly, benchmark.initial_labels, seed,
                                            hard_weight=options.get("hard_weight", 1.0),
                                            average=options.get("average", False), novelty=novelty,
                                            novelty_weight=options.get("novelty", 0.0)))
        results["sets"][name] = runs
        print(f"{name}: done", flush=True)
        out.write_text(json.dumps(results, indent=1))
    out.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
