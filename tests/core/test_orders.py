"""The review orders' registry: one table read by the ranking, the review queue and the protocol's oracle."""

import numpy as np
import pytest

from napari_anomalymatch.core.errors import ConfigError, NoEmbeddingsError
from napari_anomalymatch.core.evaluation.protocol import OracleSettings
from napari_anomalymatch.core.scoring import orders
from napari_anomalymatch.core.scoring.orders import get_order, order_names, rank, register_order

SCORES = np.array([0.9, 0.2, np.nan, 0.55, 0.6], dtype=np.float32)
ALL = np.arange(len(SCORES))


def test_the_orders_offered_and_their_order():
    assert order_names() == ("score", "uncertainty", "random", "diverse")
    assert [get_order(name).needs_embeddings for name in order_names()] == [False, False, False, True]


@pytest.mark.parametrize(("order", "expected"), [
    ("score", [0, 4, 3, 1, 2]),  # unscored last
    ("uncertainty", [3, 4, 1, 0, 2]),
])
def test_each_order_ranks_by_its_key(order, expected):
    assert rank(SCORES, ALL, order).tolist() == expected


def test_the_random_order_is_seeded_and_keeps_unscored_images_last():
    first = rank(SCORES, ALL, "random", seed=3)
    assert first.tolist() == rank(SCORES, ALL, "random", seed=3).tolist()
    assert first[-1] == 2 and sorted(first.tolist()) == ALL.tolist()


def test_the_diverse_order_needs_embeddings():
    with pytest.raises(NoEmbeddingsError, match="the diverse order spreads the top candidates"):
        rank(SCORES, ALL, "diverse")


def test_an_unknown_order_gets_one_message_everywhere():
    expected = r"review order must be one of \['score', 'uncertainty', 'random', 'diverse'\]; got 'best'"
    for ask in (lambda: get_order("best"), lambda: rank(SCORES, ALL, "best"),
                lambda: OracleSettings(order="best")):
        with pytest.raises(ConfigError, match=expected):
            ask()


def test_an_order_registered_in_one_place_ranks(monkeypatch):
    monkeypatch.setattr(orders.ORDERS, "_entries", dict(orders.ORDERS._entries))
    register_order("least-anomalous", "most normal first", lambda scores, seed: scores)
    assert rank(SCORES, ALL, "least-anomalous").tolist() == [1, 3, 4, 0, 2]
    with pytest.raises(ValueError, match="registered already"):
        register_order("score", "again", None)
