"""The orders candidates are reviewed in, registered once (as timm registers its models).

The Review panel's choices, the protocol's oracle, the command line's ``--oracle-order``,
``ScoreRuns.ranking`` and the review queue all read this table; a new order is one
``register_order`` call here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..choices import Registry
from ..errors import NoEmbeddingsError
from .diversity import EmbeddingLookup, diverse_order

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


def rank(scores: np.ndarray, candidates: np.ndarray, order: str, seed: int = 0,
         embeddings_of: EmbeddingLookup | None = None) -> np.ndarray:
    """Order ``candidates`` by ``order`` (see ``ScoreRuns.ranking``: a review order's name); ties by index.  ``diverse``
    needs ``embeddings_of`` (indices -> embeddings: ``core.scoring.diversity``)."""
    review_order = get_order(order)
    if review_order.key is None:
        if embeddings_of is None:
            raise NoEmbeddingsError(f"the {order} order spreads the top candidates over their embeddings; "
                                    "score the collection (after a training cycle) to store them")
        return diverse_order(rank(scores, candidates, "score", seed), scores, embeddings_of, seed)
    values = scores[candidates].astype(np.float64)
    key = np.where(~np.isfinite(values), np.inf, review_order.key(values, seed))
    return candidates[np.lexsort((candidates, key))]
