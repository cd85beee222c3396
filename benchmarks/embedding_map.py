"""Time to compute the embedding map (``Session.compute_map``'s layout) for 50,000 images.

The embeddings are a seeded mixture of 20 clusters in 1,280 dimensions, stored as float16 like
a score run's; the figure is the PCA + UMAP time of ``core.discovery.embedding_map.layout`` and
how well the map keeps each cluster together (the share of each point's 10 nearest map
neighbours from its own cluster).

Usage::

    nice -n 5 python benchmarks/embedding_map.py [--points 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "embedding_map.json"
CLUSTERS = 20


def clustered_embeddings(n: int, dim: int = 1280, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, dim)).astype(np.float32)
    members = rng.integers(0, CLUSTERS, n)
    vectors = centres[members] + rng.normal(scale=1.5, size=(n, dim)).astype(np.float32)
    return np.maximum(vectors, 0).astype(np.float16), members  # pooled ReLU-like features


def neighbour_purity(xy: np.ndarray, members: np.ndarray, k: int = 10, probes: int = 2000) -> float:
    from sklearn.neighbors import NearestNeighbors

    chosen = np.random.default_rng(1).choice(len(xy), min(probes, len(xy)), replace=False)
    _, found = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy[chosen])
    return float((members[found[:, 1:]] == members[chosen, None]).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    args = parser.parse_args(argv)
    from napari_anomalymatch.core.discovery.embedding_map import PCA_COMPONENTS, layout
    from napari_anomalymatch.core.scoring.pathchoice import _processor

    vectors, members = clustered_embeddings(args.points)
    layout(vectors[:200])  # numba compiles UMAP's kernels on the first call: not part of the figure
    started, cpu = time.perf_counter(), time.process_time()
    xy = layout(vectors)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    result = {"points": args.points, "dimensions": int(vectors.shape[1]), "pca_components": PCA_COMPONENTS,
              "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
              "neighbour_purity": round(neighbour_purity(xy, members), 3),
              "host": {"cpu": _processor(), "cores": os.cpu_count(), "load_average": os.getloadavg()[0]}}
    print(json.dumps(result, indent=1))
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
