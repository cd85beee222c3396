"""``anomalymatch explain``: saliency PNGs of the top candidates, end to end on a real session."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from napari_anomalymatch.cli import main
from napari_anomalymatch.core.session import Session

from .conftest import write_label_file
from .test_cli import TINY


def test_explain_writes_candidate_and_overlay_pngs_of_the_top(tmp_path, blob_folder, capsys):
    folder, truth = blob_folder
    session = tmp_path / "session"
    assert main(["init", str(session), str(folder), "--crop", "0.75", *TINY]) == 0
    assert main(["label", str(session), str(write_label_file(tmp_path / "labels.csv", truth))]) == 0
    assert main(["train", str(session), "--no-score"]) == 0
    capsys.readouterr()
    out = tmp_path / "explained"
    assert main(["explain", str(session), "--top", "3", "--out", str(out)]) == 2
    assert f"run 'anomalymatch score {session}' first" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())

    assert main(["score", str(session), "--workers", "0"]) == 0
    assert main(["explain", str(session), "--top", "3", "--out", str(out)]) == 0
    assert "wrote 6 PNGs of 3 candidates" in capsys.readouterr().out
    with open(out / "saliency.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with Session.open(session, read_only=True) as opened:
        top = [opened.collection.id_of(int(i)) for i in opened.ranking("score", "unlabelled")[:3]]
        scores = opened.runs.scores()[1]
        shown = opened.display_image(0).shape[:2]
        indices = [opened.collection.index_of(i) for i in top]
    assert [row["id"] for row in rows] == top and [row["rank"] for row in rows] == ["1", "2", "3"]
    assert [float(row["score"]) for row in rows] == [float(f"{scores[i]:.6g}") for i in indices]
    assert shown == (24, 24)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(
        [row["candidate"] for row in rows] + [row["saliency"] for row in rows])
    for row in rows:
        candidate = np.asarray(Image.open(out / row["candidate"]))
        saliency = np.asarray(Image.open(out / row["saliency"]))
        assert candidate.shape == saliency.shape == (*shown, 3)
        assert row["candidate"].startswith(f"{row['rank']}_{row['id'].removesuffix('.png')}")
        assert not np.array_equal(candidate, saliency)  # the map is drawn over it

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["explain", str(session), "--out", str(blocked / "o")]) == 2
    assert "cannot make the output folder" in capsys.readouterr().err


def test_explain_refuses_bad_requests_in_one_line(tmp_path, blob_folder, capsys):
    session = tmp_path / "session"
    assert main(["init", str(session), str(blob_folder[0]), *TINY]) == 0
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "not a session folder" in capsys.readouterr().err
    try:
        main(["explain", str(session), "--top", "0", "--out", str(tmp_path / "o")])
    except SystemExit as exit_info:
        assert exit_info.code == 2
    assert "expected an integer >= 1; got 0" in capsys.readouterr().err
