"""The CLI after faults: one line naming what happened, the right exit status, no traceback."""

from __future__ import annotations

import csv
import errno
import json
import shutil

import numpy as np
import pytest

from napari_anomalymatch.cli import build_parser, main

from .conftest import blob_images, write_label_file, write_pngs

TINY = ["--iterations", "2", "--batch-size", "4", "--unlabelled-ratio", "1", "--pool-size", "16",
        "--size", "32", "--workers", "0"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    images, truth = blob_images(40)
    write_pngs(root / "blobs", images)
    labels = write_label_file(root / "labels.csv", truth)
    session = root / "session"
    assert main(["init", str(session), str(root / "blobs"), "--labels", str(labels), "--part-size", "10",
                 *TINY]) == 0
    assert main(["train", str(session)]) == 0
    return session


@pytest.fixture
def session(scored, tmp_path):
    return shutil.copytree(scored, tmp_path / "session")


@pytest.mark.parametrize("argv", [["export", "s", "o.csv", "--top", "0"], ["export", "s", "o.csv", "--top", "-5"],
                                  ["score", "s", "--top", "0"], ["train", "s", "--cycles", "0"],
                                  ["evaluate", "m.csv", "--cycles", "-1"], ["demo", "--cycles", "0"]])
def test_counts_below_one_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "expected an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["init", "label", "train", "score", "evaluate"])
def test_every_command_whose_messages_name_skip_bad_takes_it(command):
    argv = {"init": ["init", "s", "src"], "label": ["label", "s", "f.csv"], "train": ["train", "s"],
            "score": ["score", "s"], "evaluate": ["evaluate", "m.csv"]}[command]
    assert build_parser().parse_args([*argv, "--skip-bad"]).skip_bad is True


def test_label_skip_bad_skips_unknown_ids_and_is_kept(session, tmp_path, capsys):
    labels = tmp_path / "more.csv"
    labels.write_text("id,label\nno-such.png,anomaly\nimg_001.png,normal\n")
    assert main(["label", str(session), str(labels)]) == 2
    assert "--skip-bad" in capsys.readouterr().err
    assert main(["label", str(session), str(labels), "--skip-bad"]) == 0
    assert "on_error = \"skip\"" in (session / "session.toml").read_text()


def test_info_and_export_warn_of_an_incomplete_newer_run(session, tmp_path, capsys):
    run = session / "scores" / "cycle-0002"
    shutil.copytree(session / "scores" / "cycle-0001", run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "cycle": 2}))
    for name in ("complete.json", "scores.npy", "part-000003.npy"):
        (run / name).unlink()
    capsys.readouterr()
    assert main(["info", str(session)]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["scored_cycle"] == 1 and "3 of 4 parts" in info["incomplete_scoring"]
    assert "warning: scoring of cycle 2 is incomplete (3 of 4 parts)" in captured.err
    assert main(["export", str(session), str(tmp_path / "out.csv")]) == 0
    assert "cycle 1 (complete) are used" in capsys.readouterr().err
    with open(tmp_path / "out.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["cycle"] for r in rows} == {"1"} and all(np.isfinite(float(r["score"])) for r in rows)


def test_a_write_refused_outside_the_engine_is_named(session, tmp_path, monkeypatch, capsys):
    from astropy.table import Table

    def refuse(self, path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Table, "write", refuse)
    assert main(["export", str(session), str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert "out.csv: cannot write here (Permission denied)" in err and "Traceback" not in err


def test_ctrl_c_says_what_the_folder_holds(session, monkeypatch, capsys):
    from napari_anomalymatch.core import session as session_module

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(session_module.Session, "run_cycle", interrupted)
    assert main(["train", str(session)]) == 130
    err = capsys.readouterr().err
    assert "interrupted; the latest checkpoint is" in err and "cycle-0001.safetensors (cycle 1, 2 iterations" in err
    assert "the scores of cycle 1: complete" in err and "work done so far is saved" not in err


def test_a_catalogue_with_repeated_ids_is_one_clear_line(tmp_path, capsys):
    write_pngs(tmp_path / "images", np.zeros((2, 8, 8), np.uint8))
    catalogue = tmp_path / "cat.csv"
    catalogue.write_text("path,id\nimages/img_000.png,m31\nimages/img_001.png,m31\n")
    assert main(["init", str(tmp_path / "s"), str(catalogue), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anomalymatch init: error: ") and err.count("\n") == 1
    assert "cat.csv" in err and "'m31'" in err and "Traceback" not in err
