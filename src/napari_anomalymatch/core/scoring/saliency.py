"""Where in an image its anomaly score comes from: saliency maps of the scorer's log-odds.

The score explained is ``z``, the anomaly log-odds of ``probe.AnomalyScorer`` (what ranks the
candidates), on the image the model sees. Three methods (``SALIENCY_METHODS``):

``gradient`` (the default)
    ``ReLU(dz/dx . (x - b))`` summed over the channels and smoothed by a Gaussian of
    ``S / 16`` pixels, ``b`` each image's median (its background): the first-order share of
    each pixel in how far the score lies above that of a blank background (the one-step form
    of integrated gradients). It passes through the whole score, morphology statistics
    included, costs one backward pass, and on the tests' blob images peaks on the blob.
    Like every gradient-times-input map it favours bright pixels that raise the score.
``grad-cam``
    Grad-CAM (Selvaraju et al., ICCV 2017), ``ReLU(sum_k w_k A_k)`` with ``w_k`` the spatial
    mean of ``dz/dA_k``, summed over the stages the ``lpft`` pyramid pools and the stride-8
    stage before them (``CAM_STAGES``), each upsampled to the input and scaled to a peak of 1.
    At 64 px those stages are 8x8 to 2x2 grids: too coarse, and on the benchmark's blob images
    its peak lands on the blob in under half of them (``benchmarks/results/saliency_speed.json``);
    it leaves out the morphology statistics, which are pooled over the whole image.
``occlusion``
    The drop of ``z`` when a patch (a quarter of the side) is set to the image's median,
    moved by half a patch; dozens of forward passes per image, so seconds on a laptop CPU.

Grad-CAM needs EfficientNet stages (``has_pyramid``); for another network it falls back to
occlusion. Every head is a torch module, so ``gradient`` works for all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SALIENCY_METHODS
from ..errors import ConfigError
from ..heads import PROBE, get_head
from ..learning.models import PYRAMID_STAGES
from ..learning.probe import AnomalyScorer, FrozenEmbedder

CAM_STAGES = PYRAMID_STAGES + 1  # the stages before the head that the map reads (plus the head)
SMOOTHING = 1 / 16  # the gradient map's Gaussian, as a fraction of the input's side
OCCLUSION_BATCH = 64


def saliency_maps(scorer: AnomalyScorer, images: torch.Tensor, batch_size: int = 16,
                  method: str = "gradient") -> torch.Tensor:
    """The saliency of ``scorer``'s anomaly log-odds over each of ``images``.

    Parameters
    ----------
    scorer
        The scoring model (``Trainer.scoring_model``); its state is left as it was.
    images
        ``(N, C, S, S)`` model input in [0, 1] (``transforms.prepare_batch``).
    batch_size
        Images explained in one pass.
    method
        One of ``SALIENCY_METHODS`` (see the module).

    Returns
    -------
    ``(N, S, S)`` float32 on the CPU in [0, 1]: 1 where the score draws most from; all 0 where
    nothing raises it.

    Raises
    ------
    ConfigError
        An unknown ``method``.
    """
    if method not in SALIENCY_METHODS:
        raise ConfigError(f"saliency method must be one of {list(SALIENCY_METHODS)}; got {method!r}")
    device = next(scorer.parameters()).device
    explain = {"gradient": gradient_maps, "occlusion": occlusion_maps,
               "grad-cam": grad_cam if _cam_stages(scorer) else occlusion_maps}[method]
    maps = [explain(scorer, images[start:start + batch_size].to(device).float())
            for start in range(0, len(images), batch_size)]
    return torch.cat(maps) if maps else images.new_zeros((0, *images.shape[2:]))


def gradient_maps(scorer: AnomalyScorer, images: torch.Tensor) -> torch.Tensor:
    """``ReLU(dz/dx . (x - median))``, smoothed and scaled to a peak of 1 (see the module)."""
    with _evaluating(scorer), torch.enable_grad():
        given = images.detach().clone().requires_grad_(True)
        gradient, = torch.autograd.grad(scorer(given)[:, 1].sum(), given)
    background = images.flatten(2).median(2).values[..., None, None]
    evidence = F.relu((gradient * (images - background)).sum(1, keepdim=True))
    return _peak_one(_gaussian_blur(evidence, max(1.0, SMOOTHING * images.shape[-1])))[:, 0].cpu()


def _gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(N, 1, H, W)`` maps blurred by a Gaussian of ``sigma`` pixels (edges repeated)."""
    radius = int(3 * sigma)
    steps = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-steps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    padded = F.pad(maps, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))


def grad_cam(scorer: AnomalyScorer, images: torch.Tensor) -> torch.Tensor:
    """Grad-CAM summed over ``CAM_STAGES`` of every network the score reads (see the module)."""
    stages = _cam_stages(scorer)
    activations: list[torch.Tensor] = []
    with _recording(stages, activations), _evaluating(scorer), torch.enable_grad():
        given = images.detach().clone().requires_grad_(True)  # so every stage is in the graph
        log_odds = scorer(given)[:, 1]
        gradients = torch.autograd.grad(log_odds.sum(), activations)
    size = images.shape[-2:]
    total = images.new_zeros((len(images), 1, *size))
    for activation, gradient in zip(activations, gradients, strict=True):
        weights = gradient.mean((2, 3), keepdim=True)
        cam = F.relu((weights * activation.detach()).sum(1, keepdim=True).float())
        cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
        total += _peak_one(cam)
    return _peak_one(total)[:, 0].cpu()


@torch.no_grad()
def occlusion_maps(scorer: AnomalyScorer, images: torch.Tensor, patch: int | None = None,
                   stride: int | None = None) -> torch.Tensor:
    """How much the log-odds drop when a ``patch`` square (default: a quarter of the side),
    moved by ``stride`` (default: half a patch), is set to the image's median: each pixel
    gets the mean drop of the patches covering it, scaled to a peak of 1."""
    n, _, height, width = images.shape
    patch = patch or max(2, min(height, width) // 4)
    stride = stride or max(1, patch // 2)
    corners = [(y, x) for y in range(0, max(height - patch, 0) + 1, stride)
               for x in range(0, max(width - patch, 0) + 1, stride)]
    with _evaluating(scorer):
        base = scorer(images)[:, 1]
        drops = images.new_zeros((n, 1, height, width))
        covers = images.new_zeros((1, 1, height, width))
        for y, x in corners:
            covers[..., y:y + patch, x:x + patch] += 1
        for i, image in enumerate(images):
            fill = image.flatten(1).median(1).values[:, None, None]
            for start in range(0, len(corners), OCCLUSION_BATCH):
                chunk = corners[start:start + OCCLUSION_BATCH]
                occluded = image.repeat(len(chunk), 1, 1, 1)
                for j, (y, x) in enumerate(chunk):
                    occluded[j, :, y:y + patch, x:x + patch] = fill
                drop = (base[i] - scorer(occluded)[:, 1]).clamp_min(0)
                for (y, x), value in zip(chunk, drop, strict=True):
                    drops[i, :, y:y + patch, x:x + patch] += value
    return _peak_one(drops / covers.clamp_min(1))[:, 0].cpu()


def _peak_one(maps: torch.Tensor) -> torch.Tensor:
    """Each ``(N, 1, H, W)`` map divided by its maximum (a map of zeros stays zeros)."""
    peak = maps.amax((2, 3), keepdim=True)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-30), torch.zeros_like(maps))


def _networks(scorer: AnomalyScorer) -> list[nn.Module]:
    """The ``AnomalyClassifier``s whose features the scorer's head reads."""
    modules = [scorer.probe_embedder() if part == PROBE else scorer.model for part in get_head(scorer.head).parts]
    found: list[nn.Module] = []
    for module in modules:
        if isinstance(module, FrozenEmbedder):
            module = module.model
        module = getattr(module, "network", module)  # an lpft.ProbedNetwork's classifier
        if all(module is not other for other in found):
            found.append(module)
    return found


def _cam_stages(scorer: AnomalyScorer) -> list[nn.Module]:
    """The stages Grad-CAM reads in every network the score uses; empty when one has none."""
    stages: list[nn.Module] = []
    for network in _networks(scorer):
        if not getattr(network, "has_pyramid", False):
            return []
        blocks = network.backbone.blocks
        stages += [*blocks[len(blocks) - 1 - CAM_STAGES:len(blocks) - 1], network.backbone.bn2]
    return stages


@contextlib.contextmanager
def _recording(stages: list[nn.Module], into: list[torch.Tensor]) -> Iterator[None]:
    """Keep each stage's output while the block runs (the hooks are removed after)."""
    hooks = [stage.register_forward_hook(lambda _module, _inputs, output: into.append(output))
             for stage in stages]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


@contextlib.contextmanager
def _evaluating(scorer: nn.Module) -> Iterator[None]:
    """Eval mode while the block runs, then each module's mode as it was."""
    modes = {module: module.training for module in scorer.modules()}
    scorer.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode
