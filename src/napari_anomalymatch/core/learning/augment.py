"""Batched augmentations on tensors, run on the training device.

``weak_augment``: a random element of the dihedral group (flips and 90-degree
rotations; the sky has no "up") and a small integer shift with reflected
borders, all as one exact nearest-neighbour resampling.

``strong_augment``: the weak geometry plus RandAugment-style operations, each
image drawing ``n_ops`` from ``STRONG_OPS`` with a random magnitude up to
``magnitude`` (of 30), then cutout.  Geometric operations are folded into one
affine resampling; photometric ones are applied to the images that drew them.

All randomness comes from the ``torch.Generator`` passed in, so a seed fixes
every augmentation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_SHIFT = 0.125
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
PHOTOMETRIC_OPS = ("identity", "autocontrast", "brightness", "contrast", "color", "sharpness",
                   "posterize", "solarize", "gamma", "noise", "blur")
STRONG_OPS = GEOMETRIC_OPS + PHOTOMETRIC_OPS
MAX_MAGNITUDE = 30.0
CUTOUT_MAX_FRACTION = 0.5


def dihedral(images: torch.Tensor, k: int) -> torch.Tensor:
    """Element ``k`` (0..7) of the dihedral group: ``k % 4`` quarter turns, flipped if ``k >= 4``."""
    out = torch.rot90(images, k % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if k >= 4 else out


def scoring_views(tta: bool) -> tuple[int, ...]:
    """The ``dihedral`` elements an image is scored in: all eight with test-time augmentation,
    else the image as it is."""
    return tuple(range(8)) if tta else (0,)


def weak_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, quarter turns and shifts of up to 12.5 % (exact resampling)."""
    n, _, h, w = images.shape
    theta = _dihedral_matrices(n, images.device, generator)
    shift = _randint(generator, -round(MAX_SHIFT * w), round(MAX_SHIFT * w), (n, 2), images.device)
    theta[:, 0, 2] = shift[:, 0] * 2.0 / w
    theta[:, 1, 2] = shift[:, 1] * 2.0 / h
    return _resample(images, theta, mode="nearest")


def strong_augment(images: torch.Tensor, generator: torch.Generator, n_ops: int = 2,
                   magnitude: float = 10.0) -> torch.Tensor:
    """Weak geometry + ``n_ops`` random RandAugment-style operations per image + cutout."""
    n = images.shape[0]
    device = images.device
    choices = _randint(generator, 0, len(STRONG_OPS) - 1, (n, n_ops), device)
    levels = _uniform(generator, (n, n_ops), device) * (magnitude / MAX_MAGNITUDE)
    signs = torch.where(_uniform(generator, (n, n_ops), device) < 0.5, -1.0, 1.0)
    theta = _dihedral_matrices(n, device, generator)
    theta = _compose(theta, _geometric_matrices(choices, levels * signs, device))
    out = _resample(images, theta, mode="bilinear")
    for slot in range(n_ops):
        for op_index, name in enumerate(STRONG_OPS):
            if name in GEOMETRIC_OPS or name == "identity":
                continue
            selected = choices[:, slot] == op_index
            if bool(selected.any()):
                rows = selected.nonzero().squeeze(1)
                out[rows] = _PHOTOMETRIC[name](out[rows], levels[rows, slot], signs[rows, slot],
                                               generator).clamp_(0.0, 1.0)
    return cutout(out, generator)


def cutout(images: torch.Tensor, generator: torch.Generator,
           max_fraction: float = CUTOUT_MAX_FRACTION) -> torch.Tensor:
    """Fill one random square (side up to ``max_fraction`` of the image) per image with its
    median, the sky background of a cutout (a fixed grey would paint a bright square on a dark
    sky, which the network then learns to spot)."""
    n, _, h, w = images.shape
    device = images.device
    size = (_uniform(generator, (n,), device) * max_fraction * min(h, w)).round()
    cy = _uniform(generator, (n,), device) * h
    cx = _uniform(generator, (n,), device) * w
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    half = (size / 2).view(n, 1, 1)
    inside = ((ys - cy.view(n, 1, 1)).abs() < half) & ((xs - cx.view(n, 1, 1)).abs() < half)
    background = images.flatten(2).median(dim=2).values.view(n, -1, 1, 1)
    return torch.where(inside.unsqueeze(1), background, images)


# -- geometry ----------------------------------------------------------------------


def _dihedral_matrices(n: int, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """Random 2x3 affine matrices of the eight flips/quarter turns."""
    turns = _randint(generator, 0, 3, (n,), device).float() * (math.pi / 2)
    flip = torch.where(_uniform(generator, (n,), device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(turns).round(), torch.sin(turns).round()
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos
    return theta


def _geometric_matrices(choices: torch.Tensor, signed_levels: torch.Tensor,
                        device: torch.device) -> torch.Tensor:
    """The product of each image's chosen rotate/shear/translate operations."""
    n, n_ops = choices.shape
    theta = torch.eye(2, 3, device=device).repeat(n, 1, 1)
    for slot in range(n_ops):
        level = signed_levels[:, slot]
        step = torch.eye(2, 3, device=device).repeat(n, 1, 1)
        angle = level * math.radians(30)
        rotate = choices[:, slot] == STRONG_OPS.index("rotate")
        step[rotate, 0, 0] = torch.cos(angle[rotate])
        step[rotate, 0, 1] = -torch.sin(angle[rotate])
        step[rotate, 1, 0] = torch.sin(angle[rotate])
        step[rotate, 1, 1] = torch.cos(angle[rotate])
        shear_x = choices[:, slot] == STRONG_OPS.index("shear_x")
        step[shear_x, 0, 1] = level[shear_x] * 0.3
        shear_y = choices[:, slot] == STRONG_OPS.index("shear_y")
        step[shear_y, 1, 0] = level[shear_y] * 0.3
        translate_x = choices[:, slot] == STRONG_OPS.index("translate_x")
        step[translate_x, 0, 2] = level[translate_x] * 0.6  # up to 30 % of the width
        translate_y = choices[:, slot] == STRONG_OPS.index("translate_y")
        step[translate_y, 1, 2] = level[translate_y] * 0.6
        theta = _compose(theta, step)
    return theta


def _compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Affine ``first`` then ``second`` on output coordinates (3x3 product of 2x3 matrices)."""
    bottom = torch.tensor([0.0, 0.0, 1.0], device=first.device).expand(first.shape[0], 1, 3)
    a = torch.cat([first, bottom], dim=1)
    b = torch.cat([second, bottom], dim=1)
    return torch.bmm(a, b)[:, :2]


def _resample(images: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="reflection", align_corners=False)


# -- photometric operations (images in [0, 1], level in [0, 1], sign +-1) ---------------


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    factor = factor.view(-1, 1, 1, 1)
    return other + factor * (images - other)


def _autocontrast(x, level, sign, generator):
    low = x.amin(dim=(-2, -1), keepdim=True)
    high = x.amax(dim=(-2, -1), keepdim=True)
    return (x - low) / (high - low).clamp_min(1e-6)


def _brightness(x, level, sign, generator):
    return x * (1.0 + 0.9 * level * sign).view(-1, 1, 1, 1)


def _contrast(x, level, sign, generator):
    mean = x.mean(dim=(-3, -2, -1), keepdim=True).expand_as(x)
    return _blend(x, mean, 1.0 + 0.9 * level * sign)


def _color(x, level, sign, generator):
    grey = x.mean(dim=-3, keepdim=True).expand_as(x)
    return _blend(x, grey, 1.0 + 0.9 * level * sign)


def _sharpness(x, level, sign, generator):
    return _blend(x, _box_blur(x), 1.0 + 0.9 * level * sign)


def _posterize(x, level, sign, generator):
    bits = (8 - (level * 4).round()).view(-1, 1, 1, 1)
    steps = 2.0 ** bits
    return torch.floor(x * steps) / steps


def _solarize(x, level, sign, generator):
    threshold = (1.0 - level).view(-1, 1, 1, 1)
    return torch.where(x >= threshold, 1.0 - x, x)


def _gamma(x, level, sign, generator):
    gamma = torch.exp(level * sign * math.log(2.0)).view(-1, 1, 1, 1)
    return x.clamp_min(0.0) ** gamma


def _noise(x, level, sign, generator):
    sigma = (0.08 * level).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * noise


def _blur(x, level, sign, generator):
    return _blend(_box_blur(x), x, level)


def _box_blur(x: torch.Tensor) -> torch.Tensor:
    channels = x.shape[1]
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=x.device,
                          dtype=x.dtype) / 13.0
    kernel = kernel.expand(channels, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)


_PHOTOMETRIC = {
    "autocontrast": _autocontrast, "brightness": _brightness, "contrast": _contrast,
    "color": _color, "sharpness": _sharpness, "posterize": _posterize, "solarize": _solarize,
    "gamma": _gamma, "noise": _noise, "blur": _blur,
}


def _uniform(generator: torch.Generator, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


def _randint(generator: torch.Generator, low: int, high: int, shape: tuple[int, ...],
             device: torch.device) -> torch.Tensor:
    """Integers in ``[low, high]`` inclusive."""
    return torch.randint(low, high + 1, shape, generator=generator, device=device)
