"""Sharded collections: finding shards, ids, lazy opening, mismatches and the native (uint8) path."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from astropy.io import fits

from napari_anomalymatch.core.config import NormalisationConfig
from napari_anomalymatch.core.errors import (
    ConfigError,
    CorruptFileError,
    ShapeMismatchError,
    SourceNotFoundError,
    UnknownIdError,
)
from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.io.registry import find_reader
from napari_anomalymatch.core.io.sharded import ShardedCollection
from napari_anomalymatch.core.loading import RangeBatches, iterate_batches
from napari_anomalymatch.core.transforms import Normaliser, prepare_batch

from ..conftest import write_pngs

RNG = np.random.default_rng(7)


def _h5(path, images, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        for name, values in extra.items():
            f.create_dataset(name, data=values)


@pytest.fixture
def three_shards(tmp_path):
    images = RNG.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    sizes = {"tile_a.h5": 5, "tile_b.h5": 4, "tile_c.h5": 3}
    start = 0
    for name, size in sizes.items():
        extra = {"ra": np.arange(start, start + size, dtype=float)} if name != "tile_b.h5" else {}
        _h5(tmp_path / "survey" / name, images[start:start + size], **extra)
        start += size
    return tmp_path / "survey", images


def test_globs_and_folders_of_containers_are_sharded_but_image_folders_are_not(tmp_path, three_shards):
    folder, _ = three_shards
    assert find_reader(str(folder / "*.h5")).name == "sharded"
    assert find_reader(folder).name == "sharded"
    assert find_reader(folder / "tile_a.h5").name == "hdf5"
    write_pngs(tmp_path / "pngs" / "night1", RNG.integers(0, 256, (2, 4, 4), dtype=np.uint8))
    assert find_reader(tmp_path / "pngs").name == "folder"  # unchanged: one folder of images
    assert find_reader(str(tmp_path / "pngs" / "*" / "*.png")).name == "folder"
    single = tmp_path / "single"
    single.mkdir()
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(single / "a.fits")
    assert find_reader(str(single / "*.fits")).name == "folder"  # 2-D FITS files are images


def test_ids_offsets_and_shard_of(three_shards):
    folder, images = three_shards
    collection = open_collection(folder)
    assert isinstance(collection, ShardedCollection)
    assert collection.names == ["tile_a.h5", "tile_b.h5", "tile_c.h5"]
    assert collection.shard_table() == (("tile_a.h5", 5), ("tile_b.h5", 4), ("tile_c.h5", 3))
    assert collection.id_of(0) == "tile_a.h5:0" and collection.id_of(5) == "tile_b.h5:0"
    assert collection.shard_of(11) == (2, 2) and collection.shard_range(1) == (5, 9)
    assert collection.index_of("tile_c.h5:1") == 10
    assert collection.ids_of([11, 0, 6]) == ["tile_c.h5:2", "tile_a.h5:0", "tile_b.h5:1"]
    np.testing.assert_array_equal(collection.read([11, 0, 6]), images[[11, 0, 6]].astype(np.float32))
    with pytest.raises(UnknownIdError, match=r"'<shard>:<id in shard>'"):
        collection.index_of("tile_z.h5:0")
    with pytest.raises(UnknownIdError, match="shard 'tile_a.h5' has no image '9'"):
        collection.index_of("tile_a.h5:9")


def test_metadata_fills_gaps_between_shards(three_shards):
    collection = open_collection(three_shards[0])
    meta = collection.metadata([0, 6, 10])
    assert list(meta["shard"]) == ["tile_a.h5", "tile_b.h5", "tile_c.h5"]
    np.testing.assert_array_equal(meta["ra"][[0, 2]], [0.0, 10.0])
    assert np.isnan(meta["ra"][1])  # tile_b has no ra


def test_only_a_few_shards_are_open_at_once(three_shards):
    folder, images = three_shards
    collection = open_collection(folder, reader="sharded", open_shards=1)
    np.testing.assert_array_equal(collection.read(np.arange(12)), images.astype(np.float32))
    assert len(collection._open) == 1
    clone = pickle.loads(pickle.dumps(collection))
    assert len(clone._open) == 0
    np.testing.assert_array_equal(clone.read([4, 5]), images[[4, 5]].astype(np.float32))


def test_catalogue_sizes_spare_opening_every_shard(tmp_path):
    images = RNG.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    _h5(tmp_path / "a.h5", images[:4])
    (tmp_path / "b.h5").write_bytes(b"not HDF5 at all")  # broken, but not opened until read
    listing = tmp_path / "shards.csv"
    listing.write_text("path,n_images\na.h5,4\nb.h5,2\n")
    collection = open_collection(listing)
    assert len(collection) == 6 and collection.shard_of(5) == (1, 1) and collection.id_of(3) == "a.h5:3"
    assert collection.fingerprint() == open_collection(listing).fingerprint()
    np.testing.assert_array_equal(collection.read([3])[0, ..., 0], images[3])
    with pytest.raises(CorruptFileError, match=r"b\.h5: not a readable HDF5 file"):
        collection.read([4])


def test_catalogue_errors_name_the_row(tmp_path):
    listing = tmp_path / "shards.csv"
    listing.write_text("path,n_images\nmissing.h5,3\n")
    with pytest.raises(SourceNotFoundError, match=r"shards\.csv, row 2: shard .*missing\.h5 does not exist"):
        open_collection(listing)
    _h5(tmp_path / "a.h5", np.zeros((2, 4, 4), np.uint8))
    listing.write_text("path,n_images\na.h5,-1\n")
    with pytest.raises(ConfigError, match="n_images must be a positive integer; got '-1'"):
        open_collection(listing)
    listing.write_text("path,name\na.h5,bad:name\n")
    with pytest.raises(ConfigError, match="shard name 'bad:name' cannot be used"):
        open_collection(listing, reader="sharded")


def test_shards_must_agree_on_shape_and_type(tmp_path):
    _h5(tmp_path / "s" / "a.h5", np.zeros((2, 8, 8), np.uint8))
    _h5(tmp_path / "s" / "b.h5", np.zeros((2, 6, 6), np.uint8))
    with pytest.raises(ShapeMismatchError, match=r"b\.h5 \(shard 'b\.h5' .*\(6, 6, 1\).*same shape"):
        open_collection(tmp_path / "s")
    _h5(tmp_path / "t" / "a.h5", np.zeros((2, 8, 8), np.uint8))
    _h5(tmp_path / "t" / "b.h5", np.zeros((2, 8, 8), np.uint16))
    with pytest.raises(ShapeMismatchError, match=r"pixel range \(0\.0, 65535\.0\), not \(0\.0, 255\.0\)"):
        open_collection(tmp_path / "t")


def test_range_batches_never_straddle_segments():
    plan = RangeBatches([(0, 5), (5, 12), (20, 21)], batch_size=4)
    assert [plan.bounds(k) for k in range(len(plan))] == [(0, 4), (4, 5), (5, 9), (9, 12), (20, 21)]
    np.testing.assert_array_equal(plan[3], [9, 10, 11])
    with pytest.raises(IndexError):
        plan.bounds(5)


@pytest.mark.parametrize(("size", "crop"), [(8, 1.0), (5, 1.0), (16, 1.0), (8, 0.5), (5, 0.7)])
def test_native_uint8_batches_match_the_float_path(three_shards, size, crop):
    collection = open_collection(three_shards[0])
    normaliser = Normaliser(NormalisationConfig(crop=crop), collection.value_range)
    assert collection.native_format is not None and normaliser.fixed_affine() is not None
    batches = [np.arange(0, 7), np.arange(7, 12)]
    with iterate_batches(collection, normaliser, size, batches, num_workers=0) as loaded:
        native = [images for images, _ in loaded]
    for images, batch in zip(native, batches):
        expected = prepare_batch(collection.read(batch), normaliser, size)
        assert images.shape == expected.shape
        np.testing.assert_allclose(images.numpy(), expected.numpy(), rtol=0, atol=1e-6)


def test_encoded_png_bytes_travel_as_uint8(tmp_path):
    import io

    from PIL import Image

    images = RNG.integers(0, 256, (3, 6, 6, 3), dtype=np.uint8)
    path = tmp_path / "png.h5"
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("png", (3,), dtype=h5py.vlen_dtype(np.uint8))
        for i, image in enumerate(images):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            dataset[i] = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    collection = open_collection(path)
    native, valid = collection.read_native([2, 0])
    assert native.dtype == np.uint8 and valid.all()
    np.testing.assert_array_equal(native, images[[2, 0]])
    normaliser = Normaliser(NormalisationConfig(), collection.value_range)
    with iterate_batches(collection, normaliser, 6, [np.array([0, 1, 2])], num_workers=0) as loaded:
        (got, _), = list(loaded)
    np.testing.assert_array_equal(got.numpy(), prepare_batch(collection.read([0, 1, 2]), normaliser, 6).numpy())


def test_a_size_cache_spares_opening_unchanged_shards(tmp_path, three_shards, monkeypatch):
    folder, images = three_shards
    opened = []
    original = ShardedCollection._open_shard

    def spy(self, shard):
        opened.append(shard.name)
        return original(self, shard)

    monkeypatch.setattr(ShardedCollection, "_open_shard", spy)
    cache = tmp_path / "sizes.json"
    first = open_collection(folder, size_cache=cache)
    assert opened == ["tile_a.h5", "tile_b.h5", "tile_c.h5"] and cache.exists()
    opened.clear()
    again = open_collection(folder, size_cache=cache)
    assert opened == ["tile_a.h5"]  # only the first, for the images' shape and type
    assert again.shard_table() == first.shard_table() and again.fingerprint() == first.fingerprint()
    _h5(folder / "tile_c.h5", images[:2])  # a shard changed: its size is learnt again
    opened.clear()
    changed = open_collection(folder, size_cache=cache)
    assert opened == ["tile_a.h5", "tile_c.h5"] and len(changed) == 11
    opened.clear()
    open_collection(folder, size_cache=cache, dataset="images")  # other options: another cache
    assert opened == ["tile_a.h5", "tile_b.h5", "tile_c.h5"]
