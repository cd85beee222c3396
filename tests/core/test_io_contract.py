"""Every reader honours the same ImageCollection contract, on real files."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from napari_anomalymatch.core.errors import UnknownIdError
from napari_anomalymatch.core.io import open_collection

from ..conftest import write_pngs

RNG = np.random.default_rng(42)


def _grey_png(tmp: Path):
    images = RNG.integers(0, 256, (5, 12, 10), dtype=np.uint8)
    write_pngs(tmp / "grey", images)
    return tmp / "grey", {}, images[..., None] / 255.0


def _rgb_png(tmp: Path):
    images = RNG.integers(0, 256, (4, 9, 9, 3), dtype=np.uint8)
    write_pngs(tmp / "rgb", images)
    return tmp / "rgb", {}, images / 255.0


def _rgba_png(tmp: Path):
    images = RNG.integers(0, 256, (3, 8, 8, 4), dtype=np.uint8)
    write_pngs(tmp / "rgba", images)
    return tmp / "rgba", {}, images[..., :3] / 255.0


def _png16(tmp: Path):
    images = RNG.integers(0, 65536, (3, 8, 8), dtype=np.uint16)
    folder = tmp / "png16"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")
    return folder, {}, images[..., None] / 65535.0


def _tiff_rgb16_glob(tmp: Path):
    import tifffile

    images = RNG.integers(0, 65536, (3, 6, 7, 3), dtype=np.uint16)
    folder = tmp / "tiff"
    folder.mkdir()
    for i, image in enumerate(images):
        tifffile.imwrite(folder / f"t{i}.tif", image, photometric="rgb")
    return str(folder / "t*.tif"), {}, images / 65535.0


def _jpeg_list(tmp: Path):
    images = np.full((2, 16, 16, 3), 128, dtype=np.uint8)
    images[1] = 200
    images[:, :8, :8] = 30  # one flat 8x8 JPEG block apart (kept exact): blank images are refused
    paths = write_pngs(tmp / "jpeg", images, names=["a.jpg", "b.jpg"])
    return [str(p) for p in paths], {}, images / 255.0


def _fits_files(tmp: Path):
    images = RNG.normal(100, 10, (4, 10, 11)).astype(np.float32)
    folder = tmp / "fits"
    folder.mkdir()
    for i, image in enumerate(images):
        fits.PrimaryHDU(image).writeto(folder / f"cutout_{i}.fits")
    return folder, {}, images[..., None]


def _fits_cube(tmp: Path):
    cube = RNG.normal(0, 1, (6, 8, 8)).astype(np.float32)
    path = tmp / "cube.fits"
    fits.PrimaryHDU(cube).writeto(path)
    return path, {}, cube[..., None]


def _fits_scaled_cube(tmp: Path):
    raw = RNG.integers(-1000, 1000, (3, 5, 5), dtype=np.int16)
    path = tmp / "scaled.fits"
    fits.PrimaryHDU(raw).writeto(path)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["BSCALE"] = 0.5
        hdul[0].header["BZERO"] = 10.0
    return path, {}, (raw.astype(np.float32) * 0.5 + 10.0)[..., None]


def _fits_three_extensions(tmp: Path):
    bands = RNG.normal(0, 1, (3, 7, 7)).astype(np.float32)
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(b, name=n) for b, n in zip(bands, "GRI")]
    path = tmp / "gri.fits"
    fits.HDUList(hdus).writeto(path)
    return path, {"hdu": ["G", "R", "I"]}, np.moveaxis(bands, 0, -1)[None]


def _fits_compressed_cube(tmp: Path):
    cube = RNG.integers(0, 500, (4, 16, 16)).astype(np.int32)
    path = tmp / "cube.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(cube, compression_type="RICE_1")]).writeto(path)
    return path, {}, cube[..., None].astype(np.float32)


def _fits_all_extensions(tmp: Path):
    planes = RNG.normal(0, 1, (3, 6, 6)).astype(np.float32)
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(p, name="SCI", ver=i + 1) for i, p in enumerate(planes)]
    path = tmp / "mef.fits"
    fits.HDUList(hdus).writeto(path)
    return path, {"hdu": "all"}, planes[..., None]


def _hdf5_uint8(tmp: Path):
    images = RNG.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    path = tmp / "cutouts.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(4, 8, 8))
        f.create_dataset("ra", data=np.linspace(10, 20, 20))
        f.create_dataset("dec", data=np.linspace(-5, 5, 20))
    return path, {}, images[..., None].astype(np.float32)


def _hdf5_nchw_float(tmp: Path):
    images = RNG.normal(0, 1, (5, 2, 6, 6)).astype(np.float64)
    path = tmp / "nchw.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("group/cubes", data=images)
    return path, {"dataset": "group/cubes", "layout": "NCHW"}, np.moveaxis(images, 1, -1).astype(np.float32)


def _hdf5_encoded(tmp: Path):
    import io

    images = RNG.integers(0, 256, (4, 10, 10, 3), dtype=np.uint8)
    path = tmp / "jpeg_bytes.h5"
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("png", (4,), dtype=h5py.vlen_dtype(np.uint8))
        for i, image in enumerate(images):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            dataset[i] = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
        f.create_dataset("names", data=np.array([f"obj{i}".encode() for i in range(4)]))
    return path, {"dataset": "png", "ids": "names"}, images / 255.0


def _zarr_group(tmp: Path):
    import zarr

    images = RNG.integers(0, 65535, (7, 5, 5, 3), dtype=np.uint16)
    path = tmp / "cutouts.zarr"
    group = zarr.open_group(str(path), mode="w")
    array = group.create_array("images", shape=images.shape, dtype=images.dtype, chunks=(2, 5, 5, 3))
    array[:] = images
    return path, {}, images.astype(np.float32)


def _catalogue(tmp: Path):
    images = RNG.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    write_pngs(tmp / "cat" / "img", images)
    path = tmp / "cat" / "catalogue.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "id", "label", "ra", "dec"])
        for i in range(3):
            writer.writerow([f"img/img_{i:03d}.png", f"src{i}", ["anomaly", "", "normal"][i], 150.0 + i, 2.0])
    return path, {}, images[..., None] / 255.0


def _ecsv_catalogue(tmp: Path):
    from astropy.table import Table

    images = RNG.integers(0, 256, (2, 8, 8), dtype=np.uint8)
    write_pngs(tmp / "ecsv", images)
    path = tmp / "ecsv" / "catalogue.ecsv"
    Table({"path": ["img_000.png", "img_001.png"], "ra": [1.0, 2.0], "dec": [3.0, 4.0]}).write(path)
    return path, {}, images[..., None] / 255.0


def _write_h5(path: Path, images: np.ndarray, **extra: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        for name, values in extra.items():
            f.create_dataset(name, data=values)


def _sharded_hdf5_glob(tmp: Path):
    images = RNG.integers(0, 256, (8, 6, 6, 3), dtype=np.uint8)
    for name, part in (("b.h5", images[4:5]), ("a.h5", images[:4]), ("c.h5", images[5:])):
        _write_h5(tmp / "shards" / name, part)
    (tmp / "shards" / "notes.txt").write_text("not a shard")
    return str(tmp / "shards" / "*.h5"), {}, images.astype(np.float32)


def _sharded_zarr_folder(tmp: Path):
    import zarr

    images = RNG.integers(0, 65535, (5, 4, 4), dtype=np.uint16)
    for name, part in (("s0.zarr", images[:2]), ("s1.zarr", images[2:])):
        array = zarr.open_array(str(tmp / "zarrs" / name), mode="w", shape=part.shape, dtype=part.dtype,
                                chunks=(1, 4, 4))
        array[:] = part
    return tmp / "zarrs", {}, images[..., None].astype(np.float32)


def _sharded_fits_cubes(tmp: Path):
    cubes = RNG.normal(0, 1, (5, 6, 7)).astype(np.float32)
    folder = tmp / "cubes"
    folder.mkdir()
    fits.PrimaryHDU(cubes[:3]).writeto(folder / "tile1.fits")
    fits.PrimaryHDU(cubes[3:]).writeto(folder / "tile2.fits")
    return str(folder / "tile*.fits"), {}, cubes[..., None]


def _sharded_catalogue(tmp: Path):
    images = RNG.integers(0, 256, (6, 5, 5), dtype=np.uint8)
    _write_h5(tmp / "survey" / "north.h5", images[:4], ra=np.arange(4.0))
    _write_h5(tmp / "survey" / "south.h5", images[4:])
    path = tmp / "survey" / "shards.csv"
    path.write_text("path,name,n_images\nnorth.h5,N,4\nsouth.h5,S,2\n")
    return path, {}, images[..., None].astype(np.float32)


def _sharded_image_folders(tmp: Path):
    images = RNG.integers(0, 256, (5, 8, 8), dtype=np.uint8)
    write_pngs(tmp / "folders" / "night1", images[:2])
    write_pngs(tmp / "folders" / "night2", images[2:])
    return tmp / "folders", {"reader": "sharded"}, images[..., None] / 255.0


def _mosaic_catalogue(tmp: Path):
    from astropy.nddata import Cutout2D

    from .mosaics import coded_pixels, positions, write_catalogue, write_two_band_mosaic

    bands = write_two_band_mosaic(tmp / "tiles")
    spots = [(20.3, 30.2, 0), (50.2, 25.6, 1), (40.7, 20.4, 0)]
    catalogue = write_catalogue(tmp / "sources.csv", *positions(spots))
    expected = [np.stack([Cutout2D(coded_pixels(band, tile), (x, y), 8).data for band in (1, 2, 2)], axis=-1)
                for x, y, tile in spots]
    return str(catalogue), {"mosaic": bands, "cutout_size": "8px", "channels": "1,2,2"}, expected


FACTORIES = {
    "png-grey": _grey_png, "png-rgb": _rgb_png, "png-rgba": _rgba_png, "png-16bit": _png16,
    "tiff-16bit-rgb-glob": _tiff_rgb16_glob, "jpeg-list": _jpeg_list, "fits-files": _fits_files,
    "fits-cube": _fits_cube, "fits-bscale-bzero": _fits_scaled_cube,
    "fits-3-extensions": _fits_three_extensions, "fits-rice-cube": _fits_compressed_cube,
    "fits-all-extensions": _fits_all_extensions, "hdf5-uint8": _hdf5_uint8,
    "hdf5-nchw-float": _hdf5_nchw_float, "hdf5-encoded-png": _hdf5_encoded,
    "zarr-group": _zarr_group, "csv-catalogue": _catalogue, "ecsv-catalogue": _ecsv_catalogue,
    "sharded-hdf5-glob": _sharded_hdf5_glob, "sharded-zarr-folder": _sharded_zarr_folder,
    "sharded-fits-cubes": _sharded_fits_cubes, "sharded-catalogue": _sharded_catalogue,
    "sharded-image-folders": _sharded_image_folders, "mosaic-catalogue": _mosaic_catalogue,
}


@pytest.fixture(params=sorted(FACTORIES))
def case(request, tmp_path):
    source, options, expected = FACTORIES[request.param](tmp_path)
    return request.param, source, options, np.asarray(expected, dtype=np.float32)


def test_reads_every_image_as_float32_nhwc(case):
    name, source, options, expected = case
    collection = open_collection(source, **options)
    assert len(collection) == len(expected)
    assert collection.shape == expected.shape[1:]
    batch = collection.read(np.arange(len(collection)))
    assert batch.dtype == np.float32
    atol = 2.5 / 255 if "jpeg" in name else 1e-5
    np.testing.assert_allclose(batch, expected, atol=atol, rtol=1e-5)


def test_random_access_keeps_the_order_asked_for(case):
    _, source, options, expected = case
    collection = open_collection(source, **options)
    n = len(collection)
    indices = [n - 1, 0, n - 1] if n > 1 else [0, 0]
    batch = collection.read(indices)
    for position, index in enumerate(indices):
        np.testing.assert_array_equal(batch[position], collection.read_one(index))


def test_ids_are_unique_stable_and_invertible(case):
    _, source, options, _ = case
    first = open_collection(source, **options)
    second = open_collection(source, **options)
    ids = first.ids()
    assert len(set(ids)) == len(ids) == len(first)
    assert ids == second.ids()
    assert first.fingerprint() == second.fingerprint()
    for index in range(len(first)):
        assert first.index_of(ids[index]) == index


def test_unknown_ids_and_indices_are_named(case):
    _, source, options, _ = case
    collection = open_collection(source, **options)
    with pytest.raises(UnknownIdError, match="no image with id 'no-such-image'"):
        collection.index_of("no-such-image")
    with pytest.raises(IndexError, match=f"outside 0..{len(collection) - 1}"):
        collection.read([len(collection)])


def test_survives_pickling_for_worker_processes(case):
    _, source, options, _ = case
    collection = open_collection(source, **options)
    collection.read([0])  # opens file handles, which must not be pickled
    clone = pickle.loads(pickle.dumps(collection))
    np.testing.assert_array_equal(clone.read([0]), collection.read([0]))
    assert clone.ids() == collection.ids()


def test_catalogue_carries_labels_and_coordinates(tmp_path):
    source, _, _ = _catalogue(tmp_path)
    collection = open_collection(source)
    assert collection.labels == {"src0": 1, "src2": 0}
    meta = collection.metadata([2, 0])
    np.testing.assert_allclose(meta["ra"], [152.0, 150.0])
    assert meta["path"][0].endswith("img_002.png")


def test_hdf5_metadata_and_ids(tmp_path):
    path, _, _ = _hdf5_uint8(tmp_path)
    collection = open_collection(path)
    assert collection.value_range == (0.0, 255.0)
    np.testing.assert_allclose(collection.metadata([0, 19])["ra"], [10.0, 20.0])
    encoded, options, _ = _hdf5_encoded(tmp_path)
    named = open_collection(encoded, **options)
    assert named.ids() == ["obj0", "obj1", "obj2", "obj3"]


@pytest.mark.parametrize("variant", ["m13_rice.fits", "m13_gzip.fits", "m13_hcomp.fits", "m13_plio.fits"])
def test_real_m13_tile_compressed_matches_uncompressed(m13_dir, variant):
    reference = open_collection(m13_dir / "m13.fits")
    assert len(reference) == 1 and reference.shape == (300, 300, 1)
    plain = reference.read([0])
    assert plain.std() > 0 and np.isfinite(plain).all()
    compressed = open_collection(m13_dir / variant)
    assert compressed.shape == (300, 300, 1)
    # RICE, GZIP and PLIO are lossless for integer data; HCOMPRESS here too (scale 0)
    np.testing.assert_allclose(compressed.read([0]), plain, atol=1e-3)


def test_real_m13_values_follow_the_header(m13_dir):
    with fits.open(m13_dir / "m13.fits") as hdul:
        expected = hdul[0].data.astype(np.float32)
    image = open_collection(m13_dir / "m13.fits").read_one(0)[..., 0]
    np.testing.assert_array_equal(image, expected)
