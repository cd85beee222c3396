"""Non-parametric morphology statistics of single-band cutouts, for the probe.

Astronomers describe a source's shape with a few numbers: how concentrated its light is
(the radii holding 20, 50 and 80 % of the flux), how unequally the light is shared among the
pixels (Gini), how far from the centre the brightest fifth of the light lies (M20), how
asymmetric it is under a half turn and a mirror, its elongation and size from the second
moments, and how far its brightest pixel lies from its centroid (an edge-brightened radio
source's peak is far from its centre, a core-brightened one's is near). See Conselice (2003)
and Lotz, Primack & Madau (2004) for the galaxy versions.

An ImageNet network pools such global geometry away, so the probe reads these numbers beside
the network's features (``ProbeConfig.morphology``). On the FIRST radio galaxies they
raise the probe's AUROC (``benchmarks/results/ablation.md``). All statistics are computed in
batches on the device, so they cost little next to the network's pass.
"""

from __future__ import annotations

import torch

MORPHOLOGY_STATISTICS = ("r20", "r50", "r80", "gini", "m20", "asymmetry", "mirror_asymmetry",
                         "elongation", "size", "centroid_offset", "peak_offset")
_EPS = 1e-9


def morphology_statistics(images: torch.Tensor) -> torch.Tensor:
    """The statistics named in ``MORPHOLOGY_STATISTICS`` of each image: ``(N, 11)`` float32.

    ``images``: ``(N, C, S, S)`` in [0, 1]; the channels are averaged into one band. Each
    image's median is taken as its background and subtracted (negative values become 0).
    Radii and offsets are in units of half the image's side, so the statistics do not depend
    on the size the images were loaded at.
    """
    band = images.float().mean(1)
    height, width = band.shape[1:]
    flat = band.reshape(-1, height * width)  # no batch size baked in, so the function traces
    light = (flat - flat.median(dim=1, keepdim=True).values).clamp_min(0)
    total = light.sum(1) + _EPS
    half = min(height, width) / 2
    yy, xx = _pixel_grid(height, width, band.device)
    centre = ((height - 1) / 2, (width - 1) / 2)
    # the centroid; a blank image's is its centre (the _EPS of light added there)
    cy = ((light * yy).sum(1) + _EPS * centre[0]) / total
    cx = ((light * xx).sum(1) + _EPS * centre[1]) / total
    dy, dx = yy - cy[:, None], xx - cx[:, None]
    radii = _light_radii(light, total, yy, xx, height, width, half)
    ranked, brightest_first = light.sort(1, descending=True)
    gini = _gini(ranked)
    m20 = _m20(light, ranked, brightest_first, total, dy * dy + dx * dx)
    cyy, cxx, cxy = ((light * v).sum(1) / total for v in (dy * dy, dx * dx, dy * dx))
    trace, spread = cyy + cxx, torch.sqrt(((cyy - cxx) / 2) ** 2 + cxy ** 2)
    major, minor = trace / 2 + spread, (trace / 2 - spread).clamp_min(0)
    grid = light.reshape(-1, height, width)
    asymmetry = (grid - grid.flip(1, 2)).abs().sum((1, 2)) / (2 * total)
    mirror = (grid - grid.flip(2)).abs().sum((1, 2)) / (2 * total)
    brightest = brightest_first[:, 0]
    # over the rms radius, at least one pixel, so a point source's stays finite; none without light
    peak_offset = torch.hypot(yy[brightest] - cy, xx[brightest] - cx) / torch.sqrt(trace).clamp_min(1.0)
    peak_offset = torch.where(ranked[:, 0] > 0, peak_offset, torch.zeros_like(peak_offset))
    columns = [*radii, gini, m20, asymmetry, mirror, torch.sqrt(minor / (major + _EPS)),
               torch.sqrt(trace) / half, torch.hypot(cy - centre[0], cx - centre[1]) / half, peak_offset]
    return torch.stack(columns, dim=1)


def _pixel_grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column coordinates of each pixel, flattened."""
    yy, xx = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    return yy.reshape(-1), xx.reshape(-1)


def _light_radii(light: torch.Tensor, total: torch.Tensor, yy: torch.Tensor, xx: torch.Tensor,
                 height: int, width: int, half: float,
                 fractions: tuple[float, ...] = (0.2, 0.5, 0.8)) -> list[torch.Tensor]:
    """Radii about the image's centre holding each fraction of the light, over ``half``;
    ``yy``, ``xx``: the flattened pixel coordinates (``_pixel_grid``)."""
    radius = torch.hypot(yy - (height - 1) / 2, xx - (width - 1) / 2)
    radius_sorted, order = radius.sort()
    enclosed = light[:, order].cumsum(1) / total[:, None]
    wanted = light.new_tensor(fractions)[None].expand_as(light[:, :len(fractions)]).contiguous()
    at = torch.searchsorted(enclosed.contiguous(), wanted).clamp_max(len(radius) - 1)
    return list((radius_sorted[at] / half).unbind(1))


def _gini(ranked: torch.Tensor) -> torch.Tensor:
    """The Gini coefficient of each row of pixel values sorted brightest first (0: all equal,
    1: one pixel has all the light)."""
    n = ranked.shape[1]
    rank_weight = n + 1 - 2 * torch.arange(1, n + 1, device=ranked.device, dtype=torch.float32)
    return (ranked * rank_weight).sum(1) / (ranked.mean(1) * n * (n - 1) + _EPS)


def _m20(light: torch.Tensor, ranked: torch.Tensor, brightest_first: torch.Tensor, total: torch.Tensor,
         distance_squared: torch.Tensor) -> torch.Tensor:
    """log10 of the brightest 20 % of the light's second moment over the whole's (Lotz et al.);
    ``ranked``, ``brightest_first``: the light sorted brightest first and the sorting order."""
    moment = light * distance_squared
    enclosed = ranked.cumsum(1) / total[:, None]
    count = torch.searchsorted(enclosed.contiguous(), torch.full_like(light[:, :1], 0.2))
    inner = moment.gather(1, brightest_first).cumsum(1).gather(1, count.clamp_max(light.shape[1] - 1))
    return torch.log10(inner[:, 0] / (moment.sum(1) + _EPS) + _EPS)
