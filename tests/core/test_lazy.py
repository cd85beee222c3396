"""A collection as a lazy array: only the images indexed are read."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.io.lazy import DECODED_CHUNK_LENGTH, CollectionArray, chunk_length

from ..conftest import blob_images, write_pngs


@pytest.fixture
def counted(tmp_path, monkeypatch):
    images = np.arange(50 * 6 * 5 * 2, dtype=np.uint16).reshape(50, 6, 5, 2)
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as handle:
        handle["images"] = images
    collection = open_collection(path)
    reads = []
    original = collection._read
    monkeypatch.setattr(collection, "_read", lambda idx: reads.append(idx.tolist()) or original(idx))
    return CollectionArray(collection), images, reads


def test_indexing_reads_only_what_is_asked(counted):
    array, images, reads = counted
    assert array.shape == (50, 6, 5, 2) and array.dtype == np.float32 and array.ndim == 4
    assert reads == []
    np.testing.assert_array_equal(array[3], images[3])
    np.testing.assert_array_equal(array[-1, 2:4, :, 1], images[-1, 2:4, :, 1])
    np.testing.assert_array_equal(array[10:20:5, ..., 0], images[10:20:5, ..., 0])
    np.testing.assert_array_equal(array[[7, 2]], images[[7, 2]])
    mask = np.zeros(50, dtype=bool)
    mask[[1, 4]] = True
    np.testing.assert_array_equal(array[mask], images[mask])
    assert reads == [[3], [49], [10, 15], [7, 2], [1, 4]]


def test_one_channel_collections_can_drop_the_channel_axis(tmp_path, counted):
    with pytest.raises(ValueError, match="drop_channel needs one-channel images; they have 2"):
        CollectionArray(counted[0].collection, drop_channel=True)
    path = tmp_path / "grey.h5"
    images = np.arange(4 * 3 * 2, dtype=np.uint8).reshape(4, 3, 2)
    with h5py.File(path, "w") as handle:
        handle["images"] = images
    grey = CollectionArray(open_collection(path), drop_channel=True)
    assert grey.shape == (4, 3, 2) and grey.ndim == 3
    np.testing.assert_array_equal(grey[1:3, :, 1], images[1:3, :, 1])
    np.testing.assert_array_equal(grey[..., 0], images[..., 0])


def test_dask_wraps_it_lazily(counted):
    da = pytest.importorskip("dask.array")
    array, images, reads = counted
    lazy = da.from_array(array, chunks=(4, 6, 5, 2), name="stack")
    np.testing.assert_array_equal(lazy[9].compute(), images[9])
    assert len(reads) == 1 and 9 in reads[0] and set(reads[0]) <= {8, 9, 10, 11}  # one chunk at most


def test_chunk_length_follows_the_storage(tmp_path, counted):
    array, _, _ = counted
    assert chunk_length(array.collection, chunk_bytes=6 * 5 * 2 * 4 * 3) == 3
    assert chunk_length(array.collection) == 50  # a small stack is one chunk
    write_pngs(tmp_path / "pngs", blob_images(20, size=8)[0])
    assert chunk_length(open_collection(tmp_path / "pngs")) == DECODED_CHUNK_LENGTH
