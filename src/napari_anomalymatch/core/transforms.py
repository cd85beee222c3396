"""From raw pixels to what the model and the display see: one code path.

``Normaliser`` maps a batch of raw images ``(N, H, W, C)`` to [0, 1] with
``astropy.visualization`` stretches between per-image, per-channel limits;
``to_model_input`` resizes the result to the model's input size.  Training,
scoring and the napari display all call ``prepare_batch``/``Normaliser``, so
what a person labels is exactly what the model was shown.

Astronomical cutouts are often mostly empty (a radio survey's cutout can be
99.5 % exact zeros): there every percentile is the background and the limits
collapse.  When more than half of an image's pixels hold exactly its median
value, the limits are therefore taken between that background and the
pixels above it (``_signal_limits``); a zero-width interval is never used.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .config import AUTO, NormalisationConfig

# Percentiles of large images are estimated from at most this many pixels
# (a regular subsample), as astropy's PercentileInterval(n_samples=...) does.
MAX_LIMIT_SAMPLES = 16_384
# An image is "mostly empty" when more than this fraction of its pixels equal its median.
EMPTY_FRACTION = 0.5
# The noise softening puts asinh's linear part at this many background sigmas ...
NOISE_SIGMAS = 3.0
# ... within these bounds (astropy's ``a``, as a fraction of the interval).
SOFTENING_BOUNDS = (1e-3, 1.0)


@dataclass(frozen=True)
class Normaliser:
    """Map raw pixel batches to [0, 1]; NaN/inf pixels become 0 (the background).

    Parameters
    ----------
    config
        The method and its parameters.
    value_range
        The collection's fixed pixel range (e.g. ``(0, 255)``), used by
        ``method='auto'``; ``None`` for data without one (FITS, float arrays).
    """

    config: NormalisationConfig
    value_range: tuple[float, float] | None = None

    @property
    def method(self) -> str:
        if self.config.method != "auto":
            return self.config.method
        return "fixed" if self.value_range is not None else "asinh"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Normalise ``batch`` (``(N, H, W, C)`` or one ``(H, W, C)`` image)."""
        single = batch.ndim == 3
        x = np.array(central_crop(batch[None] if single else batch, self.config.crop),
                     dtype=np.float32, copy=True)
        non_finite = ~np.isfinite(x)
        if non_finite.any():
            x[non_finite] = np.nan  # inf is as unusable as NaN: both end as background
        method = self.method
        softening = None
        if method == "fixed":
            low, high = self.value_range  # type: ignore[misc]
            x -= np.float32(low)
            x *= np.float32(1.0 / (high - low))
        elif method != "none":
            low, high = self.limits(x)
            softening = self._noise_softening(x, low, high) if self._noise_softened else None
            x -= low
            x /= high - low
        np.clip(x, 0.0, 1.0, out=x)
        np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if softening is not None:
            _asinh_per_image(x, softening)
        else:
            stretch = self._stretch()
            if stretch is not None:
                stretch(x, out=x, clip=True)
        return x[0] if single else x

    @property
    def _noise_softened(self) -> bool:
        return self.method == "asinh" and self.config.asinh_softening == "noise"

    def _noise_softening(self, x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Per image and channel: asinh's ``a`` at ``NOISE_SIGMAS`` background sigmas of the interval.

        Without noise (an empty background of exact zeros) the softening is the
        median signal pixel's level instead, so typical source pixels show.
        """
        flat = _sampled(x)
        with np.errstate(invalid="ignore"), _quiet():
            median = np.nanmedian(flat, axis=1)[:, None, :]
            sigma = 1.4826 * np.nanmedian(np.abs(flat - median), axis=1)  # the MAD, as a Gaussian sigma
            signal = np.nanmedian(np.where(flat > median, flat, np.nan), axis=1) - median[:, 0]
        level = np.where(sigma > 0, NOISE_SIGMAS * sigma, np.nan_to_num(signal, nan=1.0))
        width = (high - low).reshape(x.shape[0], -1)
        return np.clip(level / width, *SOFTENING_BOUNDS).astype(np.float32)

    def fixed_affine(self) -> tuple[float, float] | None:
        """``(low, 1 / (high - low))`` when this is a fixed-range map with no stretch, else None.

        Such a map needs no statistics of the image, so it can run on the GPU
        (``prepare_native_batch``) and give the same values as ``__call__``.
        """
        if self.method != "fixed":
            return None
        low, high = self.value_range  # type: ignore[misc]
        return float(np.float32(low)), float(np.float32(1.0 / (high - low)))

    def limits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-image, per-channel lower and upper limits, shaped ``(N, 1, 1, C)``."""
        method = self.method
        if method == "linear":
            low, high = _nan_extrema(x)
        elif method == "zscale":
            low, high = _zscale_limits(x)
        else:
            low, high = _percentile_limits(x, self.config.low_percentile, self.config.high_percentile)
        return _widened(low, high)

    def _stretch(self):
        from astropy.visualization import AsinhStretch, LogStretch

        if self.method == "asinh":
            return AsinhStretch(a=self.config.asinh_a)
        if self.method == "log":
            return LogStretch(a=self.config.log_a)
        return None


def central_crop(batch, fraction: float | str):
    """The middle ``fraction`` of each side of ``(N, H, W, C)`` images (NumPy or torch); ``auto``
    not yet chosen from the collection (see ``core.io.autocrop``): the whole image."""
    if fraction == AUTO or fraction >= 1.0:
        return batch
    height, width = batch.shape[1], batch.shape[2]
    keep_h, keep_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - keep_h) // 2, (width - keep_w) // 2
    return batch[:, top:top + keep_h, left:left + keep_w]


def to_model_input(images: np.ndarray, image_size: int):
    """``(N, H, W, C)`` [0, 1] images -> float32 torch tensor ``(N, C, S, S)``.

    Downsampling is antialiased (bilinear), so small sources are not aliased away.
    """
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return resize(tensor, image_size).contiguous()


def resize(tensor, image_size: int):
    """Resize an ``(N, C, H, W)`` tensor to ``image_size`` square (no-op if already)."""
    import torch.nn.functional as F

    if tuple(tensor.shape[-2:]) == (image_size, image_size):
        return tensor
    antialias = tensor.shape[-1] > image_size or tensor.shape[-2] > image_size
    dtype = tensor.dtype
    out = F.interpolate(tensor.float(), size=(image_size, image_size), mode="bilinear",
                        align_corners=False, antialias=antialias)
    return out.clamp_(0.0, 1.0).to(dtype)


def prepare_batch(raw: np.ndarray, normaliser: Normaliser, image_size: int):
    """Raw images -> normalised, resized model input (the one shared code path)."""
    return to_model_input(normaliser(raw), image_size)


def prepare_native_batch(native, decode: tuple[float, float], affine: tuple[float, float],
                         image_size: int, crop: float = 1.0):
    """Stored integers ``(N, H, W, C)`` -> model input ``(N, C, S, S)``, where they lie.

    ``decode`` is the collection's ``(offset, scale)`` to ``read`` values and
    ``affine`` the normaliser's ``fixed_affine()``, ``crop`` its central fraction.  The float32 steps are
    those of ``Normaliser.__call__`` and ``to_model_input``, so the values
    agree with theirs; the result is channels-last.
    """
    x = central_crop(native, crop).permute(0, 3, 1, 2).float()
    offset, scale = decode
    if offset != 0.0:
        x.sub_(offset)
    if scale != 1.0:
        x.mul_(scale)
    low, inverse_range = affine
    x.sub_(low).mul_(inverse_range).clamp_(0.0, 1.0)
    return resize(x, image_size)


def _nan_extrema(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    finite = np.isfinite(flat)
    low = np.where(finite, flat, np.inf).min(axis=1)
    high = np.where(finite, flat, -np.inf).max(axis=1)
    return _shape_limits(low, x), _shape_limits(high, x)


def _sampled(x: np.ndarray) -> np.ndarray:
    """``(N, P, C)`` pixels of ``(N, H, W, C)`` images, a regular subsample of large ones."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    if flat.shape[1] > MAX_LIMIT_SAMPLES:
        step = int(np.ceil(flat.shape[1] / MAX_LIMIT_SAMPLES))
        flat = flat[:, ::step]
    return flat


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence NumPy's warnings about all-NaN slices (they give NaN limits, made 0 later)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _percentile_limits(x: np.ndarray, low_pct: float, high_pct: float) -> tuple[np.ndarray, np.ndarray]:
    flat = _sampled(x)
    finite = np.isfinite(flat)
    wanted = [low_pct, high_pct, 25.0, 75.0]  # the quartiles meet only where an image may be mostly empty
    if finite.all():
        low, high, q1, q3 = np.percentile(flat, wanted, axis=1)
    else:
        with _quiet():
            low, high, q1, q3 = np.nanpercentile(np.where(finite, flat, np.nan), wanted, axis=1)
    for i, channel, signal in _mostly_empty(flat, q1 == q3):
        low[i, channel], high[i, channel] = signal[0], np.percentile(signal[1:], high_pct)
    return _shape_limits(low, x), _shape_limits(high, x)


def _mostly_empty(flat: np.ndarray, maybe: np.ndarray | None = None):
    """``(image, channel, [background, *signal pixels])`` for each mostly empty plane of ``flat``.

    A plane is mostly empty when more than ``EMPTY_FRACTION`` of its finite
    pixels equal its median (the background); its signal pixels are those
    above it.  Planes with no pixel above the background are left out; only
    the ``(N, C)`` planes ``maybe`` marks (all without it) are looked at.
    """
    for i, channel in zip(*np.nonzero(np.ones(flat[:, 0].shape, bool) if maybe is None else maybe), strict=True):
        plane = flat[i, :, channel]
        plane = plane[np.isfinite(plane)]
        if not plane.size:
            continue
        median = np.median(plane)
        signal = plane[plane > median]
        if (plane == median).mean() > EMPTY_FRACTION and signal.size:
            yield int(i), int(channel), np.concatenate([[median], signal])


def _zscale_limits(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from astropy.visualization import ZScaleInterval

    interval = ZScaleInterval()
    n, _, _, c = x.shape
    low = np.zeros((n, c), dtype=np.float32)
    high = np.ones((n, c), dtype=np.float32)
    for i in range(n):
        for channel in range(c):
            plane = x[i, :, :, channel]
            finite = plane[np.isfinite(plane)]
            if finite.size:
                low[i, channel], high[i, channel] = interval.get_limits(finite)
    for i, channel, signal in _mostly_empty(_sampled(x)):  # zscale of the sources, from the background up
        low[i, channel], high[i, channel] = signal[0], interval.get_limits(signal[1:])[1]
    return _shape_limits(low, x), _shape_limits(high, x)


def _widened(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Never a zero-width interval: a constant plane gets one of width 1 (it maps to 0)."""
    flat = ~(high - low > np.float32(1e-12) * np.maximum(np.abs(low), np.float32(1.0)))
    return low, np.where(flat, low + np.float32(1.0), high).astype(np.float32)


def _asinh_per_image(x: np.ndarray, softening: np.ndarray) -> None:
    """astropy's ``AsinhStretch`` in place, with one ``a`` per image and channel ``(N, C)``."""
    a = softening[:, None, None, :]
    np.arcsinh(x / a, out=x)
    x /= np.arcsinh(np.float32(1.0) / a)
    np.clip(x, 0.0, 1.0, out=x)


def _shape_limits(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32).reshape(x.shape[0], 1, 1, x.shape[-1])
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
