"""Inputs as users have them: spreadsheet CSVs, blank or non-finite images, any Unicode name, large images."""

from __future__ import annotations

import numpy as np
import pytest

from napari_anomalymatch.core.errors import ConfigError, CorruptFileError
from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.labelfiles import read_label_file
from napari_anomalymatch.core.labels import ANOMALY, NORMAL
from napari_anomalymatch.core.review.export import ranking_table, write_table

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
