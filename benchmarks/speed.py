"""Training and scoring speed, and peak memory, written to ``benchmarks/results/speed.json``.

* training: seconds per FixMatch iteration of 16 labelled + 2 x 80 unlabelled images (the
  reference implementation's setting), at 64 and 150 px, for the default lpft network and the
  paper's classifier;
* scoring: images/s through the whole pipeline (read, decode, normalise, resize, model) from a
  folder of PNGs, an HDF5 dataset of JPEG bytes, a uint8 HDF5 dataset, a Zarr array and a FITS
  cube, at 64 and 150 px;
* heads: scoring uint8 HDF5 with each score head: the default lpft network (its pyramid read by
  its head), the classifier alone, the ensemble of classifier and probe on the frozen pretrained
  network (two networks), and the probe alone;
* probe_features: scoring uint8 HDF5 with the probe alone reading the frozen network's pyramid
  features (the default), without and with the morphology statistics that single-band images
  get by default;
* memory: peak RSS of a scoring process as the collection grows from 10^3 to 10^5 images;
* paths: scoring uint8 HDF5 along each CPU inference path (the deprecated TorchScript graph, the
  default before the measured choice; float32 eager; bf16 autocast, plain and with the first
  stages in float32; each eager and with its batch norms folded; torch.compile; ``auto``, the
  measured choice, its measurement included), at 64 and 150 px, with each rate relative to
  TorchScript's;
* agreement: bf16 and bf16 with the first stages in float32 against float32 on the same trained
  model on real data (FIRST radio galaxies, Bent as the anomaly; CIFAR-10 with cat as the
  anomaly): |dAUROC|, top-100 overlap, Spearman's rho, and whether the rule of
  ``core.scoring.pathchoice.AGREEMENT`` lets the precision score;
* int8_paths: the network alone on images held in memory (no reading), each path timed in
  turn in one process: float32 eager (the default path), bf16 and bf16-mixed (eager and
  fused), and the backbone in static int8 (``int8.py``: torchao PT2E, X86InductorQuantizer,
  calibrated on 256 images; whole, and with the first stages float32), at 64 and 128 px,
  with each one's build time;
* int8_agreement: int8 and int8-mixed against float32 on the models of ``agreement``.

Each measurement runs in a fresh process (so peak RSS is that run's own). The data are synthetic
galaxy-like cutouts written under ``benchmarks/work/speed`` (git-ignored). The machine is shared
and noisy: compare figures from one run of this script.

Usage::

    python benchmarks/speed.py                 # everything (about 15 minutes on 2 cores)
    python benchmarks/speed.py --quick         # 64 px only, smaller collections
    python benchmarks/speed.py --sections heads  # re-measure one section, keep the others
    python benchmarks/speed.py --quick --sections probe_features  # the morphology's cost at 64 px
    python benchmarks/speed.py --sections paths agreement --n-images 4000  # the inference paths
    python benchmarks/speed.py --sections int8_paths int8_agreement  # needs torchao==0.18.0
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "speed"
RESULTS = HERE / "results"
FORMATS = ("png_folder", "jpeg_bytes_hdf5", "uint8_hdf5", "zarr", "fits_cube")


def synthetic_cutouts(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 3) images: sky noise plus one or two elliptical sources."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        image = rng.normal(20, 4, (size, size)).astype(np.float32)
        for _ in range(rng.integers(1, 3)):
            cy, cx = rng.uniform(0.3, 0.7, 2) * size
            sa, sb = rng.uniform(0.03, 0.12, 2) * size
            angle = rng.uniform(0, np.pi)
            dy, dx = yy - cy, xx - cx
            u = dx * np.cos(angle) + dy * np.sin(angle)
            v = -dx * np.sin(angle) + dy * np.cos(angle)
            image += rng.uniform(60, 200) * np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))
        colour = rng.uniform(0.7, 1.0, 3)
        out[i] = np.clip(image[..., None] * colour, 0, 255).astype(np.uint8)
    return out


def write_dataset(fmt: str, n: int, size: int) -> Path:
    """Write ``n`` cutouts of ``size`` px in ``fmt`` (cached between runs)."""
    target = WORK / f"{fmt}-{n}-{size}"
    done = target.with_suffix(".done")
    path = target / "data" if fmt == "png_folder" else target / {
        "jpeg_bytes_hdf5": "cutouts.h5", "uint8_hdf5": "cutouts.h5", "zarr": "cutouts.zarr",
        "fits_cube": "cutouts.fits"}[fmt]
    if done.exists():
        return path
    target.mkdir(parents=True, exist_ok=True)
    chunk = 2000
    if fmt == "png_folder":
        _write_pngs(path, n, size, chunk)
    elif fmt == "uint8_hdf5":
        _write_h5(path, n, size, chunk)
    elif fmt == "jpeg_bytes_hdf5":
        _write_jpeg_h5(path, n, size, chunk)
    elif fmt == "zarr":
        _write_zarr(path, n, size, chunk)
    elif fmt == "fits_cube":
        _write_fits(path, n, size)
    done.touch()
    return path


def _chunks(n: int, size: int, chunk: int):
    for start in range(0, n, chunk):
        yield start, synthetic_cutouts(min(chunk, n - start), size, seed=start)


def _write_pngs(folder: Path, n: int, size: int, chunk: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for start, images in _chunks(n, size, chunk):
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"cutout_{start + i:07d}.png")


def _write_h5(path: Path, n: int, size: int, chunk: int) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("images", (n, size, size, 3), dtype=np.uint8, chunks=(64, size, size, 3))
        for start, images in _chunks(n, size, chunk):
            dataset[start:start + len(images)] = images


def _write_jpeg_h5(path: Path, n: int, size: int, chunk: int) -> None:
    import h5py
    from PIL import Image

    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("images", (n,), dtype=h5py.vlen_dtype(np.uint8))
        for start, images in _chunks(n, size, chunk):
            for i, image in enumerate(images):
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="JPEG", quality=90)
                dataset[start + i] = np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def _write_zarr(path: Path, n: int, size: int, chunk: int) -> None:
    import zarr

    array = zarr.open_array(str(path), mode="w", shape=(n, size, size, 3), dtype=np.uint8,
                            chunks=(64, size, size, 3))
    for start, images in _chunks(n, size, chunk):
        array[start:start + len(images)] = images


def _write_fits(path: Path, n: int, size: int) -> None:
    from astropy.io import fits

    cube = np.concatenate([images[..., 0] for _, images in _chunks(n, size, 2000)]).astype(np.int16)
    fits.PrimaryHDU(cube).writeto(path, overwrite=True)


# -- measurements, each in its own process -------------------------------------------------


def measure_scoring(source: str, size: int, options: dict, head: str = "classifier",
                    score: dict | None = None) -> dict:
    """Score ``source`` with a fresh (pretrained) model; images/s over the whole pass.

    ``head``: ``lpft`` (the default network: its pyramid read by a linear head), ``classifier``
    (the bare model), or ``ensemble`` / ``probe`` (an ``AnomalyScorer``
    whose probe, with arbitrary weights, reads the head's features of a frozen copy of the
    network), or ``probe-pyramid`` / ``probe-pyramid-morphology`` (the probe alone reading the
    frozen copy's pyramid features, as by default, and for the second also the morphology
    statistics, as single-band images get by default).
    """
    import copy

    import torch

    from napari_anomalymatch.core.config import ModelConfig, NormalisationConfig, ScoreConfig
    from napari_anomalymatch.core.io import open_collection
    from napari_anomalymatch.core.learning.lpft import ProbedNetwork
    from napari_anomalymatch.core.learning.models import build_model
    from napari_anomalymatch.core.learning.probe import AnomalyScorer, FrozenEmbedder, LinearProbe
    from napari_anomalymatch.core.scoring.run import run_to_end, score_collection
    from napari_anomalymatch.core.transforms import Normaliser

    collection = open_collection(source, **options)
    model = build_model(ModelConfig(image_size=size), collection.shape[2]).model
    model = model.to(memory_format=torch.channels_last).eval()
    if head == "lpft":  # the default: the network's pyramid read by its head, arbitrary weights
        network = ProbedNetwork(model, morphology=collection.shape[2] == 1)
        network.head.weight.data.normal_(generator=torch.Generator().manual_seed(0))
        model = AnomalyScorer(network, None, "lpft").eval()
    elif head != "classifier":
        layers = "pyramid" if head.startswith("probe-pyramid") else "head"
        frozen = FrozenEmbedder(copy.deepcopy(model), 0, layers, morphology=head.endswith("morphology"))
        with torch.no_grad():
            width = frozen.embed(torch.rand(1, collection.shape[2], size, size)).shape[1]
        weight = torch.randn(width, generator=torch.Generator().manual_seed(0))
        probe = LinearProbe(weight, torch.zeros(1), extra_scale=torch.ones(frozen.extra_dims))
        model = AnomalyScorer(model, probe, head.split("-")[0], frozen).eval()
    normaliser = Normaliser(NormalisationConfig(), collection.value_range)
    config = ScoreConfig(batch_size=256, **(score or {}))
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    result = run_to_end(score_collection(model, collection, normaliser, size, config))
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return {"n_images": len(collection), "images_per_second": len(collection) / elapsed,
            "images_per_cpu_second": len(collection) / cpu, "seconds": elapsed,
            "finite_scores": int(np.isfinite(result.scores).sum()),
            "inference": result.inference, "peak_rss_mb": _peak_rss_mb()}


def _cpu_seconds() -> float:
    """CPU time of this process's threads and its finished loader processes: unlike wall time,
    barely changed by other jobs sharing the machine, so paths measured at different loads compare."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_agreement(dataset: str, size: int, iterations: int, max_images: int = 6000) -> dict:
    """Each reduced CPU precision (``REDUCED_PRECISIONS``) against float32 scores of one model
    trained ``iterations`` FixMatch steps on ``dataset`` (at most ``max_images``: every anomaly and
    labelled image, and normal ones evenly spread)."""
    from napari_anomalymatch.core.config import ScoreConfig
    from napari_anomalymatch.core.scoring.run import score_images

    model, images, truth, n_in_set = _trained_model(dataset, size, iterations, max_images)
    fp32 = score_images(model, images, ScoreConfig(precision="float32"))
    found = {precision: score_images(model, images, ScoreConfig(precision=precision))
             for precision in REDUCED_PRECISIONS}
    return {"entries": _agreement_entries(dataset, size, iterations, n_in_set, fp32, found, truth)}


def measure_int8_agreement(dataset: str, size: int, iterations: int, max_images: int = 6000) -> dict:
    """int8 and int8-mixed (``INT8_FLOAT_STAGES``) against float32, as ``measure_agreement``; the
    quantization is calibrated on 256 of the same images, drawn at random."""
    import torch
    from int8 import with_int8_pyramid

    from napari_anomalymatch.core.config import ScoreConfig
    from napari_anomalymatch.core.scoring.run import score_images

    model, images, truth, n_in_set = _trained_model(dataset, size, iterations, max_images)
    fp32 = score_images(model, images, ScoreConfig(precision="float32", compile="none"))
    calibration = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:256]].float()
    found, built = {}, {}
    for name, stages in INT8_FLOAT_STAGES.items():
        started = time.perf_counter()
        quantized = with_int8_pyramid(model, calibration, stages, batch_size=64)
        built[name] = time.perf_counter() - started
        with torch.no_grad():
            found[name] = np.concatenate([torch.softmax(quantized(images[i:i + 64].float()).float(), -1)[:, 1].numpy()
                                          for i in range(0, len(images), 64)])
    entries = _agreement_entries(dataset, size, iterations, n_in_set, fp32, found, truth)
    for entry in entries:
        entry["build_seconds"] = built[entry["precision"]]
    return {"entries": entries}


def _trained_model(dataset: str, size: int, iterations: int, max_images: int):
    """The scoring model after ``iterations`` FixMatch steps on ``dataset``, the images it scores,
    whether each is an anomaly, and how many images the whole set has."""
    import torch

    from napari_anomalymatch.core.config import ModelConfig, NormalisationConfig, TrainConfig
    from napari_anomalymatch.core.evaluation.manifest import read_benchmark
    from napari_anomalymatch.core.learning.training import Trainer, TrainingData
    from napari_anomalymatch.core.loading import load_images
    from napari_anomalymatch.core.scoring.run import run_to_end
    from napari_anomalymatch.core.transforms import Normaliser

    bench = read_benchmark(_agreement_manifest(dataset))
    collection = bench.collection
    normaliser = Normaliser(NormalisationConfig(), collection.value_range)
    chosen = _subset(bench.is_anomaly | (bench.initial_labels >= 0), max_images)
    images, valid = run_to_end(load_images(collection, normaliser, size, chosen))
    truth, initial = bench.is_anomaly[chosen][valid], bench.initial_labels[chosen][valid]
    images = images[torch.from_numpy(valid)]
    labelled = np.flatnonzero(initial >= 0)
    trainer = Trainer(ModelConfig(image_size=size), TrainConfig(iterations=iterations), collection.shape[2],
                      device=torch.device("cpu"))
    data = TrainingData(images[labelled], torch.from_numpy(initial[labelled]), images)
    for _ in trainer.run(data):
        pass
    return trainer.scoring_model, images, truth, len(collection)


def _agreement_entries(dataset: str, size: int, iterations: int, n_in_set: int, fp32: np.ndarray,
                       found: dict[str, np.ndarray], truth: np.ndarray) -> list[dict]:
    from napari_anomalymatch.core.scoring.pathchoice import agrees, ranking_agreement

    entries = []
    for precision, scores in found.items():
        agreement = ranking_agreement(fp32, scores, truth, top=100)
        entries.append({"dataset": dataset, "precision": precision, "size": size, "iterations": iterations,
                        "n_images": len(truth), "n_images_in_set": n_in_set,
                        "n_anomalies": int(truth.sum()), **agreement, "allowed": agrees(agreement)})
    return entries


def measure_int8_rates(size: int, n_images: int, batch_size: int = 256) -> dict:
    """images/s and images per CPU-second of the default (lpft) network, pretrained, on synthetic
    images held in memory along each path of ``INT8_PATHS``: every path is built first, then
    timed in turns of two batches until each has scored about ``n_images``, so a change in the
    machine's load falls on all alike."""
    import torch
    from int8 import with_int8_pyramid

    from napari_anomalymatch.core.config import ScoreConfig
    from napari_anomalymatch.core.scoring.inference import prepare_scoring_model
    from napari_anomalymatch.core.scoring.pathchoice import InferencePath

    images = torch.from_numpy(synthetic_cutouts(batch_size, size)).permute(0, 3, 1, 2).float().div(255)
    images = images.contiguous(memory_format=torch.channels_last)
    scorer = _pretrained_lpft(size)
    scorers, built = {}, {}
    for name in INT8_PATHS:
        started = time.perf_counter()
        if name in INT8_FLOAT_STAGES:
            quantized = with_int8_pyramid(scorer, images, INT8_FLOAT_STAGES[name], batch_size)
            scorers[name] = lambda x, q=quantized: torch.softmax(q(x).float(), -1)[:, 1]
        else:
            scorers[name] = prepare_scoring_model(scorer, ScoreConfig(), tuple(images.shape[1:]),
                                                  torch.device("cpu"), path=InferencePath.parse(name)).probabilities
        with torch.no_grad():
            scorers[name](images)  # warm-up
        built[name] = time.perf_counter() - started
    wall, cpu = dict.fromkeys(scorers, 0.0), dict.fromkeys(scorers, 0.0)
    turns = max(1, n_images // (2 * batch_size))
    with torch.no_grad():
        for _ in range(turns):
            for name, score in scorers.items():
                started, cpu_started = time.perf_counter(), _cpu_seconds()
                score(images)
                score(images)
                wall[name] += time.perf_counter() - started
                cpu[name] += _cpu_seconds() - cpu_started
    done = turns * 2 * batch_size
    reference = INT8_PATHS[0]
    return {"entries": [{"path": name, "size": size, "n_images": done, "images_per_second": done / wall[name],
                         "images_per_cpu_second": done / cpu[name], "build_seconds": built[name],
                         "relative_to_float32_eager": wall[reference] / wall[name],
                         "cpu_relative_to_float32_eager": cpu[reference] / cpu[name]} for name in scorers]}


def _pretrained_lpft(size: int):
    """The default network (its pyramid read by a linear head with arbitrary weights), pretrained."""
    import torch

    from napari_anomalymatch.core.config import ModelConfig
    from napari_anomalymatch.core.learning.lpft import ProbedNetwork
    from napari_anomalymatch.core.learning.models import build_model
    from napari_anomalymatch.core.learning.probe import AnomalyScorer

    model = build_model(ModelConfig(image_size=size), 3).model.to(memory_format=torch.channels_last).eval()
    network = ProbedNetwork(model, morphology=False)
    network.head.weight.data.normal_(generator=torch.Generator().manual_seed(0))
    return AnomalyScorer(network, None, "lpft").eval()


def _subset(keep: np.ndarray, max_images: int) -> np.ndarray:
    others = np.flatnonzero(~keep)
    room = max(0, max_images - int(keep.sum()))
    spread = others[np.linspace(0, len(others) - 1, min(room, len(others))).astype(np.int64)] if room else others[:0]
    return np.sort(np.concatenate([np.flatnonzero(keep), spread]))


def _agreement_manifest(dataset: str) -> Path:
    import quality

    if dataset == "first":
        return quality.first_manifest("Bent", 0)
    return quality.cifar_manifest(quality.cifar_root(quality.CIFAR_ARCHIVE), "cat", 0)


def measure_training(size: int, iterations: int, head: str = "lpft") -> dict:
    """Median seconds per iteration of 16 labelled + 2 x 80 unlabelled images, training the network
    of ``head`` (``lpft``, the default, or the paper's ``classifier``)."""
    import torch

    from napari_anomalymatch.core.config import ModelConfig, TrainConfig
    from napari_anomalymatch.core.learning.training import Trainer, TrainingData

    config = TrainConfig(batch_size=16, unlabelled_ratio=5, head=head)
    trainer = Trainer(ModelConfig(image_size=size), config, in_chans=3, device=torch.device("cpu"))
    images = torch.from_numpy(synthetic_cutouts(400, size)).permute(0, 3, 1, 2).half() / 255
    data = TrainingData(images[:40], torch.tensor([0, 1] * 20), images[40:])
    timings = [p.seconds_per_iteration for p in trainer.run(data, iterations=iterations)]
    return {"seconds_per_iteration": float(np.median(timings[2:])), "iterations": iterations,
            "images_per_iteration": 16 + 2 * 80, "weak_pass": config.weak_pass, "head": head,
            "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024  # KiB on Linux: this process plus its largest (loader) child


def in_subprocess(function: str, **kwargs) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import speed; "
            f"print(json.dumps(speed.{function}(**json.loads(sys.argv[1]))))")
    output = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-images", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS),
                        help="what to measure; sections not measured are kept from --out")
    args = parser.parse_args(argv)
    sizes = [64] if args.quick else [64, 150]
    n = 3000 if args.quick else args.n_images
    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    machines = results.setdefault("machines", {})
    for kept in set(SECTIONS) - set(args.sections) - set(machines):
        if kept in results and "machine" in results:  # measured before sections named their host
            machines[kept] = results["machine"]
    results["machine"] = _machine()
    for section in args.sections:  # sections kept from an earlier call keep the host they were measured on
        machines[section] = results["machine"]
        results[section] = SECTIONS[section](sizes, n, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


def _training(sizes: list[int], n: int, quick: bool) -> list[dict]:
    entries = []
    for size in sizes:
        for head in ("lpft", "classifier"):  # what the probe-initialised head costs over the paper's
            entries.append({"size": size, **in_subprocess("measure_training", size=size, iterations=12, head=head)})
            print(f"training {size}px, head {head}: {entries[-1]['seconds_per_iteration']:.2f} s/iteration",
                  flush=True)
    return entries


def _scoring(sizes: list[int], n: int, quick: bool) -> list[dict]:
    entries = []
    for size in sizes:
        for fmt in FORMATS:
            path = write_dataset(fmt, n, size)
            entries.append({"format": fmt, "size": size,
                            **in_subprocess("measure_scoring", source=str(path), size=size, options={})})
            print(f"scoring {fmt} {size}px: {entries[-1]['images_per_second']:.0f} images/s", flush=True)
    return entries


def _heads(sizes: list[int], n: int, quick: bool) -> list[dict]:
    return _score_with_heads(sizes, n, HEADS)


def _probe_features(sizes: list[int], n: int, quick: bool) -> list[dict]:
    return _score_with_heads(sizes, n, ("probe-pyramid", "probe-pyramid-morphology"))


def _score_with_heads(sizes: list[int], n: int, heads: tuple[str, ...]) -> list[dict]:
    """Scoring rates from uint8 HDF5 with each of ``heads`` (see ``measure_scoring``)."""
    entries = []
    for size in sizes:
        path = write_dataset("uint8_hdf5", n, size)
        for head in heads:
            entries.append({"head": head, "size": size, **in_subprocess(
                "measure_scoring", source=str(path), size=size, options={}, head=head)})
            print(f"scoring uint8_hdf5 {size}px, head {head}: {entries[-1]['images_per_second']:.0f} images/s",
                  flush=True)
    return entries


def _memory(sizes: list[int], n: int, quick: bool) -> list[dict]:
    entries = []
    for count in [1000, 10_000] if quick else [1000, 10_000, 100_000]:
        path = write_dataset("uint8_hdf5", count, 64)
        entries.append({"n_images": count,
                        **in_subprocess("measure_scoring", source=str(path), size=64, options={})})
        print(f"memory {count} images: peak RSS {entries[-1]['peak_rss_mb']:.0f} MB, "
              f"{entries[-1]['images_per_second']:.0f} images/s", flush=True)
    return entries


PATHS = {"torchscript (the old default)": {"precision": "float32", "compile": "torchscript"},
         "float32 eager": {"precision": "float32", "compile": "none"},
         "float32 fused": {"precision": "float32", "compile": "fused"},
         "bfloat16 eager": {"precision": "bfloat16", "compile": "none"},
         "bfloat16 fused": {"precision": "bfloat16", "compile": "fused"},
         "bfloat16-mixed eager": {"precision": "bfloat16-mixed", "compile": "none"},
         "bfloat16-mixed fused": {"precision": "bfloat16-mixed", "compile": "fused"},
         "float32 torch.compile": {"precision": "float32", "compile": "inductor"},
         "bfloat16 torch.compile": {"precision": "bfloat16", "compile": "inductor"},
         "auto (measured)": {}}


def _paths(sizes: list[int], n: int, quick: bool) -> list[dict]:
    """Each inference path on uint8 HDF5, scoring with the default (lpft) network; ``auto`` measures
    afresh (an empty timing cache), so its rate includes the timing of every candidate."""
    import os
    import tempfile

    entries = []
    for size in sizes:
        path = write_dataset("uint8_hdf5", n, size)
        baseline = None
        for name, score in PATHS.items():
            with tempfile.TemporaryDirectory() as cache:
                os.environ["ANOMALYMATCH_CACHE_DIR"] = cache  # the subprocess inherits it
                entry = {"path": name, "size": size, **in_subprocess(
                    "measure_scoring", source=str(path), size=size, options={}, head="lpft", score=score)}
            baseline = baseline or {"wall": entry["images_per_second"], "cpu": entry["images_per_cpu_second"]}
            entry["relative_to_torchscript"] = entry["images_per_second"] / baseline["wall"]
            entry["cpu_relative_to_torchscript"] = entry["images_per_cpu_second"] / baseline["cpu"]
            entries.append(entry)
            print(f"scoring uint8_hdf5 {size}px, {name} ({entry['inference']}): "
                  f"{entry['images_per_second']:.0f} images/s ({entry['relative_to_torchscript']:.2f}x), "
                  f"{entry['images_per_cpu_second']:.0f} per CPU-second ({entry['cpu_relative_to_torchscript']:.2f}x)",
                  flush=True)
    return entries


def _agreement(sizes: list[int], n: int, quick: bool, measure: str = "measure_agreement") -> list[dict]:
    entries = []
    for dataset in ("first", "cifar10"):
        measured = in_subprocess(measure, dataset=dataset, size=64, iterations=40 if quick else 100)
        entries.extend(measured["entries"])
        for entry in measured["entries"]:
            print(f"{measure.removeprefix('measure_')} {dataset} {entry['precision']}: {entry}", flush=True)
    return entries


def _int8_paths(sizes: list[int], n: int, quick: bool) -> list[dict]:
    entries = []
    for size in [64] if quick else [64, 128]:
        measured = in_subprocess("measure_int8_rates", size=size, n_images=2048 if size == 64 else 1024)
        entries.extend(measured["entries"])
        for entry in measured["entries"]:
            print(f"int8 paths {size}px, {entry['path']}: {entry['images_per_second']:.0f} images/s "
                  f"({entry['relative_to_float32_eager']:.2f}x), {entry['images_per_cpu_second']:.0f} per "
                  f"CPU-second ({entry['cpu_relative_to_float32_eager']:.2f}x), "
                  f"built in {entry['build_seconds']:.0f} s", flush=True)
    return entries


def _int8_agreement(sizes: list[int], n: int, quick: bool) -> list[dict]:
    return _agreement(sizes, n, quick, measure="measure_int8_agreement")


HEADS = ("lpft", "classifier", "ensemble", "probe")
REDUCED_PRECISIONS = ("bfloat16", "bfloat16-mixed")
# int8 backbones (``int8.py``) and how many first stages each keeps float32, as bfloat16-mixed does
INT8_FLOAT_STAGES = {"int8": 0, "int8-mixed": 2}
INT8_PATHS = ("float32+eager", "float32+fused", "bfloat16+eager", "bfloat16+fused", "bfloat16-mixed+eager",
              "bfloat16-mixed+fused", *INT8_FLOAT_STAGES)
SECTIONS = {"training": _training, "scoring": _scoring, "heads": _heads, "probe_features": _probe_features,
            "memory": _memory, "paths": _paths, "agreement": _agreement, "int8_paths": _int8_paths,
            "int8_agreement": _int8_agreement}


def _machine() -> dict:
    """The host: CPU model, the flags that decide the inference path, torch."""
    import torch

    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    from napari_anomalymatch.core.scoring.pathchoice import _processor

    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    return {"cpus": _cpus(), "python": platform.python_version(), "processor": _processor(),
            "cpu_flags": [f for f in wanted if f in flags], "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "shared": "yes: other engineers' jobs ran at the same time",
            "load_average": os.getloadavg()}


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
