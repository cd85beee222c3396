"""Time to put a collection in the ``diverse`` review order, beside the ``score`` order.

For 10^5 and 10^6 images with random scores and 1280-d float16 embeddings in a memory-mapped
file (as a score run stores them), ``rank`` is timed for both orders over the whole collection
(the median of ``REPEATS``). The diverse order sorts by score like the score order, then reads
and clusters only its pool (``DIVERSE_POOL`` rows), so its extra cost should not grow with the
collection. The file is in the page cache after being written: a cold read of 500 scattered
rows adds at most a few ms on an SSD.

    python benchmarks/diverse_order.py

Writes ``benchmarks/results/diverse_order.json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_anomalymatch.core.scoring.diversity import DIVERSE_CLUSTERS, DIVERSE_POOL
from napari_anomalymatch.core.scoring.orders import rank

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (100_000, 1_000_000)
DIM = 1280
REPEATS = 3
CHUNK = 50_000


def stored_embeddings(path: Path, n: int, rng: np.random.Generator) -> np.memmap:
    """``n`` random float16 embeddings written to ``path`` in chunks, mapped back read-only."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, DIM))
    for start in range(0, n, CHUNK):
        out[start:start + CHUNK] = rng.random((min(CHUNK, n - start), DIM), dtype=np.float32) - 0.5
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def median_seconds(call) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def measure(n: int, folder: Path) -> dict:
    rng = np.random.default_rng(0)
    scores = rng.random(n, dtype=np.float32)
    candidates = np.arange(n)
    stored = stored_embeddings(folder / f"embeddings-{n}.npy", n, rng)
    lookup = lambda indices: np.asarray(stored[np.asarray(indices, dtype=np.int64)])  # noqa: E731 as Session's
    score = median_seconds(lambda: rank(scores, candidates, "score"))
    diverse = median_seconds(lambda: rank(scores, candidates, "diverse", 0, lookup))
    print(f"{n:>9,} images: score order {score:.3f} s, diverse {diverse:.3f} s", flush=True)
    return {"n_images": n, "score_seconds": score, "diverse_seconds": diverse,
            "diverse_extra_seconds": diverse - score}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, Path(tmp)) for n in SIZES]
    result = {"pool": DIVERSE_POOL, "clusters": DIVERSE_CLUSTERS, "dim": DIM, "repeats": REPEATS,
              "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                       "load_1min": os.getloadavg()[0]}, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "diverse_order.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
