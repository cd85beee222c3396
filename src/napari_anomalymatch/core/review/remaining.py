"""How many anomalies are left among the unreviewed images, overall and in the next N by rank.

The scores are calibrated on the session's own labels with Platt scaling (a logistic fit on the
log-odds of the score) and the calibrated probabilities are summed over the unreviewed images.
Which labels the fit may use matters more than the fit itself:

* labels given while reviewing in **score order** were chosen by their score, not by their label,
  so within the scores they cover the share of anomalies among them is what the model would meet
  among unreviewed images of the same score; they are paired with the score the image had *when it
  was labelled* (a model trained on a label scores that image too confidently afterwards);
* labels given in **random order** (an audit sample) are an unbiased draw of the unreviewed images
  and anchor the low scores that the top of the ranking never reaches;
* labels chosen for what they are (imports, initial examples) would inflate the share of anomalies
  and are left out, unless nothing else exists; the estimate then says it is biased.

The interval is a predictive one: the calibration is refitted on bootstrap resamples of its labels
(reviewed and audit labels resampled apart), and each refit's expected count is drawn as a Poisson
count (the Poisson-binomial of the unreviewed images, slightly widened). The unreviewed log-odds are
sorted once and binned, so a bootstrap costs O(bins), not O(images): O(n log n) in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError

HORIZONS = (100, 1000)  # the "next N by rank" reported by default
LEVEL = 0.9
BOOTSTRAPS = 300
BINS = 2048
RIDGE = 1e-2  # a weak Gaussian prior on the fit: finite slopes on perfectly separated labels
MAX_LOG_ODDS = 16.0  # scores of exactly 0 or 1 are clipped to this
MIN_PER_CLASS = 2  # anomalies and normal images a calibration needs at least
AUDIT_SUGGESTED = 50  # the random audit proposed while there is none
PLATT_REVIEWED, PLATT_AUDIT, PLATT_BIASED = "platt:reviewed", "platt:reviewed+audit", "platt:all-labels(biased)"


@dataclass(frozen=True)
class CalibrationLabels:
    """The labels a calibration may use: scores (when labelled) and 0/1 labels of each kind."""

    reviewed_scores: np.ndarray  # labelled while reviewing in score order
    reviewed_labels: np.ndarray
    audit_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # labelled in random order
    audit_labels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    other_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # chosen by label: imports, examples
    other_labels: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class Expectation:
    """The expected number of anomalies among some images, with a predictive interval."""

    n_images: int
    expected: float
    low: float
    high: float

    def describe(self) -> str:
        return f"{self.expected:.1f} ({self.low:.0f}-{self.high:.0f})"


@dataclass(frozen=True)
class RemainingEstimate:
    """Anomalies expected among the unreviewed images, overall and in the next N by rank."""

    total: Expectation
    next: dict[int, Expectation]
    method: str  # one of PLATT_*
    n_reviewed_labels: int
    n_audit_labels: int
    level: float
    slope: float
    intercept: float

    @property
    def biased(self) -> bool:
        return self.method == PLATT_BIASED

    def describe(self) -> str:
        """One paragraph for a panel or a terminal."""
        nexts = "; ".join(f"next {n}: {e.describe()}" for n, e in self.next.items())
        rests = (f"{self.n_reviewed_labels} labels given in score order"
                 + (f" and {self.n_audit_labels} random audit labels" if self.n_audit_labels else ""))
        text = (f"expected among the {self.total.n_images} unreviewed images: {self.total.describe()} "
                f"({self.level:.0%} interval); {nexts}. Calibration {self.method} on {rests}")
        if self.biased:
            text += (" - BIASED: too few labels were given in score or random order, so labels chosen "
                     f"for what they are were used; label about {AUDIT_SUGGESTED} images in the random review "
                     "order (a random audit) to correct it")
        elif not self.n_audit_labels:
            text += (f"; the low scores are extrapolated: label about {AUDIT_SUGGESTED} images in the random "
                     "review order (a random audit) to check them")
        return text


def logit(scores: np.ndarray) -> np.ndarray:
    """Log-odds of probability scores, clipped to +-``MAX_LOG_ODDS``."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.clip(np.log(p) - np.log1p(-p), -MAX_LOG_ODDS, MAX_LOG_ODDS)


def fit_platt(z: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
              iterations: int = 50) -> np.ndarray:
    """``(slope, intercept)`` of ``P(anomaly) = sigmoid(slope * z + intercept)`` by Newton's method
    with a weak ridge (finite on separated labels). ``weights`` ``(B, n)`` (e.g. bootstrap counts)
    give ``B`` fits at once, as a ``(B, 2)`` array."""
    w = np.ones((1, len(z))) if weights is None else np.asarray(weights, dtype=np.float64)
    theta = np.zeros((len(w), 2))
    for _ in range(iterations):
        p = _sigmoid(theta[:, :1] * z + theta[:, 1:])
        residual, curvature = w * (y - p), w * p * (1 - p)
        gradient = np.stack([residual @ z, residual.sum(1)], axis=1) - RIDGE * theta
        zz, z1, n = curvature @ (z * z), curvature @ z, curvature.sum(1)
        hessian = np.stack([np.stack([zz, z1], -1), np.stack([z1, n], -1)], axis=1) + RIDGE * np.eye(2)
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        theta += step
        if np.abs(step).max() < 1e-8:
            break
    return theta[0] if weights is None else theta


def estimate_remaining(unreviewed_scores: np.ndarray, labels: CalibrationLabels,
                       horizons: Sequence[int] = HORIZONS, level: float = LEVEL,
                       bootstraps: int = BOOTSTRAPS, seed: int = 0) -> RemainingEstimate:
    """The expected number of anomalies among ``unreviewed_scores`` and among the top N of them.

    Parameters
    ----------
    unreviewed_scores
        Current scores (probabilities, NaN for unscored images, which are left out) of every
        image not yet reviewed.
    labels
        The labels to calibrate on (see the module's description of which count).
    horizons
        The N of "the next N by rank".
    level
        The interval's coverage.

    Raises
    ------
    ConfigError
        Fewer than ``MIN_PER_CLASS`` anomalies or normal images among all labels, or a level
        outside (0, 1).
    """
    if not 0 < level < 1:
        raise ConfigError(f"the interval's level must be in (0, 1); got {level}")
    z, y, audit, method = _calibration_set(labels)
    slope, intercept = (float(v) for v in fit_platt(z, y))
    unreviewed = np.sort(logit(unreviewed_scores[np.isfinite(unreviewed_scores)]))[::-1]
    sizes = [len(unreviewed)] + [min(int(n), len(unreviewed)) for n in horizons]
    counts, centres = _binned(unreviewed, sizes)
    point = counts @ _sigmoid(slope * centres + intercept)
    rng = np.random.default_rng(seed)
    fits = fit_platt(z, y, _bootstrap_counts(audit, bootstraps, rng))
    means = counts @ _sigmoid(fits[:, :1] * centres[None, :] + fits[:, 1:]).T  # (sizes, bootstraps)
    draws = rng.poisson(np.maximum(means, 0))
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=1)
    found = [Expectation(n, float(e), float(lo), float(hi)) for n, e, lo, hi in zip(sizes, point, low, high)]
    return RemainingEstimate(found[0], dict(zip((int(n) for n in horizons), found[1:])), method,
                             int((~audit).sum()) if method != PLATT_BIASED else 0, int(audit.sum()),
                             level, slope, intercept)


def _calibration_set(labels: CalibrationLabels) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Log-odds, 0/1 labels and the audit mask of the labels to fit on, and the method's name."""
    z = np.concatenate([labels.reviewed_scores, labels.audit_scores]).astype(np.float64)
    y = np.concatenate([labels.reviewed_labels, labels.audit_labels]).astype(np.float64)
    audit = np.r_[np.zeros(len(labels.reviewed_scores), bool), np.ones(len(labels.audit_scores), bool)]
    method = PLATT_AUDIT if audit.any() else PLATT_REVIEWED
    if min(y.sum(), (1 - y).sum()) < MIN_PER_CLASS:
        z = np.concatenate([z, labels.other_scores]).astype(np.float64)
        y = np.concatenate([y, labels.other_labels]).astype(np.float64)
        audit = np.r_[audit, np.zeros(len(labels.other_scores), bool)]
        method = PLATT_BIASED
    if min(y.sum(), (1 - y).sum()) < MIN_PER_CLASS:
        raise ConfigError(f"the estimate of what remains needs at least {MIN_PER_CLASS} anomalies and "
                          f"{MIN_PER_CLASS} normal images labelled; got {int(y.sum())} and "
                          f"{int((1 - y).sum())}. Review more of the ranking")
    return logit(z), y, audit, method


def _bootstrap_counts(audit: np.ndarray, bootstraps: int, rng: np.random.Generator) -> np.ndarray:
    """``(bootstraps, n)`` times each label is drawn, resampled apart within the reviewed and the
    audit labels."""
    counts = np.zeros((bootstraps, len(audit)))
    for part in (~audit, audit):
        if part.any():
            counts[:, part] = rng.multinomial(part.sum(), np.full(part.sum(), 1 / part.sum()), size=bootstraps)
    return counts


def _binned(descending: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the top ``size`` log-odds (for each size) in ``BINS`` shared bins, and the
    mean log-odds in each bin (exact for a bin's sum when its values are alike)."""
    if not len(descending):
        return np.zeros((len(sizes), 1)), np.zeros(1)
    edges = np.linspace(descending[-1], descending[0] + 1e-9, BINS + 1)
    which = np.clip(np.searchsorted(edges, descending, side="right") - 1, 0, BINS - 1)
    totals = np.bincount(which, weights=descending, minlength=BINS)
    members = np.bincount(which, minlength=BINS)
    centres = np.where(members > 0, totals / np.maximum(members, 1), (edges[:-1] + edges[1:]) / 2)
    counts = np.stack([np.bincount(which[:size], minlength=BINS) for size in sizes]).astype(np.float64)
    return counts, centres


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))
