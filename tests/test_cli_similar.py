"""``anomalymatch similar``: the look-alikes of query images, end to end on a real session."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from napari_anomalymatch.cli import main

from .conftest import rare_bar_folder, write_label_file, write_pngs
from .test_cli import TINY


def trained_not_scored(tmp_path):
    """A session of the bar images made by the command line, trained one cycle, not yet scored."""
    folder, truth = rare_bar_folder(tmp_path / "images")
    session = tmp_path / "session"
    assert main(["init", str(session), str(folder), *TINY]) == 0
    assert main(["label", str(session), str(write_label_file(tmp_path / "labels.csv", truth))]) == 0
    assert main(["train", str(session), "--no-score"]) == 0
    return session, folder


def test_similar_ranks_look_alikes_of_an_id_and_of_a_file(tmp_path, capsys):
    session, folder = trained_not_scored(tmp_path)
    capsys.readouterr()
    assert main(["similar", str(session), "img_007.png"]) == 2
    assert f"run 'anomalymatch score {session}'" in capsys.readouterr().err  # no traceback, what to do

    assert main(["score", str(session), "--workers", "0"]) == 0
    out = tmp_path / "alike.ecsv"
    assert main(["similar", str(session), "img_007.png", "--top", "5", "--out", str(out)]) == 0
    assert "wrote 5 rows" in capsys.readouterr().out
    table = Table.read(out)
    assert list(table["rank"]) == [1, 2, 3, 4, 5] and "img_007.png" not in table["id"]
    assert set(table["id"][:2]) == {"img_023.png", "img_031.png"}
    assert np.all(np.diff(table["similarity"]) <= 1e-6) and "anomaly_score" in table.colnames

    from PIL import Image

    bar = np.asarray(Image.open(folder / "img_031.png"))
    query = write_pngs(tmp_path / "mine", bar[None])[0]
    assert main(["similar", str(session), str(query), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "img_031.png" in printed.splitlines()[2]  # the top row under the header: the same picture

    assert main(["similar", str(session), "no-such.png"]) == 2
    assert "neither an image id" in capsys.readouterr().err
