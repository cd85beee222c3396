"""Settings a session chooses from its images: the central crop, and whether the probe reads
morphology statistics.

Survey cutouts are centred on their source, and the source often fills only the middle of
the cutout (a FIRST radio galaxy the middle ~100 of 300 pixels). Shrinking the whole cutout
to the model's 64 pixels then leaves the source a few pixels wide. ``measure_framing`` measures
where the light above each image's background lies, over a sample of the collection, and
keeps the smallest central square that holds ``CROP_SIGNAL_SHARE`` of it, on average; photographs and
images whose light is spread out keep their whole field.

The same measurement tells a colour survey cutout (a central source on a dark sky) from a
photograph: the probe's morphology statistics (asymmetry, Gini, M20, ...) describe the first
and mean nothing for the second, so a colour collection reads them only when its images show a
central source (single-band images always do, see ``ProbeConfig.uses_morphology``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..config import AUTO, SessionConfig
from .base import ImageCollection

CROP_SAMPLE = 1024  # images measured: with a quarter as many the FIRST crop changed from sample to sample
CROP_SIGNAL_SHARE = 0.9  # of the light above the background, on average, kept inside the crop
CROP_STEP = 1 / 16  # crops are multiples of this fraction of the side
CROP_LARGEST = 0.75  # a crop that must keep more than this of the side is not worth it: keep all
CROP_MAP_SIDE = 512  # larger images are measured on every k-th pixel, at most 1,023 a side
CROP_READ_BYTES = 64 << 20  # the sample is read this much at a time, so large images never pile up
# The border ring (beyond this fraction of the half-side from the centre) gives the field's floor,
# and the central square (within this fraction) the source's density it is compared with.
BORDER_RING = 0.8
CENTRE_SQUARE = 0.25
# How many times denser the centre must be than the border for the light there to count as a
# floor of field sources: GZ1 ~40, FIRST ~100, CIFAR-10 photographs ~3, a source as wide as the frame ~2.
CENTRAL_CONTRAST = 10.0


@dataclass(frozen=True)
class Framing:
    """How a collection frames its objects: ``crop``, the central fraction of each side to keep
    (a multiple of ``CROP_STEP``, or 1.0), and ``central_source``, whether the light stands on a
    central source ``CENTRAL_CONTRAST`` times denser than the field at the border."""

    crop: float
    central_source: bool


def choose_crop(collection: ImageCollection, sample: int = CROP_SAMPLE, seed: int = 0) -> float:
    """The central fraction of each side to keep: a multiple of ``CROP_STEP``, or 1.0."""
    return measure_framing(collection, sample, seed).crop


def measure_framing(collection: ImageCollection, sample: int = CROP_SAMPLE, seed: int = 0) -> Framing:
    """The ``Framing`` of ``collection``, measured on ``sample`` of its images.

    Each image's signal is its light above its median by more than three robust standard
    deviations (median absolute deviation), normalised to sum 1, so bright and faint images
    count alike; images without any such light are passed over.
    """
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(collection), size=min(sample, len(collection)), replace=False))
    height, width, channels = collection.shape
    step = max(1, max(height, width) // CROP_MAP_SIDE)
    per_read = max(1, CROP_READ_BYTES // (4 * height * width * channels))
    signal = np.zeros((-(-height // step), -(-width // step)), dtype=np.float64)
    for start in range(0, len(picked), per_read):
        images = collection.read(picked[start:start + per_read])[:, ::step, ::step]  # skipped ones: NaN
        for image in images:
            light = _light_above_background(np.asarray(image, dtype=np.float64).mean(axis=-1))
            total = light.sum()
            if total > 0:
                signal += light / total
    if signal.sum() == 0:
        return Framing(1.0, central_source=False)
    share_map = signal / signal.sum()
    border, centre = _border_and_centre(share_map)
    central_source = bool(border.size and centre.size and centre.mean() >= CENTRAL_CONTRAST * border.mean())
    if central_source:  # less the even floor of field sources, renormalised
        share_map = np.clip(share_map - border.mean(), 0, None)
        share_map /= share_map.sum()
    return Framing(_smallest_holding(share_map, CROP_SIGNAL_SHARE), central_source)


def _border_and_centre(share_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``share_map`` in its border ring and in its central square."""
    height, width = share_map.shape
    yy, xx = np.mgrid[:height, :width]
    reach = np.maximum(np.abs(yy - (height - 1) / 2) / (height / 2), np.abs(xx - (width - 1) / 2) / (width / 2))
    return share_map[reach > BORDER_RING], share_map[reach < CENTRE_SQUARE]


def _light_above_background(band: np.ndarray) -> np.ndarray:
    finite = np.isfinite(band)
    if not finite.any():
        return np.zeros_like(band)
    values = band[finite]
    median = np.median(values)
    noise = 1.4826 * np.median(np.abs(values - median))
    return np.where(finite, np.clip(band - median - 3 * noise, 0, None), 0.0)


def _smallest_holding(share_map: np.ndarray, share: float) -> float:
    height, width = share_map.shape
    steps = int(round(1 / CROP_STEP))
    for k in range(1, steps):
        fraction = k * CROP_STEP
        if fraction > CROP_LARGEST:
            break
        keep_h, keep_w = max(1, round(height * fraction)), max(1, round(width * fraction))
        top, left = (height - keep_h) // 2, (width - keep_w) // 2
        if share_map[top:top + keep_h, left:left + keep_w].sum() >= share:
            return fraction
    return 1.0


def resolve_automatic(config: SessionConfig, collection: ImageCollection) -> SessionConfig:
    """``config`` with every setting left to the data chosen from ``collection``: ``crop = "auto"``
    becomes a fraction, and a colour collection's ``probe.morphology = "auto"`` becomes ``on``
    for a central source on a dark sky, ``off`` for photographs."""
    normalisation, probe = config.data.normalisation, config.probe
    crop_open = normalisation.crop == AUTO
    morphology_open = probe.morphology == AUTO and probe.features == "pretrained" and collection.shape[2] > 1
    if not (crop_open or morphology_open):
        return config
    framing = measure_framing(collection, seed=config.train.seed)
    if crop_open:
        chosen = dataclasses.replace(normalisation, crop=framing.crop)
        config = config.replace(data=dataclasses.replace(config.data, normalisation=chosen))
    if morphology_open:
        config = config.replace(probe=dataclasses.replace(probe, morphology="on" if framing.central_source else "off"))
    return config
