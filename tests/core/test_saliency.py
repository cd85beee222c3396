"""Saliency maps of the score: they point at the source that makes an image anomalous."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_anomalymatch.core.errors import ConfigError, NotTrainedError
from napari_anomalymatch.core.review.saliency import overlay, saliency_maps
from napari_anomalymatch.core.session import Session

from ..conftest import tiny_config, write_pngs

SIZE, CROP, SIGMA = 32, 0.75, 2.0  # the review shows the middle 24 x 24 pixels
OFFSET = (SIZE - round(SIZE * CROP)) // 2


def blob_in_noise(n_blobs: int, n_noise: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grey noise images, the first ``n_blobs`` with a bright Gaussian blob off the centre; and
    the blobs' centres (row, column) in the raw images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centres = rng.uniform(OFFSET + 4, SIZE - OFFSET - 4, (n_blobs, 2))
    images = rng.normal(40, 10, (n_blobs + n_noise, SIZE, SIZE))
    for image, (cy, cx) in zip(images, centres, strict=False):
        image += 180 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * SIGMA ** 2))
    return np.clip(images, 0, 255).astype(np.uint8), centres


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A session trained two iterations (default head) on 8 blobs and 8 noise images, 3 + 3 labelled."""
    folder = tmp_path_factory.mktemp("saliency")
    images, centres = blob_in_noise(8, 8)
    write_pngs(folder / "images", images)
    with Session.create(folder / "session", tiny_config(folder / "images", crop=CROP, image_size=SIZE)) as session:
        ids = session.collection.ids()
        for i in (0, 1, 2):
            session.label(ids[i], "anomaly")
        for i in (8, 9, 10):
            session.label(ids[i], "normal")
        for _ in session.train():
            pass
        yield session, centres


def test_the_map_peaks_on_the_blob_and_leaves_the_model_alone(trained):
    session, centres = trained
    before = {name: value.clone() for name, value in session.trainer.state_dict().items()}
    rng_before = torch.get_rng_state()
    unlabelled = list(range(3, 8))
    maps = saliency_maps(session, unlabelled)
    shown = session.display_image(0).shape[:2]
    assert shown == (24, 24)
    for index, saliency in zip(unlabelled, maps, strict=True):
        assert saliency.shape == shown and saliency.dtype == np.float32
        assert saliency.min() >= 0 and saliency.max() == pytest.approx(1.0)
        assert saliency.std() > 0.1  # not uniform
        peak = np.unravel_index(int(saliency.argmax()), saliency.shape)
        distance = np.hypot(*(np.array(peak) + OFFSET - centres[index]))  # display -> raw pixels
        assert distance <= 2 * SIGMA, (index, peak, centres[index])
    after = session.trainer.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert torch.equal(rng_before, torch.get_rng_state())


@pytest.mark.parametrize("method", ["grad-cam", "occlusion"])
def test_the_other_methods_give_maps_of_the_shown_image(trained, method):
    session, _ = trained
    saliency, = saliency_maps(session, [3], method=method)
    assert saliency.shape == (24, 24) and saliency.min() >= 0 and saliency.max() == pytest.approx(1.0)
    assert saliency.std() > 0.01


def test_bad_requests_are_named(trained, tmp_path):
    session, _ = trained
    with pytest.raises(ConfigError, match="saliency method must be one of"):
        saliency_maps(session, [0], method="lime")
    assert saliency_maps(session, []) == []
    fresh = Session.create(tmp_path / "fresh", session.config)
    with fresh, pytest.raises(NotTrainedError, match="no model yet"):
        saliency_maps(fresh, [0])


def test_overlay_colours_where_the_map_is_high():
    grey = np.full((4, 6, 3), 100, dtype=np.uint8)
    saliency = np.zeros((4, 6), dtype=np.float32)
    saliency[1, 2] = 1.0
    out = overlay(grey, saliency)
    assert out.dtype == np.uint8 and out.shape == grey.shape
    assert np.array_equal(out[0, 0], grey[0, 0])  # no saliency: the image unchanged
    top = np.array([252, 255, 164])  # inferno's light yellow, at 0.6 opacity over grey 100
    assert np.abs(out[1, 2].astype(int) - (0.4 * 100 + 0.6 * top)).max() <= 1
    with pytest.raises(ConfigError, match="does not fit"):
        overlay(grey, saliency[:3])
