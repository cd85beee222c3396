"""The one cycle's unlabelled pool, drawn alike for a session and for ``evaluate``."""

import numpy as np

from napari_anomalymatch.core.learning.cycle import unlabelled_pool


def test_the_pool_leaves_out_what_it_must_and_is_sorted():
    left_out = np.array([3, 10, 11, 50])
    pool = unlabelled_pool(100, left_out, wanted=30, seed=0, cycle=1)
    assert len(pool) == 30 and np.all(np.diff(pool) > 0)
    assert not np.isin(pool, left_out).any() and pool.min() >= 0 and pool.max() < 100


def test_a_small_collection_gives_every_image_it_may():
    pool = unlabelled_pool(20, np.array([0, 5]), wanted=10_000, seed=0, cycle=1)
    np.testing.assert_array_equal(pool, np.setdiff1d(np.arange(20), [0, 5]))


def test_each_cycle_draws_afresh_and_a_rerun_draws_the_same():
    first, second = (unlabelled_pool(1000, np.array([1, 2]), 50, seed=4, cycle=c) for c in (1, 2))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, unlabelled_pool(1000, np.array([1, 2]), 50, seed=4, cycle=1))


def test_the_pool_is_the_one_sessions_drew_before_the_cycle_was_one_function():
    # Session._unlabelled_pool's draw, written out: existing sessions keep their pools
    labelled = np.array([7, 8, 400])
    rng = np.random.default_rng([0, 3])
    draw = rng.choice(500, size=min(500, 64 + len(labelled)), replace=False)
    expected = np.sort(draw[~np.isin(draw, labelled)][:64])
    np.testing.assert_array_equal(unlabelled_pool(500, labelled, 64, seed=0, cycle=3), expected)
