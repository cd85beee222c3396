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
