"""The demo's FIRST radio galaxies, read from the zip that firstgalaxydata installs."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from napari_anomalymatch.core.evaluation.demo import BLANK_IMAGES, CLASSES, first_archive, list_first_images


def test_the_archives_blank_cutout_is_left_out_and_the_rest_kept():
    images = list_first_images()
    listed = {f"{image.galaxy_class}/{image.file_name}" for image in images}
    assert not listed & BLANK_IMAGES
    assert len(images) == 2158 - len(BLANK_IMAGES) and {image.galaxy_class for image in images} == set(CLASSES)
    with zipfile.ZipFile(first_archive()) as handle:  # what is left out really holds no data
        for name in BLANK_IMAGES:
            pixels = np.asarray(Image.open(io.BytesIO(handle.read(f"galaxy_data/all/{name}"))))
            assert pixels.min() == pixels.max() == 0
