"""Display rendering: the ordered steps, channel mixing, Lupton composites, validation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.config import NormalisationConfig
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.review.display import (
    DisplayRenderer,
    DisplaySettings,
    adjust_levels,
    channel_colours,
    compose_channels,
    lupton_rgb,
    unsharp_mask,
)
from napari_anomalymatch.core.transforms import Normaliser

RNG = np.random.default_rng(5)
GREY = RNG.lognormal(2, 1, (3, 24, 24, 1)).astype(np.float32)
BANDS = RNG.normal(10, 1, (24, 24, 3)).astype(np.float32)
SESSION_NORMALISER = Normaliser(NormalisationConfig(method="asinh"))


def test_default_settings_show_exactly_what_the_model_sees():
    out = DisplayRenderer(DisplaySettings(), SESSION_NORMALISER, 1).render(GREY)
    assert out.shape == (3, 24, 24, 3) and out.dtype == np.uint8
    expected = np.round(SESSION_NORMALISER(GREY)[..., 0] * 255)
    for channel in range(3):
        np.testing.assert_allclose(out[..., channel], expected, atol=1)


@pytest.mark.parametrize("stretch", ["linear", "percentile", "log", "asinh", "zscale"])
def test_each_stretch_uses_the_shared_normaliser(stretch):
    out = DisplayRenderer(DisplaySettings(stretch=stretch), SESSION_NORMALISER, 1).render(GREY[0])
    expected = Normaliser(NormalisationConfig(method=stretch, asinh_softening="noise"))(GREY[0])[..., 0]
    np.testing.assert_allclose(out[..., 0], np.round(expected * 255), atol=1)


@pytest.mark.parametrize(("brightness", "contrast", "gamma", "value", "expected"), [
    (0.0, 1.0, 1.0, 0.3, 0.3),
    (0.2, 1.0, 1.0, 0.3, 0.5),
    (0.0, 2.0, 1.0, 0.3, 0.1),
    (0.0, 1.0, 2.0, 0.5, 0.25),
    (0.0, 1.0, 0.5, 0.25, 0.5),
    (0.9, 1.0, 1.0, 0.5, 1.0),  # clipped
])
def test_levels(brightness, contrast, gamma, value, expected):
    x = np.full((1, 2, 2, 3), value, dtype=np.float32)
    np.testing.assert_allclose(adjust_levels(x, brightness, contrast, gamma), expected, atol=1e-6)


def test_unsharp_mask_raises_local_contrast_and_keeps_flat_areas():
    x = np.zeros((1, 21, 21, 1), dtype=np.float32) + 0.2
    x[0, 10, 10, 0] = 0.6
    sharpened = unsharp_mask(x, amount=1.0, radius=1.5)
    assert sharpened[0, 10, 10, 0] > 0.6
    assert sharpened[0, 0, 0, 0] == pytest.approx(0.2)
    assert unsharp_mask(x, 0.0, 1.0) is x


def test_channels_are_mixed_and_can_be_switched_off():
    colours = channel_colours(3)
    x = np.zeros((1, 1, 1, 3), dtype=np.float32)
    x[..., 1] = 1.0
    np.testing.assert_allclose(compose_channels(x, colours)[0, 0, 0], [0, 1, 0])
    five = channel_colours(5)
    assert five.shape == (5, 3) and len({tuple(c) for c in five}) == 5
    mixed = compose_channels(np.ones((1, 1, 1, 5), np.float32), five)
    assert mixed.max() <= 1.0 + 1e-6
    renderer = DisplayRenderer(DisplaySettings(stretch="linear", channels=(True, False, False)),
                               SESSION_NORMALISER, 3)
    out = renderer.render(BANDS)
    assert out[..., 0].max() > 200 and out[..., 1].max() == 0 and out[..., 2].max() == 0


def test_lupton_composite_keeps_band_colours():
    image = np.zeros((32, 32, 3), dtype=np.float32) + RNG.normal(0, 0.1, (32, 32, 3)).astype(np.float32)
    image[8:12, 8:12, 0] += 40  # a red source
    image[20:24, 20:24, 2] += 40  # a blue one
    rgb = lupton_rgb(image, q=8, stretch=0.5)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.float32
    red, blue = rgb[10, 10], rgb[22, 22]
    assert red[0] > 0.9 and red[2] < 0.1
    assert blue[2] > 0.9 and blue[0] < 0.1
    settings = DisplaySettings(lupton=True, lupton_bands=(2, 1, 0))
    swapped = DisplayRenderer(settings, SESSION_NORMALISER, 3).render(image)
    assert swapped[10, 10, 2] > 200 and swapped[22, 22, 0] > 200  # bands mapped as asked


@pytest.mark.parametrize(("changes", "message"), [
    ({"stretch": "sqrt"}, r"display.stretch must be one of .* got 'sqrt'"),
    ({"gamma": 0.0}, r"display.gamma must lie in \(0, 10.0\]; got 0.0"),
    ({"brightness": 2}, r"display.brightness must lie in \[-1.0, 1.0\]; got 2"),
    ({"lupton_bands": (0, 1)}, r"three channel numbers"),
])
def test_bad_settings_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        DisplaySettings(**changes)


def test_settings_that_do_not_fit_the_images_are_refused():
    with pytest.raises(ConfigError, match="2 switches for 1-channel"):
        DisplayRenderer(DisplaySettings(channels=(True, False)), SESSION_NORMALISER, 1)
    with pytest.raises(ConfigError, match="needs three bands among the images' 1 channel"):
        DisplayRenderer(DisplaySettings(lupton=True), SESSION_NORMALISER, 1)
