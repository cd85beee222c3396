"""Batch normalisation folded into the convolution before it, for inference in eager mode.

At inference a batch norm is an affine map per channel, so ``bn(conv(x))`` is one convolution
with rescaled weights and a bias: the folded network computes the same function (to float32
rounding) with one pass over each activation fewer. This is what TorchScript's ``freeze`` did
for the engine's CPU scoring, without the deprecated tracer and without a compile step.

A convolution and a batch norm are folded when the batch norm directly follows the convolution
among its parent's children, as in timm's EfficientNet, MobileNet and ResNet blocks. Whether a
module's children run in that order is not checked here: the caller compares the folded
network's output with the original's (``inference._build_graph``) and keeps the original
where they differ.
"""

from __future__ import annotations

import copy
import itertools

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class _AfterNorm(nn.Module):
    """What a folded norm-plus-activation layer (timm's ``BatchNormAct2d``) still does: its
    dropout and activation."""

    def __init__(self, norm_act: nn.Module) -> None:
        super().__init__()
        self.drop = getattr(norm_act, "drop", nn.Identity())
        self.act = getattr(norm_act, "act", nn.Identity())

    def forward(self, x):
        return self.act(self.drop(x))


def fold_batch_norms(module: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``module`` (in eval mode) with each batch norm that follows a convolution folded
    into it, and how many were folded."""
    folded = copy.deepcopy(module).eval()
    count = 0
    for parent in folded.modules():
        names = list(parent._modules)
        for conv_name, norm_name in itertools.pairwise(names):
            conv, norm = parent._modules[conv_name], parent._modules[norm_name]
            if not _foldable(conv, norm):
                continue
            parent._modules[conv_name] = fuse_conv_bn_eval(conv, norm)
            parent._modules[norm_name] = _AfterNorm(norm) if type(norm) is not nn.BatchNorm2d else nn.Identity()
            count += 1
    return folded, count


def _foldable(conv: nn.Module | None, norm: nn.Module | None) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
            and norm.track_running_stats and norm.running_mean is not None
            and conv.out_channels == norm.num_features)
