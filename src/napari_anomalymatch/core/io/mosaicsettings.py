"""The settings of a mosaic source, checked once: the cutout's side and how bands make channels.

Each message names what was given, what is expected and the fix.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

DEFAULT_CUTOUT_SIZE = "64px"
MIN_CUTOUT_PIXELS = 8
MAX_CUTOUT_PIXELS = 4096
MODEL_CHANNELS = (1, 3)  # grey or RGB: what the models take
PIXELS = re.compile(r"^\s*(\d+)\s*(px|pix|pixels?)?\s*$", re.IGNORECASE)


def cutout_pixels(text: str | int | None, pixel_scale_arcsec: float, where: str) -> int:
    """The cutout's side in pixels: ``64``/``64px`` as given, an angle (``12arcsec``, ``0.2arcmin``)
    over the first band's pixel scale, rounded.

    Raises
    ------
    ConfigError
        Text that is neither, or a side outside 8..4096 pixels, naming ``where``.
    """
    text = DEFAULT_CUTOUT_SIZE if text in (None, "") else str(text)
    found = PIXELS.match(text)
    if found:
        pixels = int(found.group(1))
    else:
        pixels = round(_arcsec(text, where) / pixel_scale_arcsec)
    if not MIN_CUTOUT_PIXELS <= pixels <= MAX_CUTOUT_PIXELS:
        raise ConfigError(f"{where}: cutout size {text!r} is {pixels} pixels (at {pixel_scale_arcsec:.3g} arcsec a "
                          f"pixel); expected {MIN_CUTOUT_PIXELS} to {MAX_CUTOUT_PIXELS}, e.g. 64px or 12arcsec")
    return pixels


def _arcsec(text: str, where: str) -> float:
    import astropy.units as u

    try:
        angle = u.Quantity(text.strip())
        return float(angle.to_value(u.arcsec))
    except (TypeError, ValueError, u.UnitsError):
        raise ConfigError(f"{where}: cutout size {text!r} is neither pixels nor an angle; expected e.g. 64px, "
                          "12arcsec or 0.2arcmin") from None


def channel_recipe(text: str | None, n_bands: int) -> list[int | str]:
    """Each model channel's band (0-based) or ``'mean'``, from ``'1,2,3'``/``'3,2,1'``/``'2'``/``'mean'``.

    The default is the first three bands as RGB; one band, or two (their mean between them), make
    grey or RGB of what there is.

    Raises
    ------
    ConfigError
        A band number outside 1..n_bands, or a channel count the models do not take (1 or 3).
    """
    if not text:
        return [0] if n_bands == 1 else [0, "mean", 1] if n_bands == 2 else [0, 1, 2]
    recipe: list[int | str] = []
    for part in (p.strip().lower() for p in str(text).split(",")):
        if part == "mean":
            recipe.append("mean")
        elif part.isdigit() and 1 <= int(part) <= n_bands:
            recipe.append(int(part) - 1)
        else:
            raise ConfigError(f"channels {text!r}: {part!r} is not a band; expected band numbers 1..{n_bands} "
                              "(the order the --mosaic options were given) or 'mean', e.g. '3,2,1'")
    if len(recipe) not in MODEL_CHANNELS:
        raise ConfigError(f"channels {text!r} makes {len(recipe)} channels; the models take 1 (grey) or 3 (RGB): "
                          "give one band, 'mean', or three bands such as '1,2,3'")
    return recipe
