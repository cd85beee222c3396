"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_anomalymatch.core.evaluation.metrics import ranking_metrics


def test_perfect_ranking():
    truth = np.zeros(1000, dtype=bool)
    truth[:10] = True
    scores = truth.astype(float) + np.linspace(0, 0.5, 1000)
    m = ranking_metrics(scores, truth, top_n=(50,))
    assert m["auroc"] == 1.0 and m["auprc"] == pytest.approx(1.0)
    assert m["precision_top1pct"] == 1.0 and m["recall_top1pct"] == 1.0
    assert m["precision_top0.1pct"] == 1.0
    assert m["anomalies_in_top50"] == 10 and m["precision_top50"] == 0.2


def test_hand_computed_example():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    truth = np.array([1, 0, 1, 0, 0], dtype=bool)
    m = ranking_metrics(scores, truth, top_n=(2,))
    assert m["auroc"] == pytest.approx(5 / 6)
    assert m["auprc"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["anomalies_in_top2"] == 1 and m["precision_top1pct"] == 1.0  # top 1 % of 5 = 1 image


def test_unscored_images_rank_last():
    m = ranking_metrics(np.array([np.nan, 0.1, 0.2]), np.array([1, 0, 0], dtype=bool), top_n=(1,))
    assert m["auroc"] == 0.0 and m["anomalies_in_top1"] == 0


def test_one_class_gives_nan_auc():
    m = ranking_metrics(np.array([0.1, 0.2]), np.array([0, 0], dtype=bool))
    assert math.isnan(m["auroc"]) and math.isnan(m["recall_top1pct"])
