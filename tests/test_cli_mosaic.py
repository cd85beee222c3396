"""``anomalymatch init`` from survey mosaics: tiles per band with a catalogue, or detected sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from napari_anomalymatch.cli import main
from napari_anomalymatch.core.errors import AnomalyMatchError
from napari_anomalymatch.core.evaluation.manifest import read_benchmark
from napari_anomalymatch.core.io.detect import DETECTED_CATALOGUE
from napari_anomalymatch.core.io.mosaic import MosaicCollection, MosaicWarning
from napari_anomalymatch.core.session import Session

from .core.mosaics import positions, write_catalogue, write_two_band_mosaic
from .test_cli import TINY


def test_init_cuts_a_catalogue_from_two_bands_and_reports_the_lost(tmp_path, capsys):
    bands = write_two_band_mosaic(tmp_path / "tiles")
    ra, dec = positions([(20.3, 30.2, 0), (50.2, 25.6, 1)])
    catalogue = write_catalogue(tmp_path / "cat.csv", np.append(ra, 10.0), np.append(dec, -40.0),
                                ids=["a", "b", "lost"])
    code = main(["init", str(tmp_path / "s"), "--mosaic", bands[0], "--mosaic", bands[1],
                 "--catalogue", str(catalogue), "--cutout-size", "3.2arcsec", "--channels", "mean", "--crop", "1"])
    assert code == 0
    captured = capsys.readouterr()
    assert "2 images of 16x16x1" in captured.out and "left out: lost at RA 10.00000 Dec -40.00000" in captured.out
    assert "warning: " in captured.err and "1 of 3 positions are left out" in captured.err
    with pytest.warns(MosaicWarning), Session.open(tmp_path / "s") as session:
        assert session.config.data.options["cutout_size"] == "3.2arcsec"
        collection = session.collection
        assert isinstance(collection, MosaicCollection) and collection.ids() == ["a", "b"]
        image = collection.read([1])[0, ..., 0]
        assert 1.6e6 < image[8, 8] < 1.61e6  # the mean of bands 1 and 2 (1e6, 2e6) of tile 1 (+1e5)
        assert list((tmp_path / "s" / "cutouts").rglob("chunk-*.npy"))  # kept in the session


def test_init_detects_the_sources_of_a_real_mosaic(m13_dir, tmp_path, capsys):
    assert main(["init", str(tmp_path / "s"), "--mosaic", str(m13_dir / "m13_rice.fits"), "--detect",
                 "--detect-threshold", "5", "--cutout-size", "16px", "--crop", "1"]) == 0
    assert "images of 16x16x1" in capsys.readouterr().out
    with Session.open(tmp_path / "s") as session:
        assert session.config.data.source == str(tmp_path / "s" / DETECTED_CATALOGUE)
        assert len(session.collection) > 50


def test_init_says_what_a_mosaic_is_missing(tmp_path, capsys):
    bands = write_two_band_mosaic(tmp_path / "tiles")
    assert main(["init", str(tmp_path / "s"), "--mosaic", bands[0]]) != 0
    assert "give a catalogue (--catalogue cat.fits" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "s"), "--detect"]) != 0
    assert "give its tiles with --mosaic" in capsys.readouterr().err


def test_evaluate_cuts_a_manifest_of_positions_from_the_tiles(tmp_path, capsys):
    bands = write_two_band_mosaic(tmp_path / "tiles")
    pixels = [(10.5 + 8 * (k % 8), 10.5 + 8 * (k // 8 % 5), k // 40) for k in range(40)]
    ra, dec = positions(pixels)
    truth = [1] + [int(k % 5 == 0) for k in range(40)]  # the first row lies in no tile: left out with its truth
    initial = ["anomaly", "anomaly", "normal", "normal", "normal", "anomaly"] + [""] * 35
    manifest = write_catalogue(tmp_path / "manifest.csv", np.insert(ra, 0, 10.0), np.insert(dec, 0, -40.0),
                               ids=["lost"] + [f"s{k}" for k in range(40)],
                               extra={"is_anomaly": truth, "initial_label": initial})
    out = tmp_path / "result.json"
    assert main(["evaluate", str(manifest), "--mosaic", bands[0], "--mosaic", bands[1], "--cutout-size", "16px",
                 "--channels", "1,2,2", "--crop", "1", "--cycles", "1", "--seed", "0", "--json", str(out),
                 "--out", str(tmp_path / "report"), *TINY]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "1 of 41 positions are left out" in warnings[0], warnings  # no unclosed tile
    result = json.loads(out.read_text())
    settings = result["settings"]
    assert (settings["n_images"], settings["n_anomalies"], settings["initial_anomalies"]) == (40, 8, 2)
    assert settings["data"]["options"]["mosaic"] == bands and settings["data"]["options"]["cutout_size"] == "16px"
    assert result["n_scored"] == 40 - 5  # the five initial labels in the tiles train; the rest are ranked
    ranking = Table.read(tmp_path / "report" / "ranking.csv")
    expected = {f"s{k}": int(k % 5 == 0) for k in range(40)}
    assert len(ranking) == 35 and {str(i): int(a) for i, a in zip(ranking["id"], ranking["is_anomaly"])} == {
        i: expected[i] for i in ranking["id"]}  # each position's own truth, not its neighbour's
    assert "ra" in ranking.colnames


def test_a_mosaic_manifest_whose_first_labels_lie_outside_the_tiles_says_so(tmp_path):
    bands = write_two_band_mosaic(tmp_path / "tiles")
    ra, dec = positions([(20.0, 20.0, 0), (30.0, 30.0, 1)])
    manifest = write_catalogue(tmp_path / "m.csv", np.append(ra, 10.0), np.append(dec, -40.0),
                               extra={"is_anomaly": [0, 0, 1], "initial_label": ["normal", "", "anomaly"]})
    with pytest.warns(MosaicWarning), pytest.raises(AnomalyMatchError, match=r"m.csv \(its positions in the tiles\)"):
        read_benchmark(manifest, options={"mosaic": bands, "cutout_size": "16px"})
