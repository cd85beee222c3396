"""A linear probe on the network's embedding, and the scorer that combines it with the classifier.

After each training cycle a logistic regression is fitted on the L2-normalised penultimate
features of the labelled images (each seen in its eight flips/quarter turns). With a handful of
labels it generalises better than the fine-tuned classifier head alone, which memorises the few
labelled anomalies; both come out of the same forward pass, so the combined score costs nothing
extra at scoring time. ``AnomalyScorer`` returns two-class logits like the classifier, so every
scoring path (local, workers, Dask) uses it unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import dihedral

HEADS = ("classifier", "probe", "ensemble")


class LinearProbe(nn.Module):
    """``w . normalise(embedding) + b``: the logit of "anomaly"."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().float().reshape(-1))
        self.register_buffer("bias", bias.detach().float().reshape(1))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(embedding.float(), dim=-1) @ self.weight + self.bias


class AnomalyScorer(nn.Module):
    """The EMA model plus (optionally) the probe; forward gives ``[0, z]`` logits.

    ``head``: ``classifier`` (the paper's score), ``probe``, or ``ensemble`` (the mean of the
    two anomaly logits, each a log-odds, so the result is a geometric mean of the odds).
    """

    def __init__(self, model: nn.Module, probe: LinearProbe | None, head: str = "ensemble") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}; got {head!r}")
        self.model = model
        self.probe = probe
        self.head = head if probe is not None else "classifier"

    def components(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Anomaly log-odds of the classifier and of the probe (when fitted)."""
        embedding = self.model.embed(images)
        logits = self.model.backbone.get_classifier()(embedding).float()
        out = {"classifier": logits[:, 1] - logits[:, 0]}
        if self.probe is not None:
            out["probe"] = self.probe(embedding)
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        parts = self.components(images)
        if self.head == "classifier":
            z = parts["classifier"]
        elif self.head == "probe":
            z = parts["probe"]
        else:
            z = (parts["classifier"] + parts["probe"]) / 2
        return torch.stack([torch.zeros_like(z), z], dim=1)


@torch.no_grad()
def embed_views(model: nn.Module, images: torch.Tensor, device: torch.device,
                batch_size: int = 256) -> torch.Tensor:
    """Embeddings of ``images`` in all eight flips/quarter turns: ``(8 N, D)`` on the CPU."""
    model.eval()
    out = []
    for k in range(8):
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device).float()
            view = dihedral(batch, k).contiguous(memory_format=torch.channels_last)
            out.append(model.embed(view).float().cpu())
    return torch.cat(out)


def fit_probe(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
              regularisation: float = 0.1) -> LinearProbe:
    """Fit a class-balanced logistic regression on the labelled images' embeddings.

    Parameters
    ----------
    model
        The scoring (EMA) model; its penultimate features are used.
    images, labels
        Labelled images ``(N, C, S, S)`` in [0, 1] and their labels (0 normal, 1 anomaly).
    regularisation
        scikit-learn's ``C`` (inverse L2 strength).
    """
    from sklearn.linear_model import LogisticRegression

    features = F.normalize(embed_views(model, images, device), dim=-1).numpy()
    targets = np.tile(labels.cpu().numpy(), 8)  # embed_views stacks the eight views in turn
    classifier = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000)
    classifier.fit(features, targets)
    probe = LinearProbe(torch.from_numpy(classifier.coef_[0]), torch.tensor([classifier.intercept_[0]]))
    return probe.to(device)
