"""What a person sees while labelling: raw images to 8-bit RGB, for display only.

The model never sees these adjustments.  ``DisplayRenderer`` applies, in this
order (``RENDER_STEPS``):

1. **stretch**: the session's normalisation (``"session"``, exactly what the
   model sees) or another one (``linear``, ``percentile``, ``log``, ``asinh``,
   ``zscale``, asinh softened by each image's noise) through the same
   ``Normaliser``; or, with ``lupton``, a Lupton
   et al. (2004) RGB composite of three bands (``make_lupton_rgb``);
2. **unsharp mask**: ``x + amount * (x - gaussian(x, radius))``;
3. **channels**: grey for one channel, R/G/B for three, evenly spaced hues for
   other counts; channels switched off are left out;
4. **brightness/contrast**: ``(x - 0.5) * contrast + 0.5 + brightness``;
5. **gamma**: ``x ** gamma`` (below 1 brightens faint structure, as in napari).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace

import numpy as np

from ..config import NormalisationConfig
from ..errors import ConfigError
from ..transforms import Normaliser, central_crop

DISPLAY_STRETCHES = ("session", "linear", "percentile", "log", "asinh", "zscale")
RENDER_STEPS = ("stretch", "unsharp_mask", "channels", "brightness_contrast", "gamma")


@dataclass(frozen=True)
class DisplaySettings:
    """How images are drawn for labelling; never changes what the model sees.

    ``channels`` lists which channels are shown (empty: all of them);
    ``lupton_bands`` the channels used as red, green and blue by the Lupton
    composite; ``lupton_stretch`` its linear stretch in units of the bands'
    common 99.5-percentile range, ``lupton_q`` its asinh softening.
    """

    stretch: str = "session"
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    unsharp_amount: float = 0.0
    unsharp_radius: float = 2.0
    channels: tuple[bool, ...] = ()
    lupton: bool = False
    lupton_bands: tuple[int, int, int] = (0, 1, 2)
    lupton_q: float = 8.0
    lupton_stretch: float = 0.5

    def __post_init__(self) -> None:
        if self.stretch not in DISPLAY_STRETCHES:
            raise ConfigError(f"display.stretch must be one of {list(DISPLAY_STRETCHES)}; got {self.stretch!r}")
        _check_between("brightness", self.brightness, -1.0, 1.0)
        _check_positive("contrast", self.contrast, 20.0)
        _check_positive("gamma", self.gamma, 10.0)
        _check_between("unsharp_amount", self.unsharp_amount, 0.0, 10.0)
        _check_positive("unsharp_radius", self.unsharp_radius, 50.0)
        _check_positive("lupton_q", self.lupton_q, 1000.0)
        _check_positive("lupton_stretch", self.lupton_stretch, 1000.0)
        if len(self.lupton_bands) != 3 or min(self.lupton_bands) < 0:
            raise ConfigError(
                f"display.lupton_bands must be three channel numbers (red, green, blue); "
                f"got {self.lupton_bands!r}")

    def with_changes(self, **changes: object) -> DisplaySettings:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


class DisplayRenderer:
    """Render raw images ``(N, H, W, C)`` as uint8 RGB ``(N, H, W, 3)``.

    Parameters
    ----------
    settings
        The display adjustments.
    normaliser
        The session's normaliser (what the model sees), used by ``stretch="session"``.
    n_channels
        The collection's channel count, checked against the settings.

    Raises
    ------
    ConfigError
        When ``channels`` or ``lupton_bands`` do not fit ``n_channels``.
    """

    def __init__(self, settings: DisplaySettings, normaliser: Normaliser, n_channels: int) -> None:
        if settings.channels and len(settings.channels) != n_channels:
            raise ConfigError(
                f"display.channels has {len(settings.channels)} switches for {n_channels}-channel "
                "images; give one per channel or none")
        if settings.lupton and (n_channels < 3 or max(settings.lupton_bands) >= n_channels):
            raise ConfigError(
                f"a Lupton RGB composite needs three bands among the images' {n_channels} "
                f"channel(s); got bands {settings.lupton_bands}. Turn it off for these images")
        self.settings = settings
        self.n_channels = n_channels
        self.normaliser = normaliser if settings.stretch == "session" else display_normaliser(
            settings.stretch, normaliser)
        active = settings.channels or (True,) * n_channels
        self.colours = channel_colours(n_channels) * np.asarray(active, dtype=np.float32)[:, None]

    def render(self, raw: np.ndarray) -> np.ndarray:
        """Raw images (or one ``(H, W, C)`` image) -> uint8 RGB, following ``RENDER_STEPS``."""
        single = raw.ndim == 3
        batch = raw[None] if single else raw
        s = self.settings
        if s.lupton:
            rgb = np.stack([lupton_rgb(image, s.lupton_bands, s.lupton_q, s.lupton_stretch)
                            for image in central_crop(batch, self.normaliser.config.crop)])
            rgb = unsharp_mask(rgb, s.unsharp_amount, s.unsharp_radius)
        else:
            x = unsharp_mask(self.normaliser(batch), s.unsharp_amount, s.unsharp_radius)
            rgb = compose_channels(x, self.colours)
        rgb = adjust_levels(rgb, s.brightness, s.contrast, s.gamma)
        out = to_uint8(rgb)
        return out[0] if single else out


def display_normaliser(stretch: str, session: Normaliser) -> Normaliser:
    """The ``Normaliser`` of a display stretch: the session's crop and range; asinh softened by the noise."""
    config = NormalisationConfig(method=stretch, crop=session.config.crop, asinh_softening="noise")
    return Normaliser(config, session.value_range)


def channel_colours(n_channels: int) -> np.ndarray:
    """``(C, 3)`` display colours: white for one channel, R/G/B for three, else spaced hues."""
    if n_channels == 1:
        return np.ones((1, 3), dtype=np.float32)
    if n_channels == 3:
        return np.eye(3, dtype=np.float32)
    hues = [colorsys.hsv_to_rgb(i / n_channels, 1.0, 1.0) for i in range(n_channels)]
    return np.asarray(hues, dtype=np.float32)


def compose_channels(x: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Mix ``(N, H, W, C)`` [0, 1] channels into RGB with ``(C, 3)`` colours.

    The mix is scaled so that every shown channel at 1 gives at most 1 per
    colour component; with no channel shown the result is black.
    """
    # a broadcast sum, not tensordot: BLAS threads wait for the CPU a training worker holds
    rgb = (x[..., :, None] * colours).sum(axis=-2, dtype=np.float32)
    peak = float(colours.sum(axis=0).max())
    if peak > 1.0:
        rgb /= peak
    return rgb


def unsharp_mask(x: np.ndarray, amount: float, radius: float) -> np.ndarray:
    """Sharpen ``(N, H, W, C)`` images: ``x + amount * (x - blur(x))``, clipped to [0, 1]."""
    if amount <= 0:
        return x
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(x, sigma=(0, radius, radius, 0), mode="nearest")
    return np.clip(x + amount * (x - blurred), 0.0, 1.0).astype(np.float32, copy=False)


def adjust_levels(x: np.ndarray, brightness: float = 0.0, contrast: float = 1.0,
                  gamma: float = 1.0) -> np.ndarray:
    """Brightness, contrast (about mid-grey) then gamma, on [0, 1] values."""
    if brightness == 0.0 and contrast == 1.0 and gamma == 1.0:
        return x
    y = (x - np.float32(0.5)) * np.float32(contrast) + np.float32(0.5 + brightness)
    np.clip(y, 0.0, 1.0, out=y)
    if gamma != 1.0:
        np.power(y, np.float32(gamma), out=y)
    return y


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 (rounded, clipped)."""
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def lupton_rgb(image: np.ndarray, bands: tuple[int, int, int] = (0, 1, 2), q: float = 8.0,
               stretch: float = 0.5) -> np.ndarray:
    """A Lupton et al. (2004) colour composite of three bands of one ``(H, W, C)`` image.

    Each band's background (its median) is subtracted and all three are
    divided by one common scale (the largest 99.5-percentile above the
    background), so the bands keep their flux ratios and therefore their
    colours; ``stretch`` and ``q`` are those of ``make_lupton_rgb``.

    Returns
    -------
    float32 ``(H, W, 3)`` in [0, 1].
    """
    from astropy.visualization import ManualInterval, make_lupton_rgb

    planes = [np.nan_to_num(image[..., b].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
              for b in bands]
    backgrounds = [float(np.median(p)) for p in planes]
    ranges = [float(np.percentile(p, 99.5)) - bg for p, bg in zip(planes, backgrounds, strict=True)]
    scale = max(max(ranges), 1e-12)
    scaled = [np.clip((p - bg) / scale, 0.0, None) for p, bg in zip(planes, backgrounds, strict=True)]
    with np.errstate(invalid="ignore", divide="ignore"):  # astropy divides 0/0 where it is dark
        rgb = make_lupton_rgb(*scaled, interval=ManualInterval(vmin=0.0, vmax=None), stretch=stretch,
                              Q=q, output_dtype=np.float64)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def _check_between(name: str, value: float, low: float, high: float) -> None:
    if not low <= float(value) <= high:
        raise ConfigError(f"display.{name} must lie in [{low}, {high}]; got {value!r}")


def _check_positive(name: str, value: float, high: float) -> None:
    if not 0.0 < float(value) <= high:
        raise ConfigError(f"display.{name} must lie in (0, {high}]; got {value!r}")
