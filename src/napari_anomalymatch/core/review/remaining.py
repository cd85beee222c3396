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

The fit has a prior on its slope centred on 1, the score's own calibration: labels from the top of
the ranking cover a narrow stretch of scores, and a free slope fitted there, extrapolated to every
other image, can put the total anywhere. How wide that prior is, the labels decide: a grid of widths
from "the score's own shape" to "a free fit" is weighed by how well each explains the labels (its
marginal likelihood) under a half-Cauchy hyperprior that favours the narrow end, so labels that
clearly reject slope 1 get the free fit and its width.

The interval is a predictive one: draws from the mixture of the fits' posteriors (Laplace
approximations, their covariance widened ``WIDENING`` times), each drawn as a Poisson count (the
Poisson-binomial of the unreviewed images, slightly widened). The widening stands for what the
labels cannot show: they were scored by earlier models, whose calibration moves from one training
cycle to the next. The unreviewed log-odds are sorted once and binned, so a draw costs O(bins),
not O(images): O(n log n) in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError

HORIZONS = (100, 1000)  # the "next N by rank" reported by default
LEVEL = 0.9
DRAWS = 400
BINS = 2048
RIDGE = 1e-2  # fit_platt's weak Gaussian prior: finite slopes on perfectly separated labels
MAX_LOG_ODDS = 16.0  # scores of exactly 0 or 1 are clipped to this
MIN_PER_CLASS = 2  # anomalies and normal images a calibration needs at least
AUDIT_SUGGESTED = 50  # the random audit proposed while there is none
# the prior's sd of the slope around 1, from "the score's own shape" to "free"; the labels weigh them
SLOPE_SCALES = tuple(float(s) for s in np.geomspace(0.02, 20.0, 13))
SCALE_PRIOR = 0.1  # half-Cauchy scale over SLOPE_SCALES: a wide slope prior has to be asked for by the labels
INTERCEPT_SD = 10.0  # the intercept is left all but free: class balance moves it more than anything
# the posterior's covariance is widened this much (its sd 3 times): the labels were scored by earlier
# models, whose calibration drifts between cycles (benchmarks/results/remaining_replay.md measures it)
WIDENING = 9.0
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
    slope_prior_sd: float = float("nan")  # the width of the slope's prior the labels chose (its mode)

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


def fit_platt(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(slope, intercept)`` of ``P(anomaly) = sigmoid(slope * z + intercept)``, a free fit but
    for a weak ridge (finite on separated labels)."""
    return _posterior(z, y, np.zeros(2), RIDGE * np.eye(2))[0]


def estimate_remaining(unreviewed_scores: np.ndarray, labels: CalibrationLabels,
                       horizons: Sequence[int] = HORIZONS, level: float = LEVEL, draws: int = DRAWS,
                       seed: int = 0, slope_scales: Sequence[float] = SLOPE_SCALES,
                       widening: float = WIDENING) -> RemainingEstimate:
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
    slope_scales, widening
        The widths of the slope's prior the labels choose from (one: that width, fixed), and how
        much the posterior is widened; the defaults are the measured ones.

    Raises
    ------
    ConfigError
        Fewer than ``MIN_PER_CLASS`` anomalies or normal images among all labels, a level outside
        (0, 1), or no positive slope scale.
    """
    if not 0 < level < 1:
        raise ConfigError(f"the interval's level must be in (0, 1); got {level}")
    if not len(slope_scales) or min(slope_scales) <= 0:
        raise ConfigError(f"the slope's prior needs positive widths to choose from; got {list(slope_scales)}")
    z, y, audit, method = _calibration_set(labels)
    weights, modes, covariances = _calibration_posterior(z, y, np.asarray(slope_scales, dtype=np.float64))
    unreviewed = np.sort(logit(unreviewed_scores[np.isfinite(unreviewed_scores)]))[::-1]
    sizes = [len(unreviewed)] + [min(int(n), len(unreviewed)) for n in horizons]
    counts, centres = _binned(unreviewed, sizes)
    point = weights @ _expected(modes, counts, centres).T
    rng = np.random.default_rng(seed)
    per_fit = rng.multinomial(draws, weights)
    drawn = np.concatenate([rng.multivariate_normal(mode, widening * covariance, size=n)
                            for mode, covariance, n in zip(modes, covariances, per_fit) if n])
    predicted = np.minimum(rng.poisson(_expected(drawn, counts, centres)), np.asarray(sizes)[:, None])
    low, high = np.quantile(predicted, [(1 - level) / 2, (1 + level) / 2], axis=1)
    found = [Expectation(n, float(e), float(lo), float(hi)) for n, e, lo, hi in zip(sizes, point, low, high)]
    slope, intercept = weights @ modes
    return RemainingEstimate(found[0], dict(zip((int(n) for n in horizons), found[1:])), method,
                             int((~audit).sum()) if method != PLATT_BIASED else 0, int(audit.sum()),
                             level, float(slope), float(intercept), float(slope_scales[int(np.argmax(weights))]))


def _expected(calibrations: np.ndarray, counts: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(sizes, K)`` expected anomalies among each size's binned log-odds, for each of ``K``
    ``(slope, intercept)`` calibrations."""
    return counts @ _sigmoid(calibrations[:, :1] * centres[None, :] + calibrations[:, 1:]).T


def _calibration_posterior(z: np.ndarray, y: np.ndarray,
                           scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, modes ``(K, 2)`` and covariances ``(K, 2, 2)`` of the fits under each width of the
    slope's prior, weighed by their marginal likelihood and the half-Cauchy hyperprior."""
    centre = np.array([1.0, 0.0])
    fits = [_posterior(z, y, centre, np.diag([scale**-2, INTERCEPT_SD**-2])) for scale in scales]
    # the grid is even in log(scale): the hyperprior's density in log(scale) is scale * p(scale)
    log_weights = np.array([f[2] for f in fits]) + np.log(scales) - np.log1p((scales / SCALE_PRIOR) ** 2)
    weights = np.exp(log_weights - log_weights.max())
    return (weights / weights.sum(), np.array([f[0] for f in fits]),
            np.array([np.linalg.inv(f[1]) for f in fits]))


def _posterior(z: np.ndarray, y: np.ndarray, mean: np.ndarray,
               precision: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mode, curvature (the Laplace approximation's inverse covariance) and log marginal likelihood
    of ``sigmoid(slope * z + intercept)`` under a Gaussian prior, by Newton's method; the step is
    halved until the posterior rises (log-odds up to 16 make a full step overshoot far)."""
    theta = mean.astype(np.float64)
    value = _log_posterior(theta, z, y, mean, precision)
    for _ in range(100):
        p = _sigmoid(theta[0] * z + theta[1])
        gradient = np.array([(y - p) @ z, (y - p).sum()]) - precision @ (theta - mean)
        step = np.linalg.solve(_curvature(z, p) + precision, gradient)
        for _ in range(30):
            trial = _log_posterior(theta + step, z, y, mean, precision)
            if trial >= value:
                break
            step /= 2
        else:
            break  # no step uphill: at the mode to numerical precision
        theta, value = theta + step, trial
        if np.abs(step).max() < 1e-9:
            break
    curvature = _curvature(z, _sigmoid(theta[0] * z + theta[1])) + precision
    log_evidence = value + (np.linalg.slogdet(precision)[1] - np.linalg.slogdet(curvature)[1]) / 2
    return theta, curvature, float(log_evidence)


def _log_posterior(theta: np.ndarray, z: np.ndarray, y: np.ndarray, mean: np.ndarray,
                   precision: np.ndarray) -> float:
    """Log-likelihood of the labels plus the Gaussian prior's log density (up to its constant)."""
    x = theta[0] * z + theta[1]
    offset = theta - mean
    return float(y @ x - np.logaddexp(0, x).sum() - offset @ precision @ offset / 2)


def _curvature(z: np.ndarray, p: np.ndarray) -> np.ndarray:
    c = p * (1 - p)
    return np.array([[c @ (z * z), c @ z], [c @ z, c.sum()]])


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
