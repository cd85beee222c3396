"""The estimate of the anomalies still unreviewed, measured against the truth in the protocol.

The simulated expert reviews its order from the top until it has its labels; a person reviewing a
ranking judges every image met on the way, so the whole reviewed stretch counts as reviewed
(its truth known, paired with the score it had then), though only the oracle's picks go to
training, as the paper's protocol has it. Initial labels are chosen for what they are and count as
reviewed, not as calibration. A second estimate adds a random audit sample of ``AUDIT`` images,
drawn once before the first cycle and known to the estimator only (training never sees it).

After each cycle, before the oracle reviews, both estimates are compared with the true number of
anomalies among the unreviewed images, overall and among the next N by the current ranking.
What each estimate was made from is kept too (``replay``), so that a change to the estimator can
be measured again on the same runs without training them again (``measure_again``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..review.remaining import HORIZONS, LEVEL, CalibrationLabels, RemainingEstimate, estimate_remaining
from ..scoring.orders import get_order, rank

AUDIT = 50
KEPT_LABELS = ("reviewed_scores", "reviewed_labels", "audit_scores", "audit_labels")
VARIANTS = ("without_audit", "with_audit")


class RemainingTracker:
    """What the simulated reviewer has seen, with the scores it was seen at."""

    def __init__(self, truth: np.ndarray, labelled: np.ndarray, valid: np.ndarray, pool: np.ndarray,
                 seed: int, audit: int = AUDIT) -> None:
        self.truth, self.valid = truth, valid
        self.labelled = labelled.copy()  # initial labels: reviewed, but chosen by class
        self.seen = np.zeros(len(truth), dtype=bool)  # reviewed in score order
        self.random_seen = np.zeros(len(truth), dtype=bool)  # reviewed in random order
        self.seen_scores = np.full(len(truth), np.nan)
        rng = np.random.default_rng([seed, 37])  # apart from the run's other draws
        candidates = np.flatnonzero(pool)
        self.audit = np.zeros(len(truth), dtype=bool)
        self.audit[rng.choice(candidates, size=min(audit, len(candidates)), replace=False)] = True
        self.audit_scores = np.full(len(truth), np.nan)
        self.cycles = 0
        # per cycle and variant: the unreviewed scores and truth, and the calibration labels
        self.replay: dict[str, np.ndarray] = {}

    def cycle(self, scores: np.ndarray, pool: np.ndarray, reviewed: int, order: str,
              seed: int) -> dict[str, Any]:
        """The estimates against the truth now, then record the oracle's reviewed stretch of
        ``pool`` in ``order`` (``reviewed`` images deep) at these scores."""
        self.cycles += 1
        if np.isnan(self.audit_scores[self.audit]).all():
            self.audit_scores[self.audit] = scores[self.audit]  # labelled at the first scores
        record = {"without_audit": self._measure(scores, with_audit=False),
                  "with_audit": self._measure(scores, with_audit=True)}
        if not reviewed or get_order(order).needs_embeddings:  # diverse: not measured here
            return record
        stretch = rank(scores, np.flatnonzero(pool), order, seed)[:reviewed]
        # an image met again (seen before, not picked for training) keeps the score it was judged at
        first_met = stretch[~(self.seen | self.random_seen)[stretch]]
        kind = self.random_seen if order == "random" else self.seen
        kind[first_met] = True
        self.seen_scores[first_met] = scores[first_met]
        return record

    def _measure(self, scores: np.ndarray, with_audit: bool) -> dict[str, Any]:
        reviewed = self.labelled | self.seen | self.random_seen | (self.audit if with_audit else False)
        unreviewed = np.flatnonzero(self.valid & ~reviewed & np.isfinite(scores))
        labels = self._labels(with_audit)
        self._keep(f"cycle{self.cycles}__{VARIANTS[with_audit]}__", scores[unreviewed],
                   self.truth[unreviewed], labels)
        return measure(scores[unreviewed], self.truth[unreviewed], labels)

    def _keep(self, prefix: str, unreviewed_scores: np.ndarray, unreviewed_truth: np.ndarray,
              labels: CalibrationLabels) -> None:
        self.replay.update({f"{prefix}unreviewed_scores": unreviewed_scores.astype(np.float32),
                            f"{prefix}unreviewed_truth": unreviewed_truth.astype(bool),
                            **{prefix + name: np.asarray(getattr(labels, name), dtype=np.float32)
                               for name in KEPT_LABELS}})

    def _labels(self, with_audit: bool) -> CalibrationLabels:
        seen = self.seen | (self.random_seen if not with_audit else False)
        audit = (self.audit | self.random_seen) if with_audit else np.zeros(len(self.truth), bool)
        audit_scores = np.where(self.audit, self.audit_scores, self.seen_scores)
        return CalibrationLabels(self.seen_scores[seen], self.truth[seen].astype(float),
                                 audit_scores[audit], self.truth[audit].astype(float))


def measure(scores: np.ndarray, truth: np.ndarray, labels: CalibrationLabels,
            estimator: Callable[..., RemainingEstimate] = estimate_remaining) -> dict[str, Any]:
    """The estimate from ``labels`` of the anomalies among images of ``scores``, against their
    ``truth`` (overall and in the next N by rank); the refusal's message where too few labels."""
    try:
        estimate = estimator(scores, labels, HORIZONS, LEVEL)
    except ConfigError as err:  # too few labels yet
        return {"error": str(err)}
    by_rank = truth[np.argsort(-scores, kind="stable")]
    truths = {"total": int(truth.sum()), **{f"next{n}": int(by_rank[:n].sum()) for n in HORIZONS}}
    return _record(estimate, truths)


def measure_again(kept: Mapping[str, np.ndarray],
                  estimator: Callable[..., RemainingEstimate] = estimate_remaining) -> list[dict[str, Any]]:
    """Each cycle's estimates made again from what a tracker kept (``RemainingTracker.replay``, or
    the ``*.remaining.npz`` that ``anomalymatch evaluate --json`` writes), as ``cycle`` records."""
    cycles = sorted({int(key.split("__")[0].removeprefix("cycle")) for key in kept})
    found = []
    for cycle in cycles:
        record: dict[str, Any] = {"cycle": cycle}
        for variant in VARIANTS:
            prefix = f"cycle{cycle}__{variant}__"
            labels = CalibrationLabels(*(np.asarray(kept[prefix + name], dtype=np.float64) for name in KEPT_LABELS))
            record[variant] = measure(np.asarray(kept[prefix + "unreviewed_scores"], dtype=np.float64),
                                      np.asarray(kept[prefix + "unreviewed_truth"], dtype=bool), labels, estimator)
        found.append(record)
    return found


def _record(estimate: RemainingEstimate, truths: dict[str, int]) -> dict[str, Any]:
    parts = {"total": estimate.total, **{f"next{n}": e for n, e in estimate.next.items()}}
    return {"method": estimate.method, "n_reviewed_labels": estimate.n_reviewed_labels,
            "n_audit_labels": estimate.n_audit_labels, "level": estimate.level,
            **{name: {"n_images": e.n_images, "expected": e.expected, "low": e.low, "high": e.high,
                      "true": truths[name]} for name, e in parts.items()}}
