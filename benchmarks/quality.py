"""The paper's protocol on real data: CIFAR-10 (natural images), FIRST radio galaxies and GZ1
colour SDSS galaxies.

Builds benchmark manifests deterministically from a seed, runs ``anomalymatch evaluate`` on
each (3 cycles x 100 iterations, 10 + 10 oracle labels per cycle, 64x64 on the CPU), and writes
``benchmarks/results/quality.json`` and ``quality.md`` (mean +- std next to the paper's figures).

* CIFAR-10 (stands in for the paper's miniImageNet): the train split's nine normal classes
  (45,000 images) plus 455 images of the anomaly class (1 %); 5 labelled anomalies and 495
  labelled normal images; classes cat, ship, frog, truck and bird in turn.
* FIRST (stands in for GalaxyMNIST): each of FRI, FRII, Compact and Bent in turn as the anomaly at
  its natural share against the other three; 10 labelled anomalies and 30 normal.
* GZ1 (colour optical galaxies, 423 px SDSS cutouts with Galaxy Zoo 1 classes): mergers at their
  natural 1.7 % against every other class, and edge-on spirals subsampled to 5 % against
  ellipticals and face-on spirals; 5 labelled anomalies and 45 normal. The unsure class is left out.

Every run also measures each cycle on a fixed test split the oracle never sees
(``evaluate --test-fraction``), so the cycles compare like with like.

Usage::

    python benchmarks/quality.py --quick            # one class, one seed per dataset
    python benchmarks/quality.py                     # everything, 3 seeds (about 2 hours on 2 cores)
    python benchmarks/quality.py --datasets first --seeds 0 -- --probe-c 1   # extra evaluate options
    python benchmarks/quality.py --datasets cifar10 --cifar-seeds 2 \
        --merge benchmarks/results/quality.json   # add seed 2 to the seeds recorded before
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
RESULTS = HERE / "results"
CIFAR_ARCHIVE = HERE.parent.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_ANOMALIES = ("cat", "ship", "frog", "truck", "bird")
FIRST_ANOMALIES = ("FRI", "FRII", "Compact", "Bent")
PAPER = {
    "cifar10": {"dataset": "miniImageNet, 1 % anomalies", "auroc": 0.96, "auprc": 0.82,
                "precision_top1pct": 0.76},
    "first": {"dataset": "GalaxyMNIST", "auroc": 0.89, "auprc": 0.77, "precision_top1pct": None},
    "gz1": {"dataset": "GalaxyMNIST", "auroc": 0.89, "auprc": 0.77, "precision_top1pct": None},
}
PROTOCOL = ["--cycles", "3", "--iterations", "100", "--size", "64"]
# No per-dataset options: the defaults choose from the images themselves (the central crop, the
# probe's views), as they must for a survey whose user does not know what suits it.
DATASET_OPTIONS: dict[str, list[str]] = {"cifar10": [], "first": [], "gz1": []}
DATASETS = ("cifar10", "first", "gz1")


def extracted(archive: Path, into: Path, marker: Path, option: str) -> None:
    """Extract ``archive`` into ``into`` once (``marker`` exists afterwards); never committed."""
    if marker.exists():
        return
    if not archive.exists():
        sys.exit(f"{archive}: archive not found; pass {option}")
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as handle:
        handle.extractall(into, filter="data")


def cifar_root(archive: Path) -> Path:
    """CIFAR-10's JPEGs, extracted once into ``benchmarks/work/cifar10``."""
    root = WORK / "cifar10"
    extracted(archive, root, root / "train" / "cat", "--cifar-archive")
    return root


def write_manifest(path: Path, normal: list[Path], anomalies: list[Path], rng: np.random.Generator,
                   labelled_anomalies: int, labelled_normal: int) -> Path:
    """An evaluate manifest of ``normal`` then ``anomalies``, a few of each labelled (drawn from ``rng``)."""
    initial = {}
    for group, count, label in ((anomalies, labelled_anomalies, "anomaly"), (normal, labelled_normal, "normal")):
        for i in rng.choice(len(group), count, replace=False):
            initial[group[i]] = label
    path.parent.mkdir(parents=True, exist_ok=True)
    is_anomaly = set(anomalies)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "is_anomaly", "initial_label"])
        for image in normal + anomalies:
            writer.writerow([os.path.relpath(image, path.parent), int(image in is_anomaly), initial.get(image, "")])
    return path


def cifar_manifest(root: Path, anomaly: str, seed: int, n_anomalies: int = 455,
                   labelled_anomalies: int = 5, labelled_normal: int = 495) -> Path:
    """45,000 normal train images + ``n_anomalies`` of ``anomaly``; a few labelled, from ``seed``."""
    rng = np.random.default_rng([seed, CIFAR_CLASSES.index(anomaly)])
    normal = [p for c in CIFAR_CLASSES if c != anomaly for p in sorted((root / "train" / c).glob("*.jpg"))]
    pool = sorted((root / "train" / anomaly).glob("*.jpg"))
    anomalies = [pool[i] for i in sorted(rng.choice(len(pool), n_anomalies, replace=False))]
    path = WORK / "manifests" / f"cifar10-{anomaly}-seed{seed}.csv"
    return write_manifest(path, normal, anomalies, rng, labelled_anomalies, labelled_normal)


GZ1_ARCHIVE = HERE.parent.parent / "shared" / "data" / "gz1-sdss-jpeg.tar.gz"
# Galaxy Zoo 1 classes (labels.csv): 4 is "don't know", left out of every pool.
GZ1_CLASSES = {"elliptical": 0, "spiral-cw": 1, "spiral-acw": 2, "edge-on": 3, "merger": 5}
GZ1_UNSURE = 4
# The rare class and its share of the pool: mergers at their natural 1.7 %, edge-on subsampled.
GZ1_ANOMALIES = {"merger": None, "edge-on": 0.05}


def gz1_root(archive: Path) -> Path:
    """The GZ1 SDSS cutouts, extracted once into ``benchmarks/work/gz1``."""
    root = WORK / "gz1"
    extracted(archive, WORK, root / "labels.csv", "--gz1-archive")
    return root


def gz1_manifest(root: Path, anomaly: str, seed: int, labelled_anomalies: int = 5,
                 labelled_normal: int = 45) -> Path:
    """Every GZ1 galaxy but the unsure ones, ``anomaly`` at its natural share or subsampled to
    ``GZ1_ANOMALIES[anomaly]`` (edge-on against ellipticals and spirals, mergers left out); a
    few labelled, from ``seed``."""
    with open(root / "labels.csv", newline="") as handle:
        rows = [(row["OBJID"], int(row["CLASS"])) for row in csv.DictReader(handle)]
    code = GZ1_CLASSES[anomaly]
    share = GZ1_ANOMALIES[anomaly]
    rng = np.random.default_rng([seed, code])
    excluded = {GZ1_UNSURE} | ({GZ1_CLASSES["merger"]} if share is not None else set())
    normal = [objid for objid, cls in rows if cls != code and cls not in excluded]
    anomalies = [objid for objid, cls in rows if cls == code]
    if share is not None:
        wanted = int(round(share * len(normal) / (1 - share)))
        anomalies = [anomalies[i] for i in sorted(rng.choice(len(anomalies), wanted, replace=False))]
    images = [root / "images" / f"{objid}.jpeg" for objid in normal + anomalies]
    path = WORK / "manifests" / f"gz1-{anomaly}-seed{seed}.csv"
    return write_manifest(path, images[:len(normal)], images[len(normal):], rng, labelled_anomalies, labelled_normal)


def first_manifest(anomaly: str, seed: int) -> Path:
    from napari_anomalymatch.core.evaluation.demo import write_first_benchmark

    out = WORK / "first" / f"{anomaly}-seed{seed}"
    return write_first_benchmark(out, anomaly_class=anomaly, anomaly_fraction=None,
                                 labelled_anomalies=10, labelled_normal=30, seed=seed)


def run_one(manifest: Path, seed: int, extra: list[str], reuse: bool = False, compare_heads: bool = True) -> dict:
    """Run ``anomalymatch evaluate`` (or, with ``reuse``, read the result an earlier run left).

    ``compare_heads``: also score with the heads not chosen (for the ablation's head table); the
    time this takes is subtracted from ``protocol_seconds``.
    """
    out = manifest.with_suffix(f".result{'-'.join(extra).replace('--', '_') or ''}.json")
    if reuse and out.exists():
        result = json.loads(out.read_text())
        if result.get("code") == code_version():  # only runs of the same package code
            result.setdefault("wall_seconds", None)  # not recorded by older runs
            return result
    command = [sys.executable, "-m", "napari_anomalymatch.cli", "evaluate", str(manifest), *PROTOCOL,
               "--seed", str(seed), "--json", str(out), *(["--compare-heads"] if compare_heads else []), *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    result["wall_seconds"] = time.perf_counter() - started
    result["code"] = code_version()
    # Scoring the heads not chosen is for the ablation's comparison, not part of the protocol.
    result["protocol_seconds"] = result["wall_seconds"] - result.get("comparison_seconds", 0.0)
    out.write_text(json.dumps(result, indent=1))
    return result


def git(*args: str) -> str:
    """A git command's output, run in this folder."""
    return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True).stdout.strip()


def source_changed() -> bool:
    """Whether the package's source differs from the checked-out commit."""
    return bool(git("status", "--porcelain", "--", "../src"))


def code_version() -> str:
    """The git tree hash of the package's source (``-dirty`` with uncommitted changes to it)."""
    return git("rev-parse", "HEAD:src") + ("-dirty" if source_changed() else "")


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for key in ("auroc", "auprc", "precision_top1pct", "precision_top0.1pct", "anomalies_in_top50",
                "wall_seconds", "protocol_seconds", "train_seconds_per_iteration", "score_images_per_second"):
        values = np.array([r[key] for r in runs if r.get(key) is not None], dtype=float)
        summary[f"{key}_mean"] = float(values.mean()) if values.size else None
        summary[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    reviewed = [value for value in map(oracle_reviewed, runs) if value is not None]
    summary["oracle_reviewed_mean"] = float(np.mean(reviewed)) if reviewed else None
    summary["runs"] = runs
    return summary


def oracle_reviewed(run: dict) -> float | None:
    """Images the oracle looked through per labelling round of a run (None: not recorded, the
    runs from before the oracle had a review order, when it took the top-scoring ones)."""
    counts = [c["oracle_reviewed"] for c in run.get("cycles", [])[:-1] if "oracle_reviewed" in c]
    return float(np.mean(counts)) if counts else None


def markdown(datasets: dict, settings: dict) -> str:
    lines = ["| dataset | anomaly | runs | AUROC | AUPRC | precision top 1 % | anomalies in top 50 "
             "| images reviewed per labelling round | minutes/run (protocol) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, summary in datasets.items():
        by_class: dict[str, list[dict]] = {}
        for run in summary["runs"]:
            by_class.setdefault(run["anomaly_class"], []).append(run)
        for cls, runs in by_class.items():
            lines.append(_row(name, cls, summarise(runs)))
        lines.append(_row(name, "**mean**", summarise(summary["runs"])))  # recorded summaries may predate a column
        paper = PAPER[name]
        top1 = f"{paper['precision_top1pct']:.2f}" if paper["precision_top1pct"] is not None else "–"
        lines.append(f"| paper ({paper['dataset']}) | | | {paper['auroc']:.2f} | {paper['auprc']:.2f} | {top1} | | | |")
    lines.append("")
    lines.append(f"Settings: {json.dumps(settings)}")
    return "\n".join(lines) + "\n"


def _row(name: str, cls: str, s: dict) -> str:
    def pm(key: str, digits: int = 3) -> str:
        return f"{s[key + '_mean']:.{digits}f} ± {s[key + '_std']:.{digits}f}"

    return (f"| {name} | {cls} | {len(s['runs'])} | {pm('auroc')} | {pm('auprc')} | "
            f"{pm('precision_top1pct', 2)} | {pm('anomalies_in_top50', 1)} | {_reviewed(s)} | {_minutes(s)} |")


def _reviewed(summary: dict) -> str:
    value = summary.get("oracle_reviewed_mean")
    return "–" if value is None else f"{value:.0f}"


def _minutes(summary: dict) -> str:
    """Minutes per run, the protocol's own (runs from before protocol_seconds: their wall time)."""
    seconds = summary.get("protocol_seconds_mean") or summary["wall_seconds_mean"]
    return f"{seconds / 60:.1f}"


def recorded_datasets(path: Path, extra: list[str]) -> dict:
    """Datasets an earlier run with the same extra options wrote to ``path`` (kept when not re-run)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return data["datasets"] if data["settings"].get("extra") == extra else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one class and one seed per dataset")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    for dataset, classes in (("cifar", CIFAR_ANOMALIES), ("first", FIRST_ANOMALIES), ("gz1", tuple(GZ1_ANOMALIES))):
        parser.add_argument(f"--{dataset}-seeds", nargs="*", type=int, default=None,
                            help=f"seeds for {dataset} only (default: --seeds; none: run nothing, see --merge)")
        parser.add_argument(f"--{dataset}-classes", nargs="+", default=list(classes))
    parser.add_argument("--cifar-archive", type=Path, default=CIFAR_ARCHIVE)
    parser.add_argument("--gz1-archive", type=Path, default=GZ1_ARCHIVE)
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    parser.add_argument("--reuse", action="store_true",
                        help="read runs an interrupted call finished with the same package code")
    parser.add_argument("--merge", nargs="+", type=Path, default=[], metavar="JSON",
                        help="results files of earlier calls whose runs of the same datasets and options "
                             "count too (a class and seed run again by this call replace theirs)")
    parser.add_argument("--no-compare-heads", action="store_true",
                        help="score only with the default head (the other heads are not reported)")
    parser.add_argument("extra", nargs="*", help="options passed on to anomalymatch evaluate (after --)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.cifar_classes, args.first_classes, args.gz1_classes = [0], ["cat"], ["Bent"], ["merger"]
        args.cifar_seeds = args.first_seeds = args.gz1_seeds = None
    prefix = {"cifar10": "cifar", "first": "first", "gz1": "gz1"}
    datasets = {}
    for dataset in args.datasets:
        runs = []
        classes = getattr(args, f"{prefix[dataset]}_classes")
        seeds = getattr(args, f"{prefix[dataset]}_seeds")
        for cls in classes:
            for seed in args.seeds if seeds is None else seeds:
                result = run_one(build_manifest(dataset, cls, seed, args), seed, DATASET_OPTIONS[dataset] + args.extra,
                                 reuse=args.reuse, compare_heads=not args.no_compare_heads)
                result.update(anomaly_class=cls, seed=seed, dataset=dataset)
                runs.append(result)
                print(f"{dataset} {cls} seed {seed}: AUROC {result['auroc']:.3f} AUPRC {result['auprc']:.3f} "
                      f"top-1% {result['precision_top1pct']:.2f} ({result['wall_seconds']:.0f} s)", flush=True)
        options = DATASET_OPTIONS[dataset] + args.extra
        runs = merged_runs(runs, args.merge, dataset, options, classes)
        if not runs:
            sys.exit(f"{dataset}: no runs to summarise; give it seeds, or --merge files that recorded some")
        datasets[dataset] = {**summarise(runs), "classes": _unique(r["anomaly_class"] for r in runs),
                             "seeds": sorted(_unique(r["seed"] for r in runs)), "options": options,
                             "heads_compared": all(map(heads_compared, runs))}
    datasets = {**recorded_datasets(args.out, args.extra), **datasets}
    write_results(args.out, datasets, args.extra)
    print(args.out.with_suffix(".md").read_text())
    return 0


def build_manifest(dataset: str, anomaly: str, seed: int, args: argparse.Namespace) -> Path:
    """The manifest of one run: ``dataset``'s ``anomaly`` class, its labels drawn from ``seed``."""
    if dataset == "cifar10":
        return cifar_manifest(cifar_root(args.cifar_archive), anomaly, seed)
    if dataset == "gz1":
        return gz1_manifest(gz1_root(args.gz1_archive), anomaly, seed)
    return first_manifest(anomaly, seed)


def heads_compared(run: dict) -> bool:
    """Whether a run also scored with the heads it did not rank by (``--compare-heads``)."""
    cycles = run.get("cycles") or [{}]
    return len(cycles[-1].get("head_metrics", {})) > 1


def merged_runs(runs: list[dict], files: list[Path], dataset: str, options: list[str],
                classes: list[str]) -> list[dict]:
    """``runs`` and the runs of ``dataset`` that ``files`` recorded with the same ``options``,
    one per class and seed: this call's, else the last file's; ordered by class, then seed.
    Each run keeps the package code it ran (``code``)."""
    chosen: dict[tuple[str, int], dict] = {}
    for path in files:
        if not path.exists():
            sys.exit(f"{path}: results file not found (--merge)")
        entry = json.loads(path.read_text()).get("datasets", {}).get(dataset)
        if entry is None:
            continue
        if entry.get("options") != options:
            sys.exit(f"{path}: its {dataset} runs used evaluate options {entry.get('options')}, not "
                     f"{options}; runs of different settings cannot be pooled")
        chosen.update({(run["anomaly_class"], run["seed"]): run for run in entry["runs"]})
    chosen.update({(run["anomaly_class"], run["seed"]): run for run in runs})
    order = {name: i for i, name in enumerate(classes)}
    return sorted(chosen.values(), key=lambda r: (order.get(r["anomaly_class"], len(order)),
                                                  r["anomaly_class"], r["seed"]))


def _unique(values) -> list:
    return list(dict.fromkeys(values))


def write_results(out: Path, datasets: dict, extra: list[str]) -> None:
    """``out`` (JSON) and its Markdown table; the settings say what each dataset's runs used,
    including datasets kept from an earlier call, and which package code (the git tree of
    ``src``) they ran."""
    settings = {"protocol": PROTOCOL, "extra": extra,
                "seeds": {name: entry["seeds"] for name, entry in datasets.items()},
                "dataset_options": {name: entry["options"] for name, entry in datasets.items()},
                "package_code": {name: sorted(_unique(str(r.get("code")) for r in entry["runs"]))
                                 for name, entry in datasets.items()},
                **{f"{name}_classes": datasets.get(name, {}).get("classes") for name in DATASETS}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"datasets": datasets, "settings": settings, "paper": PAPER}, indent=1))
    out.with_suffix(".md").write_text(markdown(datasets, settings))


if __name__ == "__main__":
    sys.exit(main())
