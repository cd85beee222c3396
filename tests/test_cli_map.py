"""``anomalymatch map``: the embedding map of a real session, drawn to a picture and written as a table."""

from __future__ import annotations

import numpy as np
from astropy.table import Table
from PIL import Image

from napari_anomalymatch.cli import main

from .test_cli_similar import trained_not_scored


def test_map_draws_the_scored_collection_and_reuses_the_saved_map(tmp_path, capsys):
    session, _ = trained_not_scored(tmp_path)
    capsys.readouterr()
    assert main(["map", str(session), "--out", str(tmp_path / "map.png")]) == 2
    assert f"run 'anomalymatch score {session}'" in capsys.readouterr().err  # no traceback, what to do

    assert main(["score", str(session), "--workers", "0"]) == 0
    capsys.readouterr()
    assert main(["map", str(session), "--out", str(tmp_path / "map.png")]) == 0
    printed = capsys.readouterr()
    assert "map computed in" in printed.out and "fitting UMAP to 40 images" in printed.err
    assert "40 of 40 images (cycle 1)" in printed.out
    picture = np.asarray(Image.open(tmp_path / "map.png").convert("RGB"))
    assert picture.shape[:2] == (900, 1050)

    assert main(["map", str(session), "--out", str(tmp_path / "map.ecsv"), "--colour", "label"]) == 0
    assert "map computed" not in capsys.readouterr().out  # drawn from the saved map
    table = Table.read(tmp_path / "map.ecsv")
    assert table.colnames == ["id", "x", "y", "anomaly_score", "label"] and len(table) == 40
    assert sorted(table["id"][table["label"] == "anomaly"]) == ["img_007.png", "img_023.png"]
    assert np.isfinite(table["x"]).all() and np.isfinite(table["anomaly_score"]).all()

    assert main(["map", str(session), "--out", str(tmp_path / "small.csv"), "--sample", "8"]) == 0
    assert "8 of 40 images: every labelled image" in capsys.readouterr().out
