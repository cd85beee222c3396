"""Files that summarise an evaluation: the ranking table, a gallery and the metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..labels import ANOMALY, NORMAL
from ..review.export import ranking_table, write_table
from ..review.gallery import save_gallery
from ..transforms import Normaliser
from .protocol import EvaluationResult


def write_evaluation_report(result: EvaluationResult, out_dir: str | Path, normaliser: Normaliser,
                            gallery_size: int = 25) -> dict[str, Path]:
    """Write ``ranking.csv`` (never-labelled images, best first), ``gallery.png`` (their top
    candidates, bordered red for true anomalies and blue for normal images) and ``metrics.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    collection = result.benchmark.collection
    truth = result.benchmark.is_anomaly
    candidates = np.flatnonzero(~result.ever_labelled & np.isfinite(result.scores))
    table = ranking_table(collection, result.scores, {}, result.cycles[-1].cycle,
                          indices=candidates)
    table["is_anomaly"] = truth[[collection.index_of(i) for i in table["id"]]].astype(np.int8)
    ranking = write_table(table, out_dir / "ranking.csv")
    top = [collection.index_of(i) for i in table["id"][:gallery_size]]
    images = normaliser(collection.read(top)) if top else np.zeros((0, 1, 1, 1), np.float32)
    shown = table[:gallery_size]
    captions = [f"#{r} {s:.3f}" for r, s in zip(shown["rank"], shown["score"], strict=True)]
    labels = [ANOMALY if truth[i] else NORMAL for i in top]
    gallery = save_gallery(out_dir / "gallery.png", images, captions, labels)
    metrics = out_dir / "metrics.json"
    metrics.write_text(json.dumps(result.summary(), indent=1))
    return {"ranking": ranking, "gallery": gallery, "metrics": metrics}
