"""The orders candidates are reviewed in, registered once (as timm registers its models).

The Review panel's choices, the protocol's oracle, the command line's ``--oracle-order``,
``Session.ranking`` and the review queue all read this table; a new order is one
``register_order`` call here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..choices import Registry

# (the candidates' scores, the seed) -> a sort key, lowest first; images without a score come last
SortKey = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class ReviewOrder:
    """One review order: how candidates sort, or (``key`` None) the score order spread over the
    candidates' embeddings (``core.scoring.diversity``)."""

    name: str
    description: str
    key: SortKey | None

    @property
    def needs_embeddings(self) -> bool:
        return self.key is None


ORDERS: Registry[ReviewOrder] = Registry("review order")
order_names = ORDERS.names
get_order = ORDERS.get  # raises ConfigError naming the known orders


def register_order(name: str, description: str, key: SortKey | None) -> ReviewOrder:
    """Add an order to the registry (its order is the order the choices are listed in)."""
    return ORDERS.add(name, ReviewOrder(name, description, key))


register_order("score", "most anomalous first", lambda scores, seed: -scores)
register_order("uncertainty", "closest to 0.5 first", lambda scores, seed: np.abs(scores - 0.5))
register_order("random", "a seeded shuffle", lambda scores, seed: np.random.default_rng(seed).random(len(scores)))
register_order("diverse", "the top candidates spread over their embeddings", None)

