"""One table of column names: image catalogues, label files and known-object catalogues accept the same."""

import csv

import numpy as np
import pytest

from napari_anomalymatch.core.io.columns import COLUMN_NAMES
from napari_anomalymatch.core.io.labelfiles import read_label_file
from napari_anomalymatch.core.io.registry import open_collection
from napari_anomalymatch.core.review.known import read_known_catalogue

from ..conftest import write_pngs

RNG = np.random.default_rng(7)


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(("ra", "dec"), [("RAJ2000", "DEJ2000"), ("ra_deg", "dec_deg"), ("alpha", "delta")])
def test_an_image_catalogue_reads_every_coordinate_name_a_known_catalogue_does(tmp_path, ra, dec):
    write_pngs(tmp_path / "img", RNG.integers(0, 256, (2, 8, 8), dtype=np.uint8))
    rows = [[f"img/img_{i:03d}.png", f"src{i}", 150.0 + i, 2.0 - i] for i in range(2)]
    catalogue = _write_csv(tmp_path / "images.csv", ["filepath", "image_id", ra, dec], rows)
    known = _write_csv(tmp_path / "known.csv", ["name", ra, dec], [["a", 150.0, 2.0], ["b", 151.0, 1.0]])
    collection = open_collection(catalogue)
    meta = collection.metadata([1, 0])
    np.testing.assert_allclose(meta["ra"], [151.0, 150.0])
    np.testing.assert_allclose(meta["dec"], [1.0, 2.0])
    found = read_known_catalogue(known)
    assert (found.ra_column, found.dec_column) == (ra, dec)
    np.testing.assert_allclose(found.ra, meta["ra"][::-1])


def test_a_label_file_names_its_images_as_a_catalogue_does(tmp_path):
    write_pngs(tmp_path / "img", RNG.integers(0, 256, (2, 8, 8), dtype=np.uint8))
    collection = open_collection(tmp_path / "img")
    labels = _write_csv(tmp_path / "labels.csv", ["filepath", "class"],
                        [[str(tmp_path / "img" / "img_001.png"), "anomaly"]])
    assert read_label_file(labels, collection) == [(collection.ids()[1], 1)]


def test_each_kind_has_its_names_in_lower_case_once():
    for kind, names in COLUMN_NAMES.items():
        assert names and all(name == name.lower() for name in names), kind
        assert len(set(names)) == len(names), kind
