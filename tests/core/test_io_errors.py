"""Bad input gets a clear error naming the file and what was expected; 'skip' mode warns."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from astropy.io import fits

from napari_anomalymatch.core.errors import (
    BadImageError,
    ConfigError,
    CorruptFileError,
    DuplicateIdError,
    EmptyCollectionError,
    ShapeMismatchError,
    SourceNotFoundError,
    UnsupportedSourceError,
)
from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.io.base import BadImageWarning

from ..conftest import write_pngs


def test_truncated_fits_names_the_file(tmp_path, m13_dir):
    truncated = tmp_path / "truncated.fits"
    raw = (m13_dir / "m13.fits").read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match=r"truncated\.fits.*(truncated|corrupt)"):
        open_collection(truncated).read([0])


def test_truncated_compressed_fits_names_the_file(tmp_path, m13_dir):
    truncated = tmp_path / "m13_rice_cut.fits"
    raw = (m13_dir / "m13_rice.fits").read_bytes()
    truncated.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(CorruptFileError, match="m13_rice_cut.fits"):
        open_collection(truncated).read([0])


def test_not_a_fits_file(tmp_path):
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"this is not FITS" * 200)
    with pytest.raises(CorruptFileError, match=r"garbage\.fits: not a readable FITS file"):
        open_collection(garbage)


def test_fits_hdu_that_does_not_exist_lists_the_hdus(tmp_path):
    path = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4))), fits.ImageHDU(np.ones((4, 4)), name="SCI")]).writeto(path)
    with pytest.raises(SourceNotFoundError, match=r"two\.fits: no HDU 'WHT'; it has \['0', '1:SCI,1'\]"):
        open_collection(path, hdu="WHT")


def test_fits_table_hdu_is_not_an_image(tmp_path):
    path = tmp_path / "table.fits"
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.zeros(3))])
    fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4))), table]).writeto(path)
    with pytest.raises(SourceNotFoundError, match="holds no image data"):
        open_collection(path, hdu=1)


def test_missing_hdf5_dataset_lists_what_exists(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("cutouts", data=np.zeros((3, 4, 4), dtype=np.uint8))
        f.create_dataset("meta/ra", data=np.zeros(3))
    expected = r"data\.h5: no HDF5 dataset 'images'; found \['cutouts', 'meta/ra'\]"
    with pytest.raises(SourceNotFoundError, match=expected):
        open_collection(path, dataset="images")


def test_hdf5_with_no_image_dataset(tmp_path):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("values", data=np.zeros(10))
    with pytest.raises(SourceNotFoundError, match="no dataset of images"):
        open_collection(path)


def test_corrupt_hdf5(tmp_path):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(CorruptFileError, match=r"broken\.h5: not a readable HDF5 file"):
        open_collection(path)


def test_mixed_shapes_name_the_odd_file(tmp_path):
    write_pngs(tmp_path / "mixed", np.zeros((2, 8, 8), np.uint8))
    write_pngs(tmp_path / "mixed", np.zeros((1, 9, 8), np.uint8), names=["odd.png"])
    collection = open_collection(tmp_path / "mixed")
    with pytest.raises(ShapeMismatchError, match=r"odd\.png: image is 9x8x1 .* collection's images are 8x8x1"):
        collection.read(np.arange(len(collection)))


def test_mixed_shapes_are_skipped_with_a_warning(tmp_path):
    write_pngs(tmp_path / "mixed", np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8))
    write_pngs(tmp_path / "mixed", np.zeros((1, 9, 8), np.uint8), names=["odd.png"])
    collection = open_collection(tmp_path / "mixed", on_error="skip")
    with pytest.warns(BadImageWarning, match=r"odd\.png.*skipped"):
        batch = collection.read(np.arange(3))
    odd = collection.index_of("odd.png")
    assert np.isnan(batch[odd]).all()
    assert np.isfinite(np.delete(batch, odd, axis=0)).all()


def test_all_nan_image_is_named(tmp_path):
    cube = np.arange(3 * 5 * 5, dtype=np.float32).reshape(3, 5, 5)
    cube[1] = np.nan
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(cube).writeto(path)
    collection = open_collection(path)
    with pytest.raises(BadImageError, match=r"cube\.fits\[0\]\[plane 1\]: has no finite pixel"):
        collection.read([0, 1, 2])
    np.testing.assert_array_equal(collection.read([0, 2]), cube[[0, 2], :, :, None])


def test_partly_nan_images_are_fine(tmp_path):
    cube = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    cube[0, 0, 0] = np.nan
    cube[1, 1, 1] = np.inf
    path = tmp_path / "holes.fits"
    fits.PrimaryHDU(cube).writeto(path)
    batch = open_collection(path).read([0, 1])
    assert np.isnan(batch[0, 0, 0, 0]) and np.isinf(batch[1, 1, 1, 0])


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(EmptyCollectionError, match=r"empty: no image files found; expected files ending in \.png"):
        open_collection(tmp_path / "empty")


def test_missing_source():
    with pytest.raises(SourceNotFoundError, match="nowhere.fits: no such file"):
        open_collection("/nowhere.fits")


def test_unsupported_file(tmp_path):
    path = tmp_path / "table.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(UnsupportedSourceError, match=r"table\.xlsx: no reader for this kind of file"):
        open_collection(path)


def test_corrupt_png_is_named_and_skippable(tmp_path):
    write_pngs(tmp_path / "pngs", np.full((2, 6, 6), 9, np.uint8))
    (tmp_path / "pngs" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    collection = open_collection(tmp_path / "pngs")
    with pytest.raises(CorruptFileError, match=r"zz_broken\.png: cannot decode image"):
        collection.read([2])
    skipping = open_collection(tmp_path / "pngs", on_error="skip")
    with pytest.warns(BadImageWarning, match="zz_broken.png"):
        assert np.isnan(skipping.read([2])).all()


def test_catalogue_naming_a_missing_file(tmp_path):
    write_pngs(tmp_path, np.zeros((1, 4, 4), np.uint8))
    catalogue = tmp_path / "cat.csv"
    with open(catalogue, "w", newline="") as handle:
        csv.writer(handle).writerows([["path"], ["img_000.png"], ["gone.png"]])
    collection = open_collection(catalogue)
    with pytest.raises(SourceNotFoundError, match=r"gone\.png: image file is missing \(it was listed in .*cat\.csv\)"):
        collection.read([1])


def test_catalogue_without_path_column(tmp_path):
    catalogue = tmp_path / "cat.csv"
    catalogue.write_text("name,ra\na,1\n")
    with pytest.raises(ValueError, match=r"cat\.csv: no column 'path' .* columns found: \['name', 'ra'\]"):
        open_collection(catalogue)


def test_catalogue_with_a_bad_label(tmp_path):
    write_pngs(tmp_path, np.zeros((1, 4, 4), np.uint8))
    catalogue = tmp_path / "cat.csv"
    catalogue.write_text("path,label\nimg_000.png,maybe\n")
    with pytest.raises(ValueError, match=r"cat\.csv, row 2: label 'maybe' is not understood"):
        open_collection(catalogue)


def test_catalogue_with_repeated_ids_names_the_file_and_the_ids(tmp_path):
    write_pngs(tmp_path, np.zeros((8, 4, 4), np.uint8))
    catalogue = tmp_path / "cat.csv"
    rows = [["path", "id"], *[[f"img_{i:03d}.png", f"obj{i % 7}"] for i in range(8)]]
    with open(catalogue, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(DuplicateIdError, match=r"cat\.csv: ids must be unique, but 'obj0' appears more") as raised:
        open_collection(catalogue)
    assert "id column" in str(raised.value)


def test_a_file_listed_twice_and_many_repeats_are_named(tmp_path):
    write_pngs(tmp_path, np.zeros((1, 4, 4), np.uint8))
    catalogue = tmp_path / "cat.csv"
    catalogue.write_text("path\nimg_000.png\nimg_000.png\n")
    with pytest.raises(DuplicateIdError, match=r"'img_000\.png' appears more than once"):
        open_collection(catalogue)
    names = [f"n{i}" for i in range(8)]
    catalogue.write_text("path,id\n" + "".join(f"img_000.png,{name}\nimg_000.png,{name}\n" for name in names))
    with pytest.raises(DuplicateIdError, match=r"'n0', 'n1', 'n2', 'n3', 'n4' and 3 more appear more than once"):
        open_collection(catalogue)


def test_an_option_the_reader_does_not_take_is_named(m13_dir):
    with pytest.raises(ConfigError, match=r"the fits reader takes no option\(s\) \['dataset'\]; it takes \['hdu'\]"):
        open_collection(m13_dir / "m13.fits", dataset="images")
    assert len(open_collection(m13_dir / "m13.fits", hdu=0)) == 1
