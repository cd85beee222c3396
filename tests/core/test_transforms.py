"""Normalisation matches astropy's intervals and stretches; resizing keeps [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.visualization import (
    AsinhStretch,
    LogStretch,
    MinMaxInterval,
    PercentileInterval,
    ZScaleInterval,
)

from napari_anomalymatch.core.config import NormalisationConfig
from napari_anomalymatch.core.transforms import Normaliser, prepare_batch, to_model_input

RNG = np.random.default_rng(3)
BATCH = RNG.lognormal(3, 1, (4, 20, 20, 2)).astype(np.float32)


def _astropy_reference(method: str, image: np.ndarray) -> np.ndarray:
    interval = {"linear": MinMaxInterval(), "zscale": ZScaleInterval()}.get(method, PercentileInterval(99.0))
    low, high = interval.get_limits(image)
    x = np.clip((image - low) / (high - low), 0, 1)
    if method == "log":
        return LogStretch(a=1000)(x)
    if method == "asinh":
        return AsinhStretch(a=0.1)(x)
    return x


@pytest.mark.parametrize("method", ["linear", "percentile", "log", "asinh", "zscale"])
def test_matches_astropy_per_image_and_channel(method):
    config = NormalisationConfig(method=method, low_percentile=0.5, high_percentile=99.5)
    out = Normaliser(config)(BATCH)
    assert out.shape == BATCH.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    for i in range(BATCH.shape[0]):
        for c in range(BATCH.shape[-1]):
            expected = _astropy_reference(method, BATCH[i, :, :, c])
            np.testing.assert_allclose(out[i, :, :, c], expected, atol=2e-5)


def test_auto_uses_the_fixed_range_of_integer_data():
    raw = np.array([[[[0.0], [51.0], [255.0]]]], dtype=np.float32)
    out = Normaliser(NormalisationConfig(), value_range=(0.0, 255.0))(raw)
    np.testing.assert_allclose(out.ravel(), [0.0, 0.2, 1.0])
    assert Normaliser(NormalisationConfig()).method == "asinh"


def test_nan_and_inf_become_background_and_do_not_spoil_limits():
    image = np.linspace(0, 1, 100, dtype=np.float32).reshape(1, 10, 10, 1)
    image[0, 0, 0, 0] = np.nan
    image[0, 0, 1, 0] = np.inf
    for method in ("linear", "percentile", "asinh", "zscale", "none"):
        out = Normaliser(NormalisationConfig(method=method))(image)
        assert np.isfinite(out).all(), method
        assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 1, 0] == 0.0
        assert out[0, 9, 9, 0] > 0.9, method


def test_single_image_and_constant_image():
    flat = np.full((6, 6, 1), 7.0, dtype=np.float32)
    out = Normaliser(NormalisationConfig(method="linear"))(flat)
    assert out.shape == (6, 6, 1) and np.isfinite(out).all()


def test_to_model_input_resizes_with_antialiasing():
    checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)[None, ..., None]
    tensor = to_model_input(checker, 16)
    assert tuple(tensor.shape) == (1, 1, 16, 16)
    np.testing.assert_allclose(tensor.numpy(), 0.5, atol=0.02)  # no aliasing into stripes


def test_prepare_batch_is_normalise_then_resize():
    normaliser = Normaliser(NormalisationConfig(method="percentile"))
    tensor = prepare_batch(BATCH, normaliser, 8)
    assert tuple(tensor.shape) == (4, 2, 8, 8)
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    same = prepare_batch(BATCH, normaliser, 20)
    np.testing.assert_allclose(same.numpy(), np.moveaxis(normaliser(BATCH), -1, 1))


def test_crop_keeps_the_middle_before_the_limits_are_taken():
    image = np.zeros((1, 40, 40, 1), dtype=np.float32)
    image[0, 15:25, 15:25, 0] = 1.0  # the source, in the middle
    image[0, 0, 0, 0] = 1000.0  # a bright corner that the crop leaves out
    whole = Normaliser(NormalisationConfig(method="linear"))(image)
    cropped = Normaliser(NormalisationConfig(method="linear", crop=0.5))(image)
    assert whole.shape == (1, 40, 40, 1) and cropped.shape == (1, 20, 20, 1)
    assert whole[0, 20, 20, 0] < 0.01  # squashed by the corner
    np.testing.assert_allclose(cropped[0, 5:15, 5:15, 0], 1.0)
    assert cropped[0, 0, 0, 0] == 0.0
    single = Normaliser(NormalisationConfig(method="linear", crop=0.5))(image[0])
    np.testing.assert_array_equal(single, cropped[0])


@pytest.mark.parametrize("crop", [0.0, -0.5, 1.5])
def test_crop_outside_zero_to_one_is_refused(crop):
    from napari_anomalymatch.core.errors import ConfigError

    with pytest.raises(ConfigError, match="crop"):
        NormalisationConfig(crop=crop)


def _sources(size: int, *blobs: tuple[float, float, float, float]) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return sum(a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s**2)) for y, x, s, a in blobs)


def _sparse_radio() -> tuple[np.ndarray, np.ndarray]:
    """A FIRST-like cutout: exact zeros but for a bright and a faint source (99.6 % empty)."""
    signal = _sources(128, (64, 64, 2.0, 50.0), (30, 90, 1.5, 3.0))
    image = np.where(signal > 0.5, signal, 0.0)
    return image, image > 0


def _faint_galaxy() -> tuple[np.ndarray, np.ndarray]:
    """A galaxy peaking at 4 sigma of the sky noise."""
    signal = _sources(64, (32, 32, 6.0, 20.0))
    return 100 + RNG.normal(0, 5, (64, 64)) + signal, signal > 10


def _saturated_star() -> tuple[np.ndarray, np.ndarray]:
    """A star clipped at the detector's full well, on faint sky noise."""
    signal = np.minimum(_sources(64, (32, 32, 2.0, 6e4)), 5e4)
    return 10 + RNG.normal(0, 2, (64, 64)) + signal, signal > 20


# name -> (image, its source pixels)
ASTRO_IMAGES = {"sparse radio": _sparse_radio(), "faint galaxy": _faint_galaxy(),
                "saturated star": _saturated_star()}
STRETCHES = ("linear", "percentile", "log", "asinh", "zscale")
# zscale shows the sky around the noise (IRAF's purpose): a bright star saturates by design.
SATURATION_BOUNDS = {("saturated star", "zscale"): 1.0}


def _stretched(image: np.ndarray, method: str, softening: str = "fixed") -> np.ndarray:
    config = NormalisationConfig(method=method, asinh_softening=softening)
    return Normaliser(config)(image[..., None].astype(np.float32))[..., 0]


@pytest.mark.parametrize("softening", ["fixed", "noise"])
@pytest.mark.parametrize("method", STRETCHES)
@pytest.mark.parametrize("case", list(ASTRO_IMAGES))
def test_stretches_keep_astronomical_sources_visible(case, method, softening):
    image, sources = ASTRO_IMAGES[case]
    out = _stretched(image, method, softening)
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    visible = (out[sources] > 0.05).mean()  # 13 of 255 grey levels and brighter
    saturated = (out[sources] >= 0.99).mean()
    assert visible >= 0.3, f"{case}, {method}: only {visible:.0%} of the source pixels show"
    bound = SATURATION_BOUNDS.get((case, method), 0.5)
    assert saturated <= bound, f"{case}, {method}: {saturated:.0%} of the source pixels saturate"


@pytest.mark.parametrize("case", list(ASTRO_IMAGES))
def test_each_stretch_differs_from_the_others(case):
    image, sources = ASTRO_IMAGES[case]
    shown = {method: _stretched(image, method)[sources] for method in STRETCHES}
    shown["asinh, noise"] = _stretched(image, "asinh", "noise")[sources]
    names = list(shown)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            difference = np.abs(shown[first] - shown[second]).mean()
            assert difference > 0.01, f"{case}: {first} and {second} show the sources alike ({difference:.4f})"


@pytest.mark.parametrize("method", [*STRETCHES, "auto"])
def test_a_constant_image_is_black_never_nan(method):
    flat = np.full((1, 16, 16, 2), 7.0, dtype=np.float32)
    for softening in ("fixed", "noise"):
        out = Normaliser(NormalisationConfig(method=method, asinh_softening=softening))(flat)
        np.testing.assert_array_equal(out, 0.0)


def test_noise_softening_shows_a_bright_star_down_to_its_faint_wings():
    image, sources = ASTRO_IMAGES["saturated star"]
    fixed, noise = _stretched(image, "asinh"), _stretched(image, "asinh", "noise")
    assert (noise[sources] > 0.05).mean() == 1.0 > (fixed[sources] > 0.05).mean()
    assert np.median(noise[~sources]) < 0.05  # the sky stays dark


def test_an_unknown_softening_is_named():
    from napari_anomalymatch.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"asinh_softening must be one of \['fixed', 'noise'\]; got 'sky'"):
        NormalisationConfig(asinh_softening="sky")
