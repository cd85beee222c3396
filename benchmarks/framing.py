"""How tightly to frame the object: the frozen probe replayed in the paper's protocol per crop.

The central crop decides how many of the model's 64 pixels the object gets. This script embeds
each development set once per crop with the frozen pretrained network (the probe's features;
the image and its mirror) and replays the protocol on those features with the probe alone,
over several seeds: 3 cycles, after cycles 1 and 2 the oracle labels the 10 highest-scoring
true anomalies and normal images it may review, and every cycle is measured on the fixed test
split the oracle never reviews (``evaluate --test-fraction``). The probe is refitted in closed
form, so a run takes a second once the features are cached; what FixMatch adds is measured by
``quality.py``, not here. ``auto`` is the crop the session would choose (``core.io.autocrop``).
The probe reads morphology statistics where the session would (single-band images, and colour
images of a central source); ``--morphology off`` replays without them, for the ablation.

Usage::

    python benchmarks/framing.py                                  # the sets and crops below
    python benchmarks/framing.py --sets merger --crops 0.25 0.5 --seeds 0 1
    python benchmarks/framing.py --sets merger --morphology off   # without morphology statistics
    python benchmarks/framing.py --render                         # the table again from the JSON

A call replaces the rows of the sets it runs with the same ``--morphology``; other rows stay.

Features are cached in ``benchmarks/work/framing``; writes ``benchmarks/results/framing.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from napari_anomalymatch.core.config import SessionConfig
from napari_anomalymatch.core.evaluation.manifest import read_benchmark
from napari_anomalymatch.core.evaluation.metrics import ranking_metrics
from napari_anomalymatch.core.evaluation.protocol import OracleSettings, held_out_split, oracle_picks
from napari_anomalymatch.core.io.autocrop import resolve_automatic
from napari_anomalymatch.core.labels import UNLABELED
from napari_anomalymatch.core.learning.models import build_model
from napari_anomalymatch.core.learning.probe import FrozenEmbedder, embed_views, probe_input, statistics_of
from napari_anomalymatch.core.loading import load_images
from napari_anomalymatch.core.transforms import Normaliser

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import (  # noqa: E402
    CIFAR_ANOMALIES,
    CIFAR_ARCHIVE,
    GZ1_ARCHIVE,
    GZ1_UNSURE,
    RESULTS,
    WORK,
    cifar_manifest,
    cifar_root,
    code_version,
    first_manifest,
    gz1_manifest,
    gz1_root,
)

CACHE = WORK / "framing"
SIZE = 64
VIEWS = (0, 4)  # the image and its mirror
CYCLES = 3
SETS = {"merger": "gz1", "edge-on": "gz1", "Bent": "first", "FRI": "first", "FRII": "first", "Compact": "first",
        **{name: "cifar10" for name in CIFAR_ANOMALIES}}
CROPS = ("auto", "1.0", "0.5", "0.375", "0.3125", "0.25")
SEEDS = {"gz1": range(8), "first": range(5), "cifar10": range(3)}
WITHOUT_MORPHOLOGY = " · no morphology"  # the row label's suffix for --morphology off


def frozen_features(benchmark, config: SessionConfig, views: tuple[int, ...]) -> tuple[torch.Tensor, np.ndarray, int]:
    """The frozen pretrained embedder's features ``(views, N, D)`` of every image of ``benchmark``
    prepared as ``config`` (its crop resolved) says, the mask of the usable images, and how many
    statistics end each feature (the probe's reading, without its centring)."""
    size = config.model.image_size
    normaliser = Normaliser(config.data.normalisation, benchmark.collection.value_range)
    loading = load_images(benchmark.collection, normaliser, size, np.arange(len(benchmark.collection)))
    try:
        while True:
            next(loading)
    except StopIteration as done:
        images, valid = done.value
    channels = benchmark.collection.shape[2]
    network = build_model(config.model, channels).model.to(memory_format=torch.channels_last)
    probe = config.probe
    embedder = FrozenEmbedder(network, probe.size, probe.layers, probe.uses_morphology(channels))
    features = embed_views(embedder, images, torch.device("cpu"), views=views)
    return features.reshape(len(views), len(images), -1), np.asarray(valid, dtype=bool), embedder.extra_dims


def prepared(manifest: Path, crop: str, morphology: str) -> tuple[np.ndarray, float, int]:
    """The features ``(views, N, D)`` of every image of ``manifest`` at ``crop``, the crop used
    (``auto``: the session's choice) and how many statistics end each feature."""
    benchmark = read_benchmark(manifest)
    config = SessionConfig()
    config = config.replace(model=replace(config.model, image_size=SIZE),
                            probe=replace(config.probe, morphology=morphology))
    if crop != "auto":
        normalisation = replace(config.data.normalisation, crop=float(crop))
        config = config.replace(data=replace(config.data, normalisation=normalisation))
    config = resolve_automatic(config, benchmark.collection)
    features, _, extra = frozen_features(benchmark, config, VIEWS)
    return features.numpy(), float(config.data.normalisation.crop), extra


def cached_features(manifest: Path, crop: str, key: str, morphology: str) -> dict:
    # colour sets' features with morphology statistics are cached apart (single-band ones always have them)
    colour_morphology = "-morphology" if not key.startswith("first") and morphology != "off" else ""
    path = CACHE / f"{key}-crop{crop}{colour_morphology}-size{SIZE}.npz"
    if not path.exists():
        features, chosen, extra = prepared(manifest, crop, morphology)
        names = [image_key(p) for p in read_benchmark(manifest).collection.paths]
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, features=features.astype(np.float32), names=np.array(names), crop=chosen, extra=extra)
    return dict(np.load(path))


def image_key(path: str) -> str:
    """An image's name within its set (its folder and file), the same in every run's manifest."""
    return "/".join(Path(path).parts[-2:])


def gz1_everything() -> Path:
    """A manifest of every GZ1 galaxy but the unsure ones: embedded once, shared by both GZ1 sets."""
    root = gz1_root(GZ1_ARCHIVE)
    with open(root / "labels.csv", newline="") as handle:
        objids = [row["OBJID"] for row in csv.DictReader(handle) if int(row["CLASS"]) != GZ1_UNSURE]
    return everything("gz1", [root / "images" / f"{objid}.jpeg" for objid in objids])


def cifar_everything() -> Path:
    """A manifest of every CIFAR-10 training image: embedded once, shared by every CIFAR-10 set."""
    return everything("cifar10", sorted(cifar_root(CIFAR_ARCHIVE).glob("train/*/*.jpg")))


def everything(key: str, images: list[Path]) -> Path:
    """A manifest of ``images`` (the first labelled an anomaly, the second normal: read_benchmark
    needs one label of each class), written once as ``manifests/{key}-everything.csv``."""
    path = WORK / "manifests" / f"{key}-everything.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "is_anomaly", "initial_label"])
            for i, image in enumerate(images):
                writer.writerow([os.path.relpath(image, path.parent), int(i == 0),
                                 "anomaly" if i == 0 else "normal" if i == 1 else ""])
    return path


def probe_inputs(name: str, seed: int, crop: str, morphology: str) -> tuple[np.ndarray, object, float]:
    """The probe's inputs ``(views, N, D)`` of one run's images, its benchmark and the crop."""
    if SETS[name] == "gz1":
        manifest = gz1_manifest(gz1_root(GZ1_ARCHIVE), name, seed)
        cached = cached_features(gz1_everything(), crop, "gz1", morphology)
    elif SETS[name] == "cifar10":
        manifest = cifar_manifest(cifar_root(CIFAR_ARCHIVE), name, seed)
        cached = cached_features(cifar_everything(), crop, "cifar10", morphology)
    else:
        manifest = first_manifest(name, seed)
        cached = cached_features(manifest, crop, f"first-{name}", morphology)
    benchmark = read_benchmark(manifest)
    row_of = {image: i for i, image in enumerate(cached["names"])}
    rows = np.array([row_of[image_key(p)] for p in benchmark.collection.paths])
    features = torch.from_numpy(cached["features"][:, rows])
    statistics = statistics_of(features[0], int(cached["extra"]))
    limit = torch.tensor(statistics.extra_limit)
    x = torch.stack([probe_input(view, statistics.centre, statistics.extra_scale, limit) for view in features])
    return x.numpy(), benchmark, float(cached["crop"])


def replay(x: np.ndarray, truth: np.ndarray, initial: np.ndarray, seed: int, hard_weight: float = 1.0,
           average: bool = False, novelty: np.ndarray | None = None, novelty_weight: float = 0.0) -> list[dict]:
    """Per cycle, the probe's test-split and never-labelled-pool metrics.

    The variants ``replay_variants.py`` measures: the normal images the oracle labels weigh
    ``hard_weight``; ``average``: each cycle's scores are averaged with the previous cycle's;
    ``novelty_weight`` standard scores of ``novelty`` are added to the probe's standardised log-odds.
    """
    labels = initial.copy()
    ever = labels != UNLABELED
    weight = np.ones(len(labels))
    test = held_out_split(truth, ~ever, OracleSettings().test_fraction, seed)
    regularisation = SessionConfig().probe.regularisation
    cycles, previous = [], None
    for cycle in range(1, CYCLES + 1):
        labelled = np.flatnonzero(ever)
        probe = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000)
        probe.fit(np.concatenate([view[labelled] for view in x]), np.tile(labels[labelled], len(x)),
                  sample_weight=np.tile(weight[labelled], len(x)))
        scores = np.mean([probe.decision_function(view) for view in x], axis=0)
        if novelty_weight:
            scores = scores / scores.std() + novelty_weight * novelty
        if average and previous is not None:
            scores = (scores + previous) / 2
        previous = scores
        pool = ~ever
        cycles.append({"test": _brief(ranking_metrics(scores[test], truth[test])),
                       "pool": _brief(ranking_metrics(scores[pool], truth[pool]))})
        if cycle < CYCLES:
            picks, _ = oracle_picks(scores, truth, pool & ~test, OracleSettings(), seed)
            labels[picks] = truth[picks].astype(labels.dtype)
            ever[picks] = True
            weight[picks[truth[picks] == 0]] = hard_weight
    return cycles


def _brief(metrics: dict) -> dict:
    return {key: metrics[key] for key in ("auroc", "auprc")}


def _mean_cell(runs: list[list[dict]], where: str, cycle: int) -> str:
    return " / ".join(f"{np.mean([run[cycle][where][key] for run in runs]):.3f}" for key in ("auroc", "auprc"))


def markdown(results: dict) -> str:
    lines = ["| set | crop | runs | " + " | ".join(f"test cycle {c} AUROC / AUPRC" for c in range(1, CYCLES + 1))
             + f" | pool cycle {CYCLES} AUROC / AUPRC |", "|---|---|---|" + "---|" * (CYCLES + 1)]
    for name, by_crop in results["sets"].items():
        for crop, entry in by_crop.items():
            runs = entry["runs"]
            label = crop.replace("auto", f"auto ({entry['crop']:g})", 1)
            lines.append(f"| {name} | {label} | {len(runs)} | "
                         + " | ".join(_mean_cell(runs, "test", c) for c in range(CYCLES))
                         + f" | {_mean_cell(runs, 'pool', CYCLES - 1)} |")
    return "\n".join(lines) + (f"\n\nFrozen probe (C = {SessionConfig().probe.regularisation:g}) at {SIZE} px, the "
                               "image and its mirror; means over seeds. Morphology statistics read as a session "
                               f"would, except in rows marked '{WITHOUT_MORPHOLOGY.strip(' ·')}'.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # CIFAR-10's 32-pixel photographs pose no framing question: its sets only on request
    parser.add_argument("--sets", nargs="+", choices=list(SETS),
                        default=[name for name in SETS if SETS[name] != "cifar10"])
    parser.add_argument("--crops", nargs="+", default=list(CROPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--morphology", choices=("auto", "off"), default="auto",
                        help="auto: the statistics wherever a session would read them; off: never")
    parser.add_argument("--render", action="store_true", help="rewrite framing.md from framing.json")
    args = parser.parse_args(argv)
    out = RESULTS / "framing.json"
    if not args.render:
        results = json.loads(out.read_text()) if out.exists() else {"sets": {}}
        results.update(code=code_version(), size=SIZE)
        for name in args.sets:
            kept = {key: entry for key, entry in results["sets"].get(name, {}).items()
                    if entry.get("morphology", "auto") != args.morphology}
            results["sets"][name] = kept
            for crop in args.crops:
                runs, chosen = [], None
                for seed in args.seeds if args.seeds is not None else SEEDS[SETS[name]]:
                    x, benchmark, chosen = probe_inputs(name, seed, crop, args.morphology)
                    runs.append(replay(x, benchmark.is_anomaly, benchmark.initial_labels, seed))
                key = crop + (WITHOUT_MORPHOLOGY if args.morphology == "off" else "")
                kept[key] = {"crop": chosen, "morphology": args.morphology, "runs": runs}
                print(f"{name} crop {crop} ({chosen:g}), morphology {args.morphology}: done", flush=True)
        out.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(json.loads(out.read_text())))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
