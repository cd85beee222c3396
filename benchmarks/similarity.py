""""More like this": the approximate index chosen by measurement, and what storing embeddings costs.

Written to ``benchmarks/results/similarity.json``:

* index: faiss-cpu (IVF, fp16 scalar-quantised lists) and usearch (HNSW, f16) against exact
  chunked NumPy search, on 10^5 and 10^6 random-but-clustered 1280-d float16 unit embeddings:
  build seconds, median query latency of one query for its top 100, and recall@100 against exact
  search, over 50 queries near stored embeddings. A build that passes ``BUILD_LIMIT_S`` is
  stopped and recorded as such (the target is a build under 2 minutes for 10^6);
* embeddings: scoring a uint8 HDF5 collection (64 px, the default lpft network, float32 eager) with
  and without storing each image's embedding, and with them on a collection four times larger
  (images/s), and the bytes each image's embedding takes on disk.

Usage::

    python benchmarks/similarity.py                      # both sections (about 20 minutes on 2 cores)
    python benchmarks/similarity.py --sections index --sizes 100000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = HERE / "work" / "similarity"
DIM = 1280
TOP = 100
N_QUERIES = 50
BUILD_LIMIT_S = 120.0  # the target for 10^6: a build still running after it is stopped and recorded so


def clustered_embeddings(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Unit float16 vectors ``(n, dim)``: each near one of ``n / 1000`` random centres (a survey's
    many kinds of object), spread within it along a few directions of its own (real embeddings
    vary along few directions), plus a little isotropic noise; written chunk by chunk."""
    rng = np.random.default_rng(seed)
    clusters = max(1, n // 1000)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    basis = rng.standard_normal((64, dim)).astype(np.float32)  # the directions clusters vary along
    mixing = (0.4 / np.sqrt(8 * 64)) * rng.standard_normal((clusters, 8, 64)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float16)
    for start in range(0, n, 20_000):
        stop = min(start + 20_000, n)
        which = rng.integers(0, clusters, stop - start)
        along = rng.standard_normal((stop - start, 8)).astype(np.float32)
        chunk = centres[which] + np.einsum("nk,nkb->nb", along, mixing[which]) @ basis
        chunk += 0.1 * rng.standard_normal((stop - start, dim)).astype(np.float32)
        out[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def queries_near(embeddings: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = embeddings[rng.choice(len(embeddings), N_QUERIES, replace=False)].astype(np.float32)
    picked += 0.005 * rng.standard_normal(picked.shape).astype(np.float32)
    return picked / np.linalg.norm(picked, axis=1, keepdims=True)


def measure_exact(embeddings: np.ndarray, queries: np.ndarray) -> tuple[dict, np.ndarray]:
    """Exact search's latency (median of 3 single queries) and every query's true top 100
    (found in one pass over the embeddings for all queries: reading them is what costs)."""
    import torch

    from napari_anomalymatch.core.discovery.similarity import exact_search

    times = []
    for query in queries[:3]:
        started = time.perf_counter()
        exact_search([embeddings], query[None], TOP)
        times.append(time.perf_counter() - started)
    best = torch.full((len(queries), 0), -2.0), torch.zeros((len(queries), 0), dtype=torch.int64)
    for start in range(0, len(embeddings), 50_000):
        block = torch.from_numpy(embeddings[start:start + 50_000]).float()
        sims = torch.from_numpy(queries) @ (block / block.norm(dim=1, keepdim=True)).T
        values = torch.cat([best[0], sims], 1)
        ids = torch.cat([best[1], torch.arange(start, start + len(block)).expand(len(queries), -1)], 1)
        top = values.topk(TOP, dim=1)
        best = top.values, ids.gather(1, top.indices)
    return {"library": "numpy (exact)", "build_s": 0.0, "query_ms": 1000 * statistics.median(times),
            "recall_at_100": 1.0}, best[1].numpy()


def measure_faiss(embeddings: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    from napari_anomalymatch.core.discovery.index import build_index

    started = time.perf_counter()
    index = build_index(lambda: iter([embeddings]), len(embeddings), embeddings.shape[1])
    build = time.perf_counter() - started
    return {"library": f"faiss-cpu {_version('faiss')} (IVF{index.nlist}, fp16, nprobe {index.nprobe})",
            "build_s": build, **_query_figures(lambda q: index.search(q[None], TOP)[0], queries, truth)}


def measure_usearch(embeddings: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    from usearch.index import Index

    index = Index(ndim=embeddings.shape[1], metric="cos", dtype="f16", connectivity=16, expansion_add=128,
                  expansion_search=128)
    started, added = time.perf_counter(), 0
    for start in range(0, len(embeddings), 20_000):
        chunk = embeddings[start:start + 20_000]
        index.add(np.arange(start, start + len(chunk)), chunk, threads=0)
        added += len(chunk)
        if time.perf_counter() - started > BUILD_LIMIT_S:
            break
    build = time.perf_counter() - started
    label = f"usearch {_version('usearch')} (HNSW M=16, f16, ef 128)"
    if added < len(embeddings):
        return {"library": label, "build_s": None, "query_ms": None, "recall_at_100": None,
                "note": f"stopped after {build:.0f} s with {added:,} of {len(embeddings):,} added"}

    def search(query):
        return index.search(query, TOP, threads=1).keys

    return {"library": label, "build_s": build, **_query_figures(search, queries, truth)}


def _query_figures(search, queries: np.ndarray, truth: np.ndarray) -> dict:
    times, recalls = [], []
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = np.asarray(search(query)).reshape(-1)
        times.append(time.perf_counter() - started)
        recalls.append(len(set(found.tolist()) & set(expected.reshape(-1).tolist())) / TOP)
    return {"query_ms": 1000 * statistics.median(times), "recall_at_100": float(np.mean(recalls))}


def _version(module: str) -> str:
    return getattr(__import__(module), "__version__", "?")


LIBRARIES = {"faiss": measure_faiss, "usearch": measure_usearch}


def index_section(sizes: list[int], libraries: list[str]) -> list[dict]:
    """Exact search and each of ``libraries`` at each size; every row says the load it ran under."""
    rows = []
    for n in sizes:
        embeddings = clustered_embeddings(n)
        queries = queries_near(embeddings)
        load = os.getloadavg()[0]
        exact, truth = measure_exact(embeddings, queries)
        for row in (exact, *(LIBRARIES[name](embeddings, queries, truth) for name in libraries)):
            rows.append({"n_embeddings": n, **row, "load_average": round(load, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def merged_rows(earlier: list[dict], new: list[dict]) -> list[dict]:
    """``new`` in place of the earlier rows of the same size and library; the others kept."""
    def key(row: dict) -> tuple[int, str]:
        return row["n_embeddings"], row["library"].split()[0]

    fresh = {key(row): row for row in new}
    kept = [row for row in earlier if key(row) not in fresh]
    return sorted([*kept, *new], key=lambda row: (row["n_embeddings"], key(row)[1] != "numpy", key(row)[1]))


def measure_embedding_cost(source: str, size: int, embeddings: bool) -> dict:
    """Score ``source`` into a store (the default lpft network, fresh weights) with or without
    embeddings; images/s over the whole pass, peak RSS and the bytes the embeddings take."""
    import shutil

    import torch

    from napari_anomalymatch.core.config import ModelConfig, NormalisationConfig, ScoreConfig
    from napari_anomalymatch.core.io import open_collection
    from napari_anomalymatch.core.learning.lpft import ProbedNetwork
    from napari_anomalymatch.core.learning.models import build_model
    from napari_anomalymatch.core.learning.probe import AnomalyScorer
    from napari_anomalymatch.core.scoring.run import run_to_end, score_collection
    from napari_anomalymatch.core.scoring.store import EMBEDDING_PREFIX, ScoreManifest, ScoreStore
    from napari_anomalymatch.core.transforms import Normaliser

    sys.path.insert(0, str(HERE))
    from speed import _peak_rss_mb

    collection = open_collection(source)
    network = ProbedNetwork(build_model(ModelConfig(image_size=size), collection.shape[2]).model, morphology=False)
    model = AnomalyScorer(network, None, "lpft").eval()
    directory = WORK / f"store-{embeddings}"
    shutil.rmtree(directory, ignore_errors=True)
    config = ScoreConfig(batch_size=256, num_workers=0, part_size=1024, precision="float32", compile="none")
    manifest = ScoreManifest(collection.fingerprint(), len(collection), "bench", 1, config.part_size, "",
                             embeddings=embeddings)
    started = time.perf_counter()
    run_to_end(score_collection(model, collection, Normaliser(NormalisationConfig(), collection.value_range),
                                size, config, torch.device("cpu"), store=ScoreStore(directory, manifest)))
    elapsed = time.perf_counter() - started
    parts = sum(p.stat().st_size for p in directory.glob(EMBEDDING_PREFIX + "*"))
    return {"n_images": len(collection), "images_per_second": len(collection) / elapsed, "seconds": elapsed,
            "embedding_bytes_per_image": parts / len(collection), "peak_rss_mb": _peak_rss_mb()}


def embeddings_section(size: int = 64) -> list[dict]:
    """images/s scoring with and without embeddings, bytes per image, and peak RSS as the
    collection grows fourfold, each in a fresh process."""
    import subprocess

    sys.path.insert(0, str(HERE))
    import speed

    rows = []
    for n, stored in ((1024, False), (1024, True), (4096, True)):
        source = speed.write_dataset("uint8_hdf5", n, size)
        code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import similarity; "
                f"print(json.dumps(similarity.measure_embedding_cost({str(source)!r}, {size}, {stored})))")
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        rows.append({"embeddings": stored, "size": size, **json.loads(out.strip().splitlines()[-1])})
        print(json.dumps(rows[-1]), flush=True)
    return rows


SECTIONS = {"index": index_section, "embeddings": embeddings_section}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=sorted(SECTIONS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--libraries", nargs="+", choices=sorted(LIBRARIES), default=sorted(LIBRARIES),
                        help="the indexes measured beside exact search (the other rows of the file are kept)")
    parser.add_argument("--out", type=Path, default=RESULTS / "similarity.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from speed import _machine

    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    machines = results.setdefault("machines", {})
    for section in args.sections:
        machines[section] = _machine()
        if section == "index":
            results[section] = merged_rows(results.get(section, []), index_section(args.sizes, args.libraries))
        else:
            results[section] = embeddings_section()
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
