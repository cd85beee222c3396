"""A FixMatch network whose head starts as the linear probe (LP-FT): the ``lpft`` heads.

``ProbedNetwork`` reads the same inputs as the linear probe of ``core.learning.probe`` (the pooled
feature pyramid of its backbone and, on single-band images, the morphology statistics) with
a linear head of the same form (``LinearProbe``), but its backbone and head are trained.

At the start of every cycle the head is fitted as a probe on the network's current features
of the labelled images (the "linear probing" of Kumar et al., ICLR 2022, "Fine-tuning can
distort pretrained features and underperform out-of-distribution"); FixMatch then fine-tunes
the head (and, with ``backbone_lr_scale`` > 0, the backbone, whose features the head is then
fitted on again at the end of the cycle) on the labelled images and the pseudo-labelled
unlabelled ones. By default the backbone stays the pretrained one and only the head learns, at
``head_lr_scale`` times the paper's rate: so before the first iteration the network ranks
exactly as the probe does, and every iteration after moves it with what the pseudo-labelled
strong views of the unlabelled images teach. Its batch-normalisation statistics stay the
pretrained ones (the network is always in eval mode): with a few labels and small batches,
batch statistics would make the training and the scoring passes disagree.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..heads import LPFT
from .morphology import MORPHOLOGY_STATISTICS, morphology_statistics
from .probe import CollectionStatistics, LinearProbe, collection_statistics, fit_probe


class ProbedNetwork(nn.Module):
    """A classifier's feature pyramid (plus morphology statistics) read by a trainable probe.

    ``forward`` gives ``[0, z]`` logits, ``z`` the log-odds of "anomaly", like any classifier
    of the engine, so FixMatch, scoring and export use it unchanged.
    """

    component_name = LPFT  # what ``probe.AnomalyScorer`` calls its score

    def __init__(self, network: nn.Module, morphology: bool) -> None:
        super().__init__()
        if not getattr(network, "has_pyramid", False):
            raise ConfigError("the 'lpft' head (train.head) needs an EfficientNet-style backbone (conv_stem, "
                              "blocks, conv_head), which this model.name has not; set head = 'classifier' "
                              "under [train] in session.toml (or --head classifier), or choose an "
                              "EfficientNet model")
        self.network = network
        self.morphology = bool(morphology)
        channels = int(network.mean.shape[1])
        with torch.no_grad():
            network_dims = network.eval().embed_pyramid(torch.zeros(1, channels, 32, 32)).shape[1]
        extras = len(MORPHOLOGY_STATISTICS) if self.morphology else 0
        self.head = LinearProbe(torch.zeros(network_dims + extras), torch.zeros(1),
                                extra_scale=torch.ones(extras) if extras else None, trainable=True)
        self.train(False)

    @property
    def extra_dims(self) -> int:
        """How many statistics follow the network's features in an embedding."""
        return self.head.extra_scale.numel()

    def train(self, mode: bool = True) -> ProbedNetwork:
        """Always in eval mode (see the module's docstring); gradients still flow."""
        return super().train(False)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        features = self.network.embed_pyramid(images)
        if not self.morphology:
            return features
        return torch.cat([features.float(), morphology_statistics(images)], dim=1)

    def anomaly_logit(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = self.anomaly_logit(images)
        return torch.stack([torch.zeros_like(z), z], dim=1)

    def head_parameters(self) -> list[nn.Parameter]:
        """The head's parameters (they learn at the full rate; see ``training._make_optimizer``)."""
        return list(self.head.parameters())

    @torch.no_grad()
    def set_head(self, probe: LinearProbe) -> None:
        """Take over a fitted probe's weights and statistics."""
        for name, value in probe.state_dict().items():
            target = self.head.get_parameter(name) if name in ("weight", "bias") else self.head.get_buffer(name)
            target.copy_(value.to(target.device))


def fit_head(network: ProbedNetwork, images: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor,
             device: torch.device, regularisation: float, views: str, sample: int,
             generator: torch.Generator, centre: bool = True) -> LinearProbe:
    """The probe fitted on ``network``'s current features of the labelled ``images``, centred on
    (up to ``sample`` of) the ``unlabelled`` ones: what ``network``'s head starts a cycle from."""
    pool = unlabelled if len(unlabelled) else images  # the statistics always need a scale
    statistics: CollectionStatistics | None = collection_statistics(
        network, pool, device, sample, generator, network.extra_dims, centre=centre)
    return fit_probe(network, images, labels, device, regularisation, views, statistics)
