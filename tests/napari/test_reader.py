"""The reader: FITS, HDF5 and Zarr stacks open as lazy layers; anything else gives None."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from astropy.io import fits

from napari_anomalymatch._napari.reader import napari_get_reader
from napari_anomalymatch.core.io.arrays import ArrayCollection

RNG = np.random.default_rng(11)


def layers_of(path):
    reader = napari_get_reader(str(path))
    assert reader is not None, path
    return reader(str(path))


def test_fits_cube_and_single_image(tmp_path):
    cube = RNG.normal(100, 5, (6, 20, 24)).astype(np.float32)
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    (data, meta, kind), = layers_of(tmp_path / "cube.fits")
    assert kind == "image" and data.shape == (6, 20, 24) and meta["name"] == "cube"
    np.testing.assert_allclose(np.asarray(data[4]), cube[4])
    low, high = meta["contrast_limits"]
    assert cube[0].min() <= low < high <= cube[0].max()
    assert meta["metadata"]["anomalymatch"]["reader"] == "fits"
    fits.PrimaryHDU(cube[0]).writeto(tmp_path / "one.fits.gz")
    (single, meta, _), = layers_of(tmp_path / "one.fits.gz")
    assert single.shape == (20, 24) and meta["name"] == "one"
    np.testing.assert_allclose(np.asarray(single), cube[0], rtol=1e-6)


def test_tile_compressed_fits(m13_dir):
    (data, _, _), = layers_of(m13_dir / "m13_rice.fits")
    assert data.ndim == 2 and float(np.asarray(data).std()) > 0


def test_hdf5_grey_rgb_and_multiband(tmp_path):
    grey = RNG.integers(0, 60000, (30, 16, 16), dtype=np.uint16)
    rgb = RNG.integers(0, 255, (10, 16, 16, 3), dtype=np.uint8)
    bands = RNG.normal(0, 1, (10, 5, 32, 32)).astype(np.float32)  # N x C x H x W
    with h5py.File(tmp_path / "stacks.h5", "w") as handle:
        handle["images"] = grey
    with h5py.File(tmp_path / "rgb.hdf5", "w") as handle:
        handle["cutouts"] = rgb
    with h5py.File(tmp_path / "bands.h5", "w") as handle:
        handle["x"] = bands
    (data, meta, _), = layers_of(tmp_path / "stacks.h5")
    assert data.shape == (30, 16, 16)
    np.testing.assert_array_equal(np.asarray(data[7]), grey[7])
    (data, meta, _), = layers_of(tmp_path / "rgb.hdf5")
    assert meta["rgb"] is True and data.shape == (10, 16, 16, 3)
    (data, meta, _), = layers_of(tmp_path / "bands.h5")
    assert meta["channel_axis"] == 3 and len(meta["name"]) == 5 and len(meta["contrast_limits"]) == 5
    np.testing.assert_allclose(np.asarray(data[2, :, :, 4]), bands[2, 4])


def test_zarr_store(tmp_path):
    zarr = pytest.importorskip("zarr")
    images = RNG.normal(0, 1, (12, 8, 8)).astype(np.float32)
    zarr.save_array(str(tmp_path / "stack.zarr"), images)
    (data, meta, _), = layers_of(tmp_path / "stack.zarr")
    assert data.shape == (12, 8, 8) and meta["name"] == "stack"
    np.testing.assert_allclose(np.asarray(data[11]), images[11])


def test_returns_none_for_what_it_cannot_open(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.fits").write_bytes(b"SIMPLE  =   garbage")
    with h5py.File(tmp_path / "table.h5", "w") as handle:
        handle["values"] = np.arange(10)
    (tmp_path / "empty.zarr").mkdir()
    for path in ("notes.txt", "broken.fits", "table.h5", "missing.h5", "empty.zarr"):
        assert napari_get_reader(str(tmp_path / path)) is None, path
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(tmp_path / "a.fits")
    assert napari_get_reader([str(tmp_path / "a.fits"), str(tmp_path / "a.fits")]) is None
    assert napari_get_reader([str(tmp_path / "a.fits")]) is not None


def test_a_large_stack_opens_lazily_in_a_viewer(tmp_path, monkeypatch, make_napari_viewer):
    n = 20_000
    path = tmp_path / "large.h5"
    with h5py.File(path, "w") as handle:  # only the first images hold data; the rest is fill value
        images = handle.create_dataset("images", shape=(n, 32, 32), dtype=np.uint8, chunks=(64, 32, 32))
        images[:64] = RNG.integers(0, 255, (64, 32, 32), dtype=np.uint8)
    read: list[int] = []
    original = ArrayCollection._read
    monkeypatch.setattr(ArrayCollection, "_read", lambda self, idx: read.append(len(idx)) or original(self, idx))
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(path), plugin="napari-anomalymatch")
    assert len(layers) == 1 and layers[0].data.shape == (n, 32, 32)
    viewer.dims.set_current_step(0, 0)  # napari opens stacks at their middle; go to the first image
    shown = np.asarray(layers[0]._slice.image.raw)
    np.testing.assert_array_equal(shown, images_first(path))
    assert sum(read) <= 1 + 3 * 256  # the first image, then a 1-MiB chunk per image shown: never the stack


def images_first(path):
    with h5py.File(path, "r") as handle:
        return handle["images"][0]
