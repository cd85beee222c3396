"""Inputs as users have them: spreadsheet CSVs, blank or non-finite images, any Unicode name, large images."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_anomalymatch.core.config import NormalisationConfig
from napari_anomalymatch.core.errors import BadImageError, ConfigError, CorruptFileError
from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.io.base import BadImageWarning
from napari_anomalymatch.core.io.labelfiles import read_label_file
from napari_anomalymatch.core.io.usable import plane_faults
from napari_anomalymatch.core.labels import ANOMALY, NORMAL
from napari_anomalymatch.core.loading import load_images
from napari_anomalymatch.core.review.export import ranking_table, write_table
from napari_anomalymatch.core.transforms import Normaliser

from ..conftest import blob_images, write_pngs

# How spreadsheet programs save the same table: Excel's "CSV UTF-8", European locales, tabs, Windows.
SPREADSHEET_CSVS = {
    "byte-order mark": ("\ufeff", ",", "\n"),
    "semicolons": ("", ";", "\n"),
    "tabs": ("", "\t", "\n"),
    "windows line endings": ("", ",", "\r\n"),
    "all at once": ("\ufeff", ";", "\r\n"),
}


def spreadsheet_csv(path, rows, mark, separator, newline):
    text = mark + newline.join(separator.join(row) for row in rows) + newline
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize("style", SPREADSHEET_CSVS)
def test_spreadsheet_csvs_read_as_catalogues_and_label_files(tmp_path, style):
    write_pngs(tmp_path, blob_images(3)[0])
    decimal = "," if SPREADSHEET_CSVS[style][1] == ";" else "."
    rows = [["path", "id", "label", "ra"], ["img_000.png", "a b", "anomaly", f"10{decimal}5"],
            ["img_001.png", "c", "", "11"], ["img_002.png", "d", "normal", f"12{decimal}25"]]
    catalogue = spreadsheet_csv(tmp_path / "cat.csv", rows, *SPREADSHEET_CSVS[style])
    collection = open_collection(catalogue)
    assert collection.ids() == ["a b", "c", "d"]
    assert collection.labels == {"a b": ANOMALY, "d": NORMAL}
    np.testing.assert_allclose(collection.metadata([0, 1, 2])["ra"], [10.5, 11.0, 12.25])
    labels = spreadsheet_csv(tmp_path / "labels.csv", [["id", "label"], ["c", "anomaly"], ["d", "normal"]],
                             *SPREADSHEET_CSVS[style])
    assert read_label_file(labels, collection) == [("c", ANOMALY), ("d", NORMAL)]


def test_a_csv_that_is_not_utf8_names_the_file_byte_and_fix(tmp_path):
    write_pngs(tmp_path, blob_images(1)[0], names=["café.png"])
    (tmp_path / "cat.csv").write_bytes("path\ncafé.png\n".encode("latin-1"))
    with pytest.raises(CorruptFileError, match=r"cat\.csv: byte 8 \(b'\\xe9'\) is not UTF-8 text; save the file as "
                                               r"'CSV UTF-8'"):
        open_collection(tmp_path / "cat.csv")


def test_a_coordinate_that_is_no_number_names_the_row(tmp_path):
    write_pngs(tmp_path, blob_images(2)[0])
    (tmp_path / "cat.csv").write_text("path,ra\nimg_000.png,10\nimg_001.png,ten\n")
    with pytest.raises(ConfigError, match=r"cat\.csv, row 3: ra 'ten' is not a number"):
        open_collection(tmp_path / "cat.csv")


@pytest.mark.parametrize("suffix", [".csv", ".ecsv", ".fits", ".xml", ".parquet"])
def test_every_export_format_keeps_unicode_ids_and_paths(tmp_path, suffix):
    from astropy.table import Table

    folder = tmp_path / "données"
    write_pngs(folder, blob_images(3)[0], names=["🚀 ring.png", "galaxie_é.png", "plain.png"])
    collection = open_collection(folder)
    scores = np.array([0.2, 0.9, 0.5], dtype=np.float32)
    table = ranking_table(collection, scores, {"plain.png": ANOMALY}, 1)
    table.meta["catalogue"] = str(folder / "known.csv")
    written = write_table(table, tmp_path / "données" / f"out{suffix}")
    back = Table.read(written, format="parquet") if suffix == ".parquet" else Table.read(written)
    back.convert_bytestring_to_unicode()
    ids = [collection.id_of(int(i)) for i in np.argsort(-scores)]
    assert sorted(ids) == ["galaxie_é.png", "plain.png", "🚀 ring.png"]
    assert list(back["id"]) == ids
    assert list(back["path"]) == [str(folder / name) for name in ids]
    assert list(back["label"]) == ["anomaly" if i == "plain.png" else "unlabelled" for i in ids]
    if suffix == ".fits":  # header text is ASCII: backslash escapes
        header = {key.lower(): value for key, value in back.meta.items()}
        assert header["catalogue"] == str(folder / "known.csv").replace("é", "\\xe9")


def zarr_with_missing_chunks(path, n=12, missing=(3,)):
    """A Zarr store of ``n`` 8x8 float images in chunks of 2, with the chunks ``missing`` deleted."""
    import shutil

    import zarr

    group = zarr.open_group(str(path), mode="w")
    array = group.create_array("images", shape=(n, 8, 8), chunks=(2, 8, 8), dtype="float32")
    array[:] = np.random.default_rng(0).random((n, 8, 8), dtype=np.float32)
    for chunk in missing:
        shutil.rmtree(path / "images" / "c" / str(chunk))
    return path


def test_a_missing_zarr_chunk_names_the_image_and_the_chunk(tmp_path):
    collection = open_collection(zarr_with_missing_chunks(tmp_path / "stack.zarr"))
    np.testing.assert_array_equal(collection.read([0, 5]).shape, (2, 8, 8, 1))
    with pytest.raises(BadImageError, match=r"stack\.zarr\[6\]: is blank: every pixel is 0, as its chunk 'c/3/0/0' "
                                            r"is missing from the store .*--skip-bad"):
        collection.read(np.arange(12))


def test_skip_bad_leaves_blank_images_out_of_loading_with_a_warning(tmp_path):
    collection = open_collection(zarr_with_missing_chunks(tmp_path / "stack.zarr", missing=(1, 4)), on_error="skip")
    normaliser = Normaliser(NormalisationConfig(method="linear"), collection.value_range)
    with pytest.warns(BadImageWarning, match=r"stack\.zarr\[2\]: is blank.*'c/1/0/0'.*skipped"):
        loading = load_images(collection, normaliser, 8, np.arange(12), batch_size=5, num_workers=0)
        with pytest.raises(StopIteration) as finished:
            while True:
                next(loading)
    images, valid = finished.value.value
    np.testing.assert_array_equal(np.flatnonzero(~valid), [2, 3, 8, 9])
    assert images[valid].float().std() > 0


def test_an_all_nan_channel_of_a_cube_names_its_hdu(tmp_path):
    from astropy.io import fits

    cube = np.random.default_rng(0).random((3, 6, 6), dtype=np.float32)
    hole = cube.copy()
    hole[1] = np.nan
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube), fits.ImageHDU(hole)]).writeto(tmp_path / "cube.fits")
    collection = open_collection(tmp_path / "cube.fits", hdu=[1, 2])
    assert collection.read([0, 2]).shape == (2, 6, 6, 2)
    with pytest.raises(BadImageError, match=r"cube\.fits\[1\]\[plane 1\]: channel 1 \(HDU 2\) has no finite pixel "
                                            r"of its 2 channels; expected every channel to hold data"):
        collection.read([0, 1, 2])
    skipping = open_collection(tmp_path / "cube.fits", hdu=[1, 2], on_error="skip")
    with pytest.warns(BadImageWarning, match=r"plane 1\].*skipped"):
        batch, valid = skipping.read_valid([0, 1, 2])
    assert valid.tolist() == [True, False, True] and np.isnan(batch[1]).all() and np.isfinite(batch[[0, 2]]).all()


def test_blank_integer_images_are_refused_on_the_native_path_too(tmp_path):
    import h5py

    with h5py.File(tmp_path / "stack.h5", "w") as handle:  # unwritten chunks read as the fill value 7
        data = handle.create_dataset("images", shape=(8, 4, 4), dtype=np.uint8, chunks=(2, 4, 4), fillvalue=7)
        data[:4] = np.arange(4 * 4 * 4, dtype=np.uint8).reshape(4, 4, 4)
    with pytest.raises(BadImageError, match=r"stack\.h5.*\[4\]: is blank: every pixel is 7"):
        open_collection(tmp_path / "stack.h5").read_native(np.arange(8))
    skipping = open_collection(tmp_path / "stack.h5", on_error="skip")
    with pytest.warns(BadImageWarning, match="is blank"):
        _, valid = skipping.read_native(np.arange(8))
    assert valid.tolist() == [True] * 4 + [False] * 4
    assert open_collection(tmp_path / "stack.h5").read([4], check=False).max() == pytest.approx(7)  # shown as stored


@pytest.mark.parametrize("shape", [(6, 61, 61, 3), (6, 8, 8, 1), (6, 5, 3, 2)])
def test_plane_faults_agree_with_a_pixel_by_pixel_look(shape):
    batch = np.random.default_rng(0).random(shape, dtype=np.float32)
    batch[1] = 5.0  # blank
    batch[2, ..., -1] = np.nan  # one empty channel
    batch[3, ..., 0] = 2.0
    batch[3, 0, 0, 0] = np.nan  # one value besides NaN: blank
    batch[4, 0, 0, 0] = np.inf  # a hole, the rest varies
    batch[5, ..., 0] = 1.0
    batch[5, 0, 0, 0] = -np.inf  # one finite value besides inf: blank
    empty, constant = plane_faults(batch)
    for image, channel in np.ndindex(shape[0], shape[-1]):
        finite = batch[image, ..., channel][np.isfinite(batch[image, ..., channel])]
        assert empty[image, channel] == (finite.size == 0)
        assert constant[image, channel] == (finite.size > 0 and finite.min() == finite.max())
    assert plane_faults(np.full((2, 4, 4, 3), 9, np.uint8))[1].all()


def test_a_large_fits_image_is_read_block_averaged_a_band_at_a_time(tmp_path, monkeypatch):
    from astropy.io import fits

    from napari_anomalymatch.core.io import fitsfile

    monkeypatch.setattr(fitsfile, "MAX_SIDE", 17)  # as a 20,000^2 tile is against 4,096: blocks of 3
    monkeypatch.setattr(fitsfile, "BAND_BYTES", 4 * 50 * 3)  # bands of 3 rows: many reads, one partial
    image = np.random.default_rng(0).normal(100, 5, (40, 50)).astype(np.float32)
    image[:3, :3] = np.nan  # a NaN block apart from one pixel
    image[0, 0] = 7.0
    image[9:12, 9:12] = np.nan  # an all-NaN block
    fits.PrimaryHDU(image).writeto(tmp_path / "tile.fits")
    collection = open_collection(tmp_path / "tile.fits")
    assert collection.shape == (14, 17, 1)  # 40 x 50 in blocks of 3 (edges partial)
    padded = np.full((42, 51), np.nan, np.float32)
    padded[:40, :50] = image
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(padded.reshape(14, 3, 17, 3), axis=(1, 3))
    np.testing.assert_allclose(collection.read([0])[0, ..., 0], expected, rtol=1e-6)
    assert collection.read([0])[0, 0, 0, 0] == 7.0 and np.isnan(collection.read([0])[0, 3, 3, 0])


def test_init_on_a_store_with_missing_chunks_is_one_clear_line_or_a_skip(tmp_path, capsys):
    from napari_anomalymatch.cli import main
    from napari_anomalymatch.core.session import Session

    store = zarr_with_missing_chunks(tmp_path / "stack.zarr", missing=(2,))
    assert main(["init", str(tmp_path / "refused"), str(store), "--size", "32", "--workers", "0"]) == 2
    error = capsys.readouterr().err.strip()
    assert "Traceback" not in error and "'c/2/0/0' is missing from the store" in error and "--skip-bad" in error
    assert not (tmp_path / "refused").exists()
    assert main(["init", str(tmp_path / "kept"), str(store), "--size", "32", "--workers", "0", "--skip-bad"]) == 0
    assert re.search(r"warning: .*stack\.zarr\[4\]: is blank.*skipped", capsys.readouterr().err)  # said at init
    assert Session.open(tmp_path / "kept").config.data.on_error == "skip"
