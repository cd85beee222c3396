"""The heads a session scores with, registered once (as timm registers its models).

A head says which network FixMatch trains (``network``: the paper's fine-tuned ``classifier``, or
``lpft``, the probe-initialised network of ``learning.lpft``) and which components' anomaly
log-odds its score averages (``parts``: the trained network's and/or the linear ``probe``'s).
The settings' check, the command line's choices, the scorer (``learning.probe.AnomalyScorer``),
the probe's fitting and the checkpoint check (``learning.training``), saliency and the protocol's
comparison of heads all read this table: a new head made of these components is one
``register_head`` call here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .choices import Registry

CLASSIFIER = "classifier"
LPFT = "lpft"
PROBE = "probe"
NETWORKS = (CLASSIFIER, LPFT)  # what FixMatch can train: the name of the component it gives


@dataclass(frozen=True)
class Head:
    """One way of scoring: the network trained and the components whose log-odds are averaged."""

    name: str
    network: str
    parts: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"head {self.name!r}: network must be one of {NETWORKS}; got {self.network!r}")
        unknown = [part for part in self.parts if part not in (self.network, PROBE)]
        if not self.parts or unknown:
            raise ValueError(f"head {self.name!r}: parts must be its network {self.network!r} and/or "
                             f"{PROBE!r}; got {self.parts}")

    @property
    def trains_lpft(self) -> bool:
        """Whether FixMatch trains the probe-initialised network (else the classifier)."""
        return self.network == LPFT

    @property
    def fits_probe(self) -> bool:
        """Whether a cycle ends by fitting the probe: the score reads it, or the lpft network
        starts the next cycle from it."""
        return PROBE in self.parts or self.trains_lpft

    @property
    def network_only(self) -> bool:
        """Whether the score is the trained network's own output."""
        return self.parts == (self.network,)


HEADS: Registry[Head] = Registry("train.head")
head_names = HEADS.names
get_head = HEADS.get  # raises ConfigError naming the known heads


def register_head(name: str, network: str, parts: tuple[str, ...], description: str) -> Head:
    """Add a head to the registry (its order is the order the choices are listed in)."""
    return HEADS.add(name, Head(name, network, parts, description))


register_head("lpft+probe", LPFT, (LPFT, PROBE), "the lpft network and the probe, averaged")
register_head(LPFT, LPFT, (LPFT,), "the network initialised by the probe, fine-tuned by FixMatch (the default)")
register_head(CLASSIFIER, CLASSIFIER, (CLASSIFIER,), "the paper's classifier, fine-tuned by FixMatch")
register_head(PROBE, CLASSIFIER, (PROBE,), "the linear probe alone")
register_head("ensemble", CLASSIFIER, (CLASSIFIER, PROBE), "the classifier and the probe, averaged")


def heads_training(network: str) -> tuple[str, ...]:
    """The heads whose trained network is ``network``, e.g. to say which made a checkpoint."""
    return tuple(name for name in head_names() if get_head(name).network == network)


def head_log_odds(components: Mapping[str, Any], name: str) -> Any:
    """Head ``name``'s anomaly log-odds from its components' (tensors or arrays): their mean, so
    an ensemble's odds are the geometric mean of its parts' odds."""
    parts = get_head(name).parts
    total = components[parts[0]]
    for part in parts[1:]:
        total = total + components[part]
    return total / len(parts) if len(parts) > 1 else total
