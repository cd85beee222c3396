"""One FixMatch step: supervised loss plus confidence-masked pseudo-label loss.

``fixmatch_step`` is pure: it runs the forward passes and returns the loss and
its parts; the trainer does ``backward``, the optimiser step and the EMA
update.  By default (``weak_pass='separate'``) the weak views are scored in a
gradient-free pass of their own, since their logits are detached anyway, and
labelled and strong views share the training pass: a cheaper step, since no
graph is kept for the weak views, and pseudo-labels were at least as good when the
two were compared on FIRST (``benchmarks/ablation.py``'s ``joint-weak-pass`` trial
measures it again).
``weak_pass='joint'`` puts all three in one batch, as FixMatch does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import TrainConfig


@dataclass(frozen=True)
class FixMatchBatch:
    """Inputs of one step, already augmented and on the training device."""

    labelled: torch.Tensor
    labels: torch.Tensor
    unlabelled_weak: torch.Tensor
    unlabelled_strong: torch.Tensor


@dataclass(frozen=True)
class StepResult:
    """The loss to back-propagate and what to log."""

    loss: torch.Tensor
    sup_loss: float
    unsup_loss: float
    mask_ratio: float
    pseudo_anomaly_ratio: float


def pseudo_labels(weak_logits: torch.Tensor, temperature: float,
                  threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard pseudo-labels and the mask of those confident enough to train on.

    The weak logits are sharpened by ``temperature`` before the confidence is
    compared with ``threshold``.
    """
    probabilities = torch.softmax(weak_logits.detach().float() / temperature, dim=-1)
    confidence, labels = probabilities.max(dim=-1)
    return labels, (confidence >= threshold).float()


def fixmatch_step(model: torch.nn.Module, batch: FixMatchBatch, config: TrainConfig) -> StepResult:
    """Forward passes and loss of one FixMatch iteration (the model is in train mode)."""
    n_labelled = batch.labelled.shape[0]
    if batch.unlabelled_weak.shape[0] == 0:
        logits = model(batch.labelled)
        sup_loss = F.cross_entropy(logits.float(), batch.labels)
        return StepResult(sup_loss, float(sup_loss.detach()), 0.0, 0.0, 0.0)
    weak_logits, logits = _forward(model, batch, config.weak_pass)
    targets, mask = pseudo_labels(weak_logits, config.temperature, config.confidence_threshold)
    sup_loss = F.cross_entropy(logits[:n_labelled], batch.labels)
    unsup_loss = (F.cross_entropy(logits[n_labelled:], targets, reduction="none") * mask).mean()
    loss = sup_loss + config.lambda_u * unsup_loss
    anomalous = float((targets.float() * mask).sum() / mask.sum().clamp_min(1.0))
    return StepResult(loss, float(sup_loss.detach()), float(unsup_loss.detach()),
                      float(mask.mean()), anomalous)


def _forward(model: torch.nn.Module, batch: FixMatchBatch,
             weak_pass: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached weak logits, and the logits of labelled + strong views (with gradients)."""
    n_labelled = batch.labelled.shape[0]
    if weak_pass == "separate":
        with torch.no_grad():
            weak_logits = model(batch.unlabelled_weak).float()
        return weak_logits, model(torch.cat([batch.labelled, batch.unlabelled_strong])).float()
    n_weak = batch.unlabelled_weak.shape[0]
    logits = model(torch.cat([batch.labelled, batch.unlabelled_weak, batch.unlabelled_strong])).float()
    weak_logits = logits[n_labelled:n_labelled + n_weak].detach()
    return weak_logits, torch.cat([logits[:n_labelled], logits[n_labelled + n_weak:]])
