"""The estimate of the anomalies still unreviewed, on synthetic scores with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.evaluation.remaining import RemainingTracker
from napari_anomalymatch.core.review.remaining import (
    PLATT_AUDIT,
    PLATT_BIASED,
    PLATT_REVIEWED,
    SLOPE_SCALES,
    CalibrationLabels,
    estimate_remaining,
    fit_platt,
    logit,
)

N, REVIEWED, AUDITED = 6000, 300, 60
TRUE_SLOPE, TRUE_INTERCEPT = 1.5, -4.0  # P(anomaly | z): about 6 % anomalies
FREE = SLOPE_SCALES[-1:]  # the widest prior on the slope alone: the free fit


def survey(seed: int, shown=lambda z: 1 / (1 + np.exp(-(TRUE_SLOPE * z + TRUE_INTERCEPT)))):
    """Scores ``shown(z)`` of images whose truth is drawn from the true calibration; the top
    ``REVIEWED`` by score reviewed, ``AUDITED`` of the rest drawn at random."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, N)
    truth = rng.random(N) < 1 / (1 + np.exp(-(TRUE_SLOPE * z + TRUE_INTERCEPT)))
    scores = shown(z)
    order = np.argsort(-scores)
    audit = rng.choice(order[REVIEWED:], AUDITED, replace=False)
    unreviewed = np.setdiff1d(order[REVIEWED:], audit)
    return scores, truth, order[:REVIEWED], audit, unreviewed


def labels_of(scores, truth, reviewed, audit=()) -> CalibrationLabels:
    audit = np.asarray(audit, dtype=np.int64)
    return CalibrationLabels(scores[reviewed], truth[reviewed].astype(float), scores[audit], truth[audit].astype(float))


def coverage(shown, with_audit: bool, runs: int = 12) -> tuple[float, float, float]:
    """Share of runs whose interval holds the true remaining count (overall, next 100), and the
    mean error relative to the truth."""
    inside_total = inside_next = 0
    errors = []
    for seed in range(runs):
        scores, truth, reviewed, audit, unreviewed = survey(seed, shown)
        labels = labels_of(scores, truth, reviewed, audit if with_audit else ())
        estimate = estimate_remaining(scores[unreviewed], labels, draws=100, seed=seed)
        true_total = truth[unreviewed].sum()
        true_next = truth[unreviewed[np.argsort(-scores[unreviewed])][:100]].sum()
        inside_total += estimate.total.low <= true_total <= estimate.total.high
        inside_next += estimate.next[100].low <= true_next <= estimate.next[100].high
        errors.append((estimate.total.expected - true_total) / true_total)
    return inside_total / runs, inside_next / runs, float(np.mean(errors))


def test_calibrated_scores_give_intervals_that_hold_the_truth():
    total, next_100, error = coverage(lambda z: 1 / (1 + np.exp(-(TRUE_SLOPE * z + TRUE_INTERCEPT))), False)
    assert total >= 0.75 and next_100 >= 0.75
    assert abs(error) < 0.35


@pytest.mark.parametrize("with_audit", [False, True])
def test_overconfident_scores_are_recalibrated_on_the_labels(with_audit):
    """Scores far too high for what they are (a network's sharp sigmoid): summing them would
    count several times the anomalies; the calibration brings the sum back to the truth."""
    def shown(z):
        return 1 / (1 + np.exp(-(2.5 * z + 1.5)))

    scores, truth, _, _, unreviewed = survey(0, shown)
    assert scores[unreviewed].sum() > 2 * truth[unreviewed].sum()  # the raw sum is far off
    total, next_100, error = coverage(shown, with_audit)
    assert total >= 0.75 and next_100 >= 0.75 and abs(error) < 0.35


def width(estimate) -> float:
    return estimate.total.high - estimate.total.low


def test_labels_that_clearly_reject_slope_one_get_the_free_fits_width():
    """Log-odds four times too steep: the labels rule the score's own shape out, so the prior on
    the slope widens until the fit is the free one, and so is its interval."""
    def shown(z):
        return 1 / (1 + np.exp(-(TRUE_SLOPE * z + TRUE_INTERCEPT + 2) / 0.25))  # truth: 0.25 * log-odds - 2

    for seed in range(3):
        scores, truth, reviewed, audit, unreviewed = survey(seed, shown)
        labels = labels_of(scores, truth, reviewed, audit)
        learned = estimate_remaining(scores[unreviewed], labels)
        free = estimate_remaining(scores[unreviewed], labels, slope_scales=FREE)
        assert learned.slope_prior_sd > 0.25 and learned.slope == pytest.approx(free.slope, abs=0.03)
        assert width(learned) == pytest.approx(width(free), rel=0.2)


@pytest.mark.parametrize("with_audit", [False, True])
def test_calibrated_scores_keep_the_narrow_prior_and_its_narrower_interval(with_audit):
    for seed in range(3):
        scores, truth, reviewed, audit, unreviewed = survey(seed)
        labels = labels_of(scores, truth, reviewed, audit if with_audit else ())
        learned = estimate_remaining(scores[unreviewed], labels)
        free = estimate_remaining(scores[unreviewed], labels, slope_scales=FREE)
        assert learned.slope_prior_sd <= 0.25 and width(learned) < 0.7 * width(free)


def test_a_prior_centred_on_slope_one_still_reaches_a_slope_far_from_it():
    """From slope 1 on log-odds up to 16 a full Newton step overshoots; without halving it, the
    fit under the prior once ran off to a negative slope on this survey."""
    def shown(z):
        return 1 / (1 + np.exp(-(2.5 * z + 1.5)))

    scores, truth, reviewed, audit, unreviewed = survey(1, shown)
    labels = labels_of(scores, truth, reviewed, audit)
    z, y = logit(np.r_[labels.reviewed_scores, labels.audit_scores]), np.r_[labels.reviewed_labels, labels.audit_labels]
    free_slope = fit_platt(z, y)[0]
    assert free_slope < 0.8
    free = estimate_remaining(scores[unreviewed], labels, slope_scales=FREE, widening=1.0)
    assert free.slope == pytest.approx(free_slope, abs=0.01)
    narrow = estimate_remaining(scores[unreviewed], labels, slope_scales=(0.25,), widening=1.0)
    assert free_slope < narrow.slope < 1  # shrunk towards the score's own calibration, not past it


def test_an_audit_sample_narrows_the_interval_of_the_extrapolated_tail():
    scores, truth, reviewed, audit, unreviewed = survey(3)
    without = estimate_remaining(scores[unreviewed], labels_of(scores, truth, reviewed), draws=120)
    with_audit = estimate_remaining(scores[unreviewed], labels_of(scores, truth, reviewed, audit), draws=120)
    assert without.method == PLATT_REVIEWED and with_audit.method == PLATT_AUDIT
    assert with_audit.n_audit_labels == AUDITED and with_audit.n_reviewed_labels == REVIEWED
    width = lambda e: e.total.high - e.total.low  # noqa: E731
    assert width(with_audit) < width(without)
    assert "random audit" in without.describe() and "60 random audit labels" in with_audit.describe()


def test_the_next_n_never_exceed_n_nor_the_total():
    scores, truth, reviewed, _, unreviewed = survey(1)
    estimate = estimate_remaining(scores[unreviewed], labels_of(scores, truth, reviewed), horizons=(10, 100, 10**6))
    assert [e.n_images for e in estimate.next.values()] == [10, 100, len(unreviewed)]
    assert estimate.next[10].expected <= 10 and estimate.next[100].high <= 100
    assert estimate.next[10].expected < estimate.next[100].expected <= estimate.total.expected
    assert estimate.next[10**6].expected == pytest.approx(estimate.total.expected)
    for e in (estimate.total, *estimate.next.values()):
        assert e.low <= e.expected <= e.high


def test_labels_chosen_by_class_are_used_only_when_nothing_else_exists_and_said_biased():
    scores, truth, reviewed, _, unreviewed = survey(2)
    chosen = np.r_[np.flatnonzero(truth)[:10], np.flatnonzero(~truth)[:30]]
    labels = CalibrationLabels(np.zeros(0), np.zeros(0), other_scores=scores[chosen],
                               other_labels=truth[chosen].astype(float))
    estimate = estimate_remaining(scores[unreviewed], labels)
    assert estimate.method == PLATT_BIASED and estimate.biased and "BIASED" in estimate.describe()


def test_too_few_labels_say_what_is_needed():
    with pytest.raises(ConfigError, match="at least 2 anomalies and 2 normal images"):
        estimate_remaining(np.array([0.5, 0.2]), CalibrationLabels(np.array([0.9, 0.1]), np.array([1.0, 0.0])))
    with pytest.raises(ConfigError, match="level"):
        estimate_remaining(np.array([0.5]), CalibrationLabels(np.zeros(0), np.zeros(0)), level=1.5)
    with pytest.raises(ConfigError, match="positive widths"):
        estimate_remaining(np.array([0.5]), CalibrationLabels(np.zeros(0), np.zeros(0)), slope_scales=(0.0,))


def test_platt_recovers_a_known_calibration_and_stays_finite_on_separated_labels():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(0.7 * z - 1)))).astype(float)
    slope, intercept = fit_platt(z, y)
    assert slope == pytest.approx(0.7, abs=0.05) and intercept == pytest.approx(-1, abs=0.05)
    assert np.isfinite(fit_platt(np.array([-2.0, -1, 1, 2]), np.array([0.0, 0, 1, 1]))).all()
    assert logit(np.array([0.0, 0.5, 1.0])).tolist() == [-16.0, 0.0, 16.0]


def test_the_protocol_tracker_measures_against_the_truth_then_records_the_review():
    scores, truth, _, _, _ = survey(4)
    labelled = np.zeros(N, bool)
    labelled[np.r_[np.flatnonzero(truth)[:5], np.flatnonzero(~truth)[:5]]] = True
    valid, pool = np.ones(N, bool), ~labelled
    tracker = RemainingTracker(truth, labelled, valid, pool, seed=0, audit=80)
    first = tracker.cycle(scores, pool, reviewed=200, order="score", seed=0)
    assert "at least 2 anomalies" in first["without_audit"]["error"]  # nothing reviewed in order yet
    audited = first["with_audit"]
    assert audited["method"] == PLATT_AUDIT and audited["n_audit_labels"] == 80
    assert audited["total"]["true"] == truth[~labelled & ~tracker.audit].sum()
    second = tracker.cycle(scores, pool & ~tracker.seen, reviewed=0, order="score", seed=0)["without_audit"]
    top = np.flatnonzero(pool)[np.argsort(-scores[pool], kind="stable")][:200]
    assert tracker.seen[top].all() and tracker.seen.sum() == 200
    assert second["n_reviewed_labels"] == 200 and second["total"]["n_images"] == N - 10 - 200
    assert second["total"]["true"] == truth[~labelled & ~tracker.seen].sum()
    rest = np.flatnonzero(~labelled & ~tracker.seen)
    assert second["next100"]["true"] == truth[rest[np.argsort(-scores[rest], kind="stable")][:100]].sum()


def test_an_image_the_reviewer_meets_again_keeps_the_score_it_was_judged_at():
    scores, truth, _, _, _ = survey(5)
    labelled = np.zeros(N, bool)
    labelled[np.r_[np.flatnonzero(truth)[:5], np.flatnonzero(~truth)[:5]]] = True
    pool = ~labelled
    tracker = RemainingTracker(truth, labelled, np.ones(N, bool), pool, seed=0, audit=0)
    tracker.cycle(scores, pool, reviewed=100, order="score", seed=0)
    met = tracker.seen.copy()
    later = scores + 0.5  # a later model scores every image higher; the unpicked ones stay in the pool
    tracker.cycle(later, pool, reviewed=150, order="score", seed=0)
    assert tracker.seen.sum() == 150 and met[tracker.seen].sum() == 100
    np.testing.assert_array_equal(tracker.seen_scores[met], scores[met])
    np.testing.assert_array_equal(tracker.seen_scores[tracker.seen & ~met], later[tracker.seen & ~met])
