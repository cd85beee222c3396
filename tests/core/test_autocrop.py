"""The central crop a new session chooses from its images."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.config import DataConfig, NormalisationConfig, ProbeConfig, SessionConfig
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.io.autocrop import CROP_STEP, choose_crop, resolve_automatic

from ..conftest import write_pngs


def _sources(n: int, size: int, radius: float, seed: int = 0) -> np.ndarray:
    """Grey uint8 cutouts of Gaussian sources of ``radius`` pixels near the centre, on noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        dy, dx = rng.normal(0, radius / 4, 2)
        source = 200 * np.exp(-((yy - dy) ** 2 + (xx - dx) ** 2) / (2 * radius**2))
        images[i] = np.clip(rng.normal(20, 4, (size, size)) + source, 0, 255)
    return images


def _collection(tmp_path, images):
    write_pngs(tmp_path / "images", images)
    return open_collection(tmp_path / "images")


@pytest.mark.parametrize("radius, expected", [(4, 0.1875), (8, 0.3125), (14, 0.4375), (40, 1.0)])
def test_the_crop_keeps_the_central_square_that_holds_the_sources_light(tmp_path, radius, expected):
    # 90 % of the light above the noise; a source that needs more than 3/4 of the side keeps it all
    assert choose_crop(_collection(tmp_path, _sources(40, 96, radius))) == expected


def _with_field_stars(images: np.ndarray, per_image: int, seed: int = 2) -> np.ndarray:
    """``images`` with ``per_image`` bright point sources each, anywhere in the frame."""
    rng = np.random.default_rng(seed)
    size = images.shape[1]
    yy, xx = np.mgrid[:size, :size]
    out = images.astype(np.float64)
    for image in out:
        for y, x in rng.uniform(0, size, (per_image, 2)):
            image += 180 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5**2))
    return np.clip(out, 0, 255).astype(np.uint8)


def test_the_crop_follows_the_central_source_not_the_field_stars_around_it(tmp_path):
    # an optical cutout: a centred galaxy among stars strewn over the frame; the stars' light
    # alone would keep the whole frame (the galaxy a fifth of the model's input)
    alone = choose_crop(_collection(tmp_path / "alone", _sources(60, 96, 8)))
    crowded = choose_crop(_collection(tmp_path / "crowded", _with_field_stars(_sources(60, 96, 8), per_image=6)))
    assert alone == 0.3125 and alone <= crowded <= alone + CROP_STEP  # the stars' share of the light: 0.625


def test_light_spread_over_the_field_keeps_the_whole_image(tmp_path):
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (30, 48, 48), dtype=np.uint8)  # a photograph's light is everywhere
    assert choose_crop(_collection(tmp_path / "a", texture)) == 1.0
    flat = np.full((5, 48, 48), 7, dtype=np.uint8)
    flat[:, :, ::2] = 8  # not blank (blank images are refused), but no light above the background
    assert choose_crop(_collection(tmp_path / "b", flat)) == 1.0


def test_a_new_sessions_auto_crop_becomes_a_number_and_a_given_one_stays(tmp_path):
    collection = _collection(tmp_path, _sources(20, 64, 3))
    asked = SessionConfig(data=DataConfig(normalisation=NormalisationConfig(crop="auto")))
    chosen = resolve_automatic(asked, collection).data.normalisation.crop
    assert isinstance(chosen, float) and chosen <= 0.5
    given = SessionConfig(data=DataConfig(normalisation=NormalisationConfig(crop=0.8)))
    assert resolve_automatic(given, collection) == given


def _colour(images: np.ndarray) -> np.ndarray:
    """Grey uint8 images as RGB, each band a little dimmer than the last."""
    return np.stack([images, (images * 0.8).astype(np.uint8), (images * 0.6).astype(np.uint8)], axis=-1)


def _morphology_chosen(tmp_path, images: np.ndarray, **probe) -> str:
    config = SessionConfig(probe=ProbeConfig(**probe))
    return resolve_automatic(config, _collection(tmp_path, images)).probe.morphology


def test_colour_cutouts_of_a_central_source_read_morphology_and_photographs_do_not(tmp_path):
    # galaxies among field stars on a dark sky: asymmetry, Gini and M20 describe them
    survey = _colour(_with_field_stars(_sources(40, 64, 6), per_image=4))
    assert _morphology_chosen(tmp_path / "survey", survey) == "on"
    photographs = np.random.default_rng(3).integers(0, 256, (30, 48, 48, 3), dtype=np.uint8)
    assert _morphology_chosen(tmp_path / "photo", photographs) == "off"


def test_morphology_left_to_single_band_images_or_given_stays_as_it_is(tmp_path):
    grey = _sources(20, 64, 6)
    assert _morphology_chosen(tmp_path / "grey", grey) == "auto"  # auto already reads it for one band
    survey = _colour(grey)
    assert _morphology_chosen(tmp_path / "given", survey, morphology="off") == "off"
    assert _morphology_chosen(tmp_path / "tuned", survey, features="fine-tuned") == "auto"


@pytest.mark.parametrize("crop", ["half", True, 0.0, 1.5])
def test_crop_must_be_auto_or_a_fraction(crop):
    with pytest.raises(ConfigError, match="crop"):
        NormalisationConfig(crop=crop)
