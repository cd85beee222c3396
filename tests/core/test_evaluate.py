"""The simulated expert of the evaluation protocol: what it labels, and in which order."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.evaluation.protocol import OracleSettings, held_out_split, oracle_picks

# ten images: scores from 0.95 down to 0.05; the true anomalies are at places 0, 4 and 9
SCORES = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05], dtype=np.float32)
TRUTH = np.zeros(10, dtype=bool)
TRUTH[[0, 4, 9]] = True


def test_score_order_labels_the_most_anomalous_first():
    picks, reviewed = oracle_picks(SCORES, TRUTH, np.ones(10, bool), OracleSettings(2, 2, "score"), seed=0)
    assert picks.tolist() == [0, 4, 1, 2]
    assert reviewed == 5  # it had to look down to the second anomaly, at place 5


def test_uncertainty_order_labels_those_nearest_one_half_first():
    picks, reviewed = oracle_picks(SCORES, TRUTH, np.ones(10, bool), OracleSettings(1, 2, "uncertainty"), seed=0)
    # review order by |score - 0.5|: 4 (0.55), 5 (0.45), 3, 6, 2, 7, ...
    assert picks.tolist() == [4, 5, 3]
    assert reviewed == 3


def test_the_oracle_never_relabels_and_stops_when_the_images_run_out():
    unlabelled = np.ones(10, bool)
    unlabelled[[0, 4]] = False  # already labelled
    picks, reviewed = oracle_picks(SCORES, TRUTH, unlabelled, OracleSettings(5, 1, "score"), seed=0)
    assert picks.tolist() == [9, 1]  # the one anomaly left, and the top normal image
    assert reviewed == 8  # all eight unlabelled images were looked at
    none, reviewed = oracle_picks(SCORES, TRUTH, unlabelled, OracleSettings(0, 0, "score"), seed=0)
    assert none.size == 0 and reviewed == 0


def test_random_order_depends_on_the_seed_only():
    settings = OracleSettings(2, 2, "random")
    first, _ = oracle_picks(SCORES, TRUTH, np.ones(10, bool), settings, seed=3)
    again, _ = oracle_picks(SCORES, TRUTH, np.ones(10, bool), settings, seed=3)
    assert first.tolist() == again.tolist() and sorted(TRUTH[first]) == [False, False, True, True]


def test_images_without_a_score_are_reviewed_last():
    scores = SCORES.copy()
    scores[4] = np.nan
    picks, _ = oracle_picks(scores, TRUTH, np.ones(10, bool), OracleSettings(2, 0, "uncertainty"), seed=0)
    assert picks.tolist() == [0, 9]


def test_the_test_split_is_stratified_fixed_and_drawn_from_the_candidates_only():
    truth = np.zeros(1000, dtype=bool)
    truth[::50] = True  # 20 anomalies, 2 %
    candidates = np.ones(1000, dtype=bool)
    candidates[:100] = False  # labelled from the start: never in the split
    split = held_out_split(truth, candidates, 0.2, seed=4)
    assert not split[:100].any()
    assert int((split & truth).sum()) == round(0.2 * 18) and int((split & ~truth).sum()) == round(0.2 * 882)
    assert np.array_equal(split, held_out_split(truth, candidates, 0.2, seed=4))
    assert not np.array_equal(split, held_out_split(truth, candidates, 0.2, seed=5))
    assert not held_out_split(truth, candidates, 0.0, seed=4).any()
    one = np.zeros(1000, dtype=bool)
    one[700] = True  # a class with a single image still gets into a split
    assert held_out_split(one, candidates, 0.2, seed=4)[700]


@pytest.mark.parametrize("settings", [{"order": "best"}, {"anomalies": -1}, {"test_fraction": 1.0}])
def test_bad_oracle_settings_say_what_is_allowed(settings):
    with pytest.raises(ConfigError, match=r"uncertainty|non-negative|\[0, 1\)"):
        OracleSettings(**settings)


def test_the_command_line_offers_every_review_order():
    from napari_anomalymatch.cli import build_parser
    from napari_anomalymatch.core.scoring.orders import order_names

    parser = build_parser()
    for order in order_names():
        assert parser.parse_args(["evaluate", "m.csv", "--oracle-order", order]).oracle_order == order
    assert parser.parse_args(["evaluate", "m.csv"]).oracle_order == OracleSettings().order
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "m.csv", "--oracle-order", "best"])
