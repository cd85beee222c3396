"""Milliseconds per candidate for its saliency map, and whether the map finds the source.

A session on ``N_IMAGES`` single-band 64 px cutouts (sky noise, half of them with a bright
Gaussian blob somewhere off the centre) is trained for one short cycle with the default head
(``lpft``) on the CPU. Then with 2 torch threads (a 2-core laptop) and with 1 (what runs
best on a CPU that other work keeps busy: the load average is recorded), one candidate at a
time as the review asks for them, ``core.review.saliency.saliency_maps`` (read, normalise,
resize, one forward and backward pass, resize back) is timed for ``N_CANDIDATES`` unlabelled
blob images per method; the first call of each method is left out (warm-up). For each map the
distance of its peak from the blob's centre is recorded: a map "finds" the blob when its peak
lies within two blob sigmas of it.

    python benchmarks/saliency_speed.py

Writes ``benchmarks/results/saliency_speed.json``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from review_latency import write_report

SIZE, SIGMA = 64, 4.0
N_IMAGES = 200
N_CANDIDATES = {"gradient": 50, "grad-cam": 50, "occlusion": 10}
LABELLED = 8  # of each kind
RESULT = Path(__file__).resolve().parent / "results" / "saliency_speed.json"


def write_collection(folder: Path, seed: int = 0) -> np.ndarray:
    """PNG noise cutouts, the first half with a blob; returns the blobs' centres (row, column)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centres = rng.uniform(12, SIZE - 12, (N_IMAGES // 2, 2))
    folder.mkdir(parents=True)
    for i in range(N_IMAGES):
        image = rng.normal(40, 10, (SIZE, SIZE))
        if i < len(centres):
            cy, cx = centres[i]
            image += rng.uniform(120, 200) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * SIGMA ** 2))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"img_{i:03d}.png")
    return centres


def measure(session, centres: np.ndarray, method: str, threads: int) -> dict:
    import torch

    from napari_anomalymatch.core.review.saliency import saliency_maps

    torch.set_num_threads(threads)
    candidates = range(LABELLED, LABELLED + N_CANDIDATES[method])
    saliency_maps(session, [LABELLED], method)  # warm-up
    times, distances = [], []
    for index in candidates:
        started = time.perf_counter()
        saliency, = saliency_maps(session, [index], method)
        times.append((time.perf_counter() - started) * 1000)
        peak = np.unravel_index(int(saliency.argmax()), saliency.shape)
        distances.append(float(np.hypot(*(np.array(peak) - centres[index]))))
    times_array, distances_array = np.asarray(times), np.asarray(distances)
    return {"method": method, "torch_threads": threads, "n_candidates": len(times),
            "median_ms": round(float(np.median(times_array)), 1),
            "p95_ms": round(float(np.percentile(times_array, 95)), 1),
            "median_peak_distance_px": round(float(np.median(distances_array)), 1),
            "found_fraction": round(float(np.mean(distances_array <= 2 * SIGMA)), 2)}


def main() -> int:
    import torch

    from napari_anomalymatch.core.config import DataConfig, ModelConfig, ScoreConfig, SessionConfig, TrainConfig
    from napari_anomalymatch.core.session import Session

    torch.set_num_threads(2)
    load_before = os.getloadavg()  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        centres = write_collection(Path(tmp) / "images")
        config = SessionConfig(
            data=DataConfig(source=str(Path(tmp) / "images")), model=ModelConfig(image_size=SIZE, device="cpu"),
            train=TrainConfig(iterations=10, batch_size=8, unlabelled_pool_size=64),
            score=ScoreConfig(num_workers=0))
        with Session.create(Path(tmp) / "session", config) as session:
            ids = session.collection.ids()
            for i in range(LABELLED):
                session.label(ids[i], "anomaly")
                session.label(ids[N_IMAGES // 2 + i], "normal")
            for _ in session.train():
                pass
            results = [measure(session, centres, method, threads) for threads in (2, 1)
                       for method in N_CANDIDATES]
            head = session.config.train.head
    for result in results:
        print(json.dumps(result))
    write_report(RESULT, {"benchmark": "saliency_speed", "target_median_ms": 150, "image_size": SIZE, "head": head,
                          "blob_sigma_px": SIGMA, "results": results, "torch": torch.__version__}, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
