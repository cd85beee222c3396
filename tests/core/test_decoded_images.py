"""A cycle reads only the training images the previous cycle did not decode."""

from __future__ import annotations

import numpy as np
import torch

from napari_anomalymatch.core.config import NormalisationConfig
from napari_anomalymatch.core.io.registry import open_collection
from napari_anomalymatch.core.loading import DecodedImages, LoadProgress, load_images
from napari_anomalymatch.core.runs import run_to_end
from napari_anomalymatch.core.transforms import Normaliser


def _counting_reads(collection) -> list[int]:
    """Record every index the collection is asked to read: every reading path ends in ``read_valid``."""
    read, asked = collection.read_valid, []

    def counted(indices, *args, **kwargs):
        asked.extend(int(i) for i in indices)
        return read(indices, *args, **kwargs)

    collection.read_valid = counted
    return asked


def test_a_second_load_reads_only_the_images_the_first_did_not(blob_folder):
    collection = open_collection(str(blob_folder[0]))
    normaliser = Normaliser(NormalisationConfig(crop=1.0), collection.value_range)
    asked = _counting_reads(collection)
    decoded = DecodedImages()
    run_to_end(decoded.load(collection, normaliser, 32, np.arange(10), num_workers=0))
    asked.clear()
    events = []
    wanted = np.array([14, 3, 12, 5, 9, 13, 11, 10, 0])
    images, valid = run_to_end(decoded.load(collection, normaliser, 32, wanted, num_workers=0), events.append)
    assert sorted(asked) == [10, 11, 12, 13, 14]
    assert events[0] == LoadProgress(4, 9) and events[-1] == LoadProgress(9, 9)  # the kept ones at once
    fresh, fresh_valid = run_to_end(load_images(collection, normaliser, 32, wanted, num_workers=0))
    assert torch.equal(images, fresh) and np.array_equal(valid, fresh_valid)


def test_another_normalisation_or_size_reads_everything_again(blob_folder):
    collection = open_collection(str(blob_folder[0]))
    asked = _counting_reads(collection)
    decoded = DecodedImages()
    whole = Normaliser(NormalisationConfig(crop=1.0), collection.value_range)
    run_to_end(decoded.load(collection, whole, 32, np.arange(6), num_workers=0))
    for normaliser, size in ((Normaliser(NormalisationConfig(crop=0.5), collection.value_range), 32), (whole, 16)):
        asked.clear()
        images, _ = run_to_end(decoded.load(collection, normaliser, size, np.arange(6), num_workers=0))
        assert sorted(asked) == list(range(6)) and images.shape[-1] == size
