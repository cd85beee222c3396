"""bfloat16 with a network's stem and first stages kept in float32 (``bfloat16-mixed``).

Most of the rounding error bf16 adds to EfficientNet-Lite0's scores enters before its third
stage, where few channels at full resolution carry each value, so an error in one is not
averaged away; later stages hold most of the arithmetic on a 64 px input but little of the
error. Kept in float32 there, the ranking agrees with float32's where plain bf16's does not
(``benchmarks/speed.py``, section ``agreement``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

FLOAT32_STAGES = 2  # with one, the FIRST ranking still strays (rho 0.998); with two it agrees
_STEM = ("conv_stem", "bn1", "blocks")


class Float32(nn.Module):
    """Runs ``inner`` in float32 whatever autocast is active around it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.inner(x.float())


def keep_early_stages_float32(module: nn.Module, stages: int = FLOAT32_STAGES) -> tuple[nn.Module, int]:
    """A copy of ``module`` whose EfficientNet-style backbones (``conv_stem``, ``bn1``, ``blocks``)
    run their stem and first ``stages`` stages in float32, and how many backbones it changed.

    The stem's convolution and norm are wrapped together, so ``fusion.fold_batch_norms`` still
    finds them side by side.
    """
    copied = copy.deepcopy(module)
    backbones = [m for m in copied.modules()
                 if all(hasattr(m, name) for name in _STEM) and not isinstance(m.conv_stem, Float32)]
    for backbone in backbones:
        backbone.conv_stem = Float32(nn.Sequential(backbone.conv_stem, backbone.bn1))
        backbone.bn1 = nn.Identity()
        for index in range(min(stages, len(backbone.blocks))):
            backbone.blocks[index] = Float32(backbone.blocks[index])
    return copied, len(backbones)
