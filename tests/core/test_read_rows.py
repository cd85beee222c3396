"""Rows read from HDF5 by index: the order given, duplicates kept, whatever the chunk layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_anomalymatch.core.io.arrays import _read_rows


@pytest.mark.parametrize("chunks, compression", [((1, 8, 8), None), ((16, 8, 8), "gzip"), (None, None)])
def test_rows_come_back_in_the_order_asked(tmp_path, chunks, compression):
    images = np.random.default_rng(0).integers(0, 255, (100, 8, 8), dtype=np.uint8)
    with h5py.File(tmp_path / "images.h5", "w") as handle:
        handle.create_dataset("images", data=images, chunks=chunks, compression=compression)
    asked = [np.array([5]), np.arange(10, 20), np.array([99, 3, 3, 50, 4, 5, 6, 17, 31, 32]),
             np.random.default_rng(1).permutation(100)[:37]]
    with h5py.File(tmp_path / "images.h5", "r") as handle:
        for indices in asked:
            np.testing.assert_array_equal(_read_rows(handle["images"], indices), images[indices])
