"""A table of each head's ranking, cycle by cycle, from ``anomalymatch evaluate --compare-heads`` results.

Usage::

    python benchmarks/heads_table.py benchmarks/results/lpft_first/*.json --out benchmarks/results/lpft_first.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rows(path: Path) -> list[str]:
    result = json.loads(path.read_text())
    settings = result["settings"]
    name = Path(settings["manifest"]).parent.name
    crop = settings["data"]["normalisation"]["crop"]
    rate = settings["train"].get("backbone_lr_scale")
    rate = "default" if rate is None else rate
    views = "8 views" if settings["score"]["tta"] else "1 view"
    lines = []
    for cycle in result["cycles"]:
        heads = "; ".join(f"{head} {m['auroc']:.3f} / {m['auprc']:.3f}" for head, m in cycle["head_metrics"].items())
        lines.append(f"| {path.stem} | {name} | {settings['train']['head']} | {rate} | {crop} | {views} | "
                     f"{settings['oracle']['order']} | "
                     f"{cycle['cycle']} | {heads} | {cycle['train_seconds_per_iteration']:.2f} |")
    return lines


def final_row(path: Path) -> str:
    """One line per run: its variant and every head's ranking after the last cycle."""
    result = json.loads(path.read_text())
    last = result["cycles"][-1]["head_metrics"]
    heads = "; ".join(f"{head} {m['auroc']:.3f} / {m['auprc']:.3f}" for head, m in last.items())
    follows = result.get("oracle_follows", result["settings"]["train"]["head"])
    return f"| {path.stem} | {result.get('variant', '')} | {follows} | {heads} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    lines = ["AUROC / AUPRC of the still-unlabelled images after each cycle, every head scored on the "
             "same labels (the oracle followed the run's head). The seconds per iteration are as "
             "measured, on whatever host ran them: see each file's settings.", "",
             "| file | manifest | head | backbone rate | crop | scored in | oracle | cycle | heads | "
             "train s/iteration |", "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(args.results):
        lines.extend(rows(path))
    lines += ["", "After the last cycle (a run's `variant` says what it changed; the oracle followed the "
              "head named):", "", "| file | variant | oracle followed | heads (AUROC / AUPRC) |", "|---|---|---|---|"]
    lines.extend(final_row(path) for path in sorted(args.results))
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
