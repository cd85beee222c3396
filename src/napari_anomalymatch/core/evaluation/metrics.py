"""Ranking quality: AUROC, AUPRC and precision/recall at the top of the ranking."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TOP_FRACTIONS = {"0.1pct": 0.001, "1pct": 0.01, "5pct": 0.05}


def ranking_metrics(scores: np.ndarray, is_anomaly: np.ndarray,
                    top_n: Sequence[int] = (50, 100)) -> dict[str, float]:
    """Quality of ``scores`` as a ranking of ``is_anomaly`` (higher = more anomalous).

    Returns ``auroc``, ``auprc`` (average precision), ``precision_top{f}``
    and ``recall_top{f}`` for the top 0.1 %, 1 % and 5 % (at least one image),
    ``anomalies_in_top{N}`` and ``precision_top{N}`` for each ``top_n``,
    and counts.  Images with a non-finite score are ranked last.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(is_anomaly).astype(bool)
    if scores.shape != truth.shape:
        raise ValueError(f"{scores.shape[0]} scores for {truth.shape[0]} truth values")
    filled = np.where(np.isfinite(scores), scores, -np.inf)
    filled = np.where(np.isinf(filled), np.nanmin(scores) - 1 if np.isfinite(scores).any() else 0, filled)
    n, positives = len(truth), int(truth.sum())
    both_classes = 0 < positives < n
    result: dict[str, float] = {
        "auroc": float(roc_auc_score(truth, filled)) if both_classes else math.nan,
        "auprc": float(average_precision_score(truth, filled)) if both_classes else math.nan,
        "n_scored": n,
        "n_anomalies": positives,
    }
    order = np.lexsort((np.arange(n), -filled))
    hits = np.cumsum(truth[order])
    for name, fraction in TOP_FRACTIONS.items():
        k = max(1, int(round(fraction * n)))
        result[f"precision_top{name}"] = float(hits[k - 1] / k)
        result[f"recall_top{name}"] = float(hits[k - 1] / positives) if positives else math.nan
    for k in top_n:
        k_eff = min(k, n)
        result[f"anomalies_in_top{k}"] = int(hits[k_eff - 1]) if k_eff else 0
        result[f"precision_top{k}"] = float(hits[k_eff - 1] / k_eff) if k_eff else math.nan
    return result
