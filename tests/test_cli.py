"""Every sub-command of ``anomalymatch`` end to end, on tiny settings and real files."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy.table import Table

from napari_anomalymatch.cli import build_parser, main
from napari_anomalymatch.core.config import SessionConfig
from napari_anomalymatch.core.review.remaining import CalibrationLabels, estimate_remaining

TINY = ["--iterations", "2", "--batch-size", "4", "--unlabelled-ratio", "1", "--pool-size", "16",
        "--size", "32", "--workers", "0"]
COMMANDS = ["demo", "init", "label", "tag", "train", "score", "export", "similar", "explain", "crossmatch", "samp",
            "evaluate", "info"]


def test_console_script_is_installed():
    from pathlib import Path

    beside_python = Path(sys.executable).parent / "anomalymatch"
    exe = str(beside_python) if beside_python.exists() else shutil.which("anomalymatch")
    assert exe, "the anomalymatch console script is not installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: anomalymatch " + command in capsys.readouterr().out


def test_session_workflow(tmp_path, blob_folder, capsys):
    folder, truth = blob_folder
    session = tmp_path / "session"
    assert main(["init", str(session), str(folder), "--normalisation", "percentile", "--crop", "0.75",
                 "--probe-size", "48", "--probe-c", "0.5", "--probe-views", "flip", "--no-probe-centre",
                 "--probe-layers", "head", "--probe-morphology", "off", *TINY]) == 0
    assert "40 images of 32x32x1" in capsys.readouterr().out
    saved = SessionConfig.from_toml(session / "session.toml")
    normalisation = saved.data.normalisation
    assert (normalisation.method, normalisation.crop) == ("percentile", 0.75)
    probe = saved.probe
    assert (probe.features, probe.size, probe.regularisation, probe.views,
            probe.centre, probe.layers, probe.morphology) == (
        "pretrained", 48, 0.5, "flip", False, "head", "off")
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label"])
        for i in np.flatnonzero(truth)[:2]:
            writer.writerow([f"img_{i:03d}.png", "anomaly"])
        for i in np.flatnonzero(~truth)[:4]:
            writer.writerow([f"img_{i:03d}.png", "normal"])
    assert main(["label", str(session), str(labels)]) == 0
    assert "6 labels changed" in capsys.readouterr().out

    assert main(["train", str(session), "--cycles", "2", "--no-score"]) == 0
    assert (session / "checkpoints" / "cycle-0002.safetensors").exists()
    assert main(["score", str(session), "--top", "3", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "scored 40 images" in out and len([line for line in out.splitlines() if ".png" in line]) == 3

    for suffix in ("csv", "ecsv", "fits", "xml"):
        target = tmp_path / f"ranking.{suffix}"
        assert main(["export", str(session), str(target)]) == 0
        table = Table.read(target)
        assert len(table) == 40
        assert np.all(np.diff(np.asarray(table["score"], dtype=float)) <= 0)
        assert set(map(str, table["label"])) >= {"anomaly", "normal", "unlabelled"}
        assert int(np.asarray(table["cycle"])[0]) == 2

    capsys.readouterr()
    assert main(["info", str(session)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 40 and info["cycles"] == 2 and info["labels"]["anomaly"] == 2
    # the discovery so far and what remains: imported labels were chosen by class, so biased
    assert info["discovery"] == {"labelled": 6, "anomalies_found": 2, "found_in_last_6": 2}
    remaining = info["remaining"]
    assert remaining["method"] == "platt:all-labels(biased)" and remaining["total"]["n_images"] == 34
    assert 0 <= remaining["total"]["low"] <= remaining["total"]["expected"] <= remaining["total"]["high"] <= 34
    assert "BIASED" in remaining["text"] and info["stop"].startswith(("Consider stopping", "Worth going on"))
    assert main(["info", str(session), "--curve", str(tmp_path / "curve.csv"), "--stop-rate", "3"]) == 0
    curve = Table.read(tmp_path / "curve.csv")
    assert list(curve["found"]) == [1, 2, 2, 2, 2, 2] and "1 in 3" in json.loads(capsys.readouterr().out)["stop"]


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anomalymatch info: error:") and "not a session folder" in err
    assert main(["init", str(tmp_path / "s"), str(tmp_path / "nothing.fits")]) == 2
    assert "nothing.fits: no such file" in capsys.readouterr().err


def test_label_import_with_unknown_id_fails_without_storing(tmp_path, blob_folder, capsys):
    session = tmp_path / "session"
    main(["init", str(session), str(blob_folder[0]), *TINY])
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nimg_000.png,anomaly\nimg_999.png,normal\n")
    assert main(["label", str(session), str(labels)]) == 2
    assert "labels.csv, row 3" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["info", str(session)]) == 0
    assert json.loads(capsys.readouterr().out)["labels"]["anomaly"] == 0


def test_fits_session_from_real_m13(tmp_path, m13_dir, capsys):
    folder = tmp_path / "fits"
    folder.mkdir()
    for name in ("m13.fits", "m13_rice.fits", "m13_gzip.fits", "m13_plio.fits"):
        shutil.copy(m13_dir / name, folder / name)
    assert main(["init", str(tmp_path / "s"), str(folder), "--normalisation", "zscale", *TINY]) == 0
    assert "4 images of 300x300x1" in capsys.readouterr().out


def test_evaluate_writes_the_promised_json(tmp_path, blob_manifest):
    out = tmp_path / "result.json"
    assert main(["evaluate", str(blob_manifest), "--cycles", "2", "--seed", "0", "--json", str(out),
                 "--out", str(tmp_path / "report"), *TINY]) == 0
    result = json.loads(out.read_text())
    for key in ("auroc", "auprc", "precision_top1pct", "precision_top5pct", "anomalies_in_top50",
                "n_scored", "train_seconds_per_iteration", "score_images_per_second", "settings"):
        assert key in result, key
    # 6 initial labels, then the oracle labels 10 anomalies and 10 normal images
    assert result["n_scored"] == 80 - 6 - 20
    assert result["cycles"][1]["n_labelled_anomalies"] == 12
    # by default the oracle reviews in score order (the paper's); it looks at 20 images at least to label 20
    assert result["settings"]["oracle"] == {"anomalies": 10, "normals": 10, "order": "score", "test_fraction": 0.2}
    # every cycle is also measured on one fixed split the oracle never sees: a fifth of the 74
    # unlabelled images, stratified (14 anomalies -> 3, 60 normal -> 12)
    splits = [(c["test_metrics"]["n_scored"], c["test_metrics"]["n_anomalies"]) for c in result["cycles"]]
    assert splits == [(15, 3), (15, 3)]
    assert set(result["cycles"][0]["test_head_metrics"]) == {"lpft"}
    assert 20 <= result["cycles"][0]["oracle_reviewed"] <= 74 and result["cycles"][1]["oracle_reviewed"] == 0
    # the estimate of what remains against the truth: a random audit of 50 of the 59 images the
    # oracle may review from the start; the labels alone only once the oracle has reviewed in order
    first, second = (c["remaining"] for c in result["cycles"])
    assert "error" in first["without_audit"] and first["with_audit"]["n_audit_labels"] == 50
    assert second["without_audit"]["n_reviewed_labels"] == result["cycles"][0]["oracle_reviewed"]
    assert second["without_audit"]["total"]["n_images"] == 74 - result["cycles"][0]["oracle_reviewed"]
    assert 0 <= second["without_audit"]["total"]["true"] <= 14
    # what each estimate was made from is kept beside the JSON: made again from it, it is the same
    inputs = np.load(tmp_path / "result.remaining.npz")
    prefix = "cycle2__without_audit__"
    labels = CalibrationLabels(*(inputs[prefix + name].astype(float) for name in
                                 ("reviewed_scores", "reviewed_labels", "audit_scores", "audit_labels")))
    again = estimate_remaining(inputs[prefix + "unreviewed_scores"].astype(float), labels)
    assert again.total.expected == pytest.approx(second["without_audit"]["total"]["expected"], rel=1e-4)
    assert inputs[prefix + "unreviewed_truth"].sum() == second["without_audit"]["total"]["true"]
    assert result["settings"]["train"]["iterations"] == 2 and result["settings"]["cycles"] == 2
    crop = result["settings"]["data"]["normalisation"]["crop"]  # chosen from the images, and recorded
    assert crop != "auto" and 0 < crop <= 1
    assert result["settings"]["score"]["tta"] is False
    assert 0.0 <= result["auroc"] <= 1.0
    for cycle in result["cycles"]:  # what FixMatch took from the unlabelled images, per cycle
        assert 0.0 <= cycle["mean_mask_ratio"] <= 1.0 and 0.0 <= cycle["mean_pseudo_anomaly_ratio"] <= 1.0
    ranking = Table.read(tmp_path / "report" / "ranking.csv")
    assert len(ranking) == 54 and (tmp_path / "report" / "gallery.png").stat().st_size > 1000
    assert set(result["cycles"][-1]["head_metrics"]) == {"lpft"}  # only the default head is scored
    assert result["comparison_seconds"] == 0.0


def test_tta_is_switched_on_and_off_on_the_command_line():
    from napari_anomalymatch.cli import _apply_options, build_parser

    def tta(*options: str) -> bool:
        return _apply_options(SessionConfig(), build_parser().parse_args(["evaluate", "m.csv", *options])).score.tta

    assert tta("--tta") and not tta("--tta", "--no-tta") and not tta()
    assert build_parser().parse_args(["demo"]).tta is True  # the demo's radio galaxies have no up


def test_evaluate_with_the_diverse_oracle(tmp_path, blob_manifest):
    out = tmp_path / "result.json"
    assert main(["evaluate", str(blob_manifest), "--cycles", "2", "--seed", "0", "--json", str(out),
                 "--oracle-order", "diverse", *TINY]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["oracle"]["order"] == "diverse"
    assert result["cycles"][1]["n_labelled_anomalies"] == 12 and result["n_scored"] == 80 - 6 - 20


def test_evaluate_compares_the_heads_on_the_same_run(tmp_path, blob_manifest):
    out = tmp_path / "result.json"
    assert main(["evaluate", str(blob_manifest), "--cycles", "1", "--seed", "0", "--json", str(out),
                 "--compare-heads", "--head", "probe", "--oracle-order", "score", "--tta", *TINY]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["oracle"]["order"] == "score"
    assert result["settings"]["score"]["tta"] is True  # all 8 views of each image, for both heads
    heads = result["cycles"][-1]["head_metrics"]
    assert set(heads) == {"classifier", "probe", "ensemble"}
    assert heads["probe"]["auroc"] == pytest.approx(result["auroc"])  # the chosen head made the ranking
    assert result["comparison_seconds"] > 0


def test_evaluate_compares_the_lpft_network_with_the_probe_on_the_same_labels(tmp_path, blob_manifest):
    out = tmp_path / "result.json"
    assert main(["evaluate", str(blob_manifest), "--cycles", "1", "--seed", "0", "--json", str(out),
                 "--compare-heads", *TINY]) == 0  # the default head: lpft
    result = json.loads(out.read_text())
    heads = result["cycles"][-1]["head_metrics"]
    assert set(heads) == {"lpft", "probe", "lpft+probe"}  # and their ensemble
    assert heads["lpft"]["auroc"] == pytest.approx(result["auroc"])
    assert result["comparison_seconds"] > 0


def test_demo_on_real_radio_galaxies(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--cycles", "1", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "AUROC" in printed and "AUPRC" in printed and "top-1% precision" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    crop = metrics["settings"]["data"]["normalisation"]["crop"]
    assert 0.25 <= crop <= 0.75  # chosen from the images: FIRST sources fill the middle of their cutouts
    assert metrics["settings"]["score"]["tta"] is True  # and have no up
    manifest = Table.read(out / "manifest.csv", format="ascii.csv")
    assert len(manifest) == 1905 and int(np.sum(manifest["is_anomaly"])) == 95
    ranking = Table.read(out / "ranking.csv", format="ascii.csv")
    assert len(ranking) == 1905 - 40
    assert np.isfinite(np.asarray(ranking["ra"], dtype=float)).all()
    from PIL import Image

    with Image.open(out / "gallery.png") as gallery:
        assert gallery.size[0] > 600 and np.asarray(gallery).std() > 10


def test_parser_has_no_duplicate_options():
    parser = build_parser()  # argparse raises on conflicting option strings
    assert parser.prog == "anomalymatch"


def test_score_sharded_survey_here_and_on_a_local_dask_cluster(tmp_path, capsys):
    pytest.importorskip("distributed")
    from tests.core.test_scale_scoring import write_blob_shards

    truth = write_blob_shards(tmp_path / "survey")
    here, there = tmp_path / "here", tmp_path / "there"
    assert main(["init", str(here), str(tmp_path / "survey" / "*.h5"), *TINY]) == 0
    assert "90 images of 32x32x1" in capsys.readouterr().out
    labels = tmp_path / "labels.csv"
    rows = [f"field_{i // 30}.h5:{i % 30},anomaly" for i in np.flatnonzero(truth)[:2]]
    rows += [f"field_{i // 30}.h5:{i % 30},normal" for i in np.flatnonzero(~truth)[:3]]
    labels.write_text("id,label\n" + "\n".join(rows) + "\n")
    assert main(["label", str(here), str(labels)]) == 0
    assert main(["train", str(here), "--no-score"]) == 0
    shutil.copytree(here, there)
    capsys.readouterr()
    assert main(["score", str(here), "--top", "3", "--top-k", "12"]) == 0
    local_out = capsys.readouterr().out
    assert main(["score", str(there), "--top", "3", "--top-k", "12", "--dask", "local:2"]) == 0
    dask_out = capsys.readouterr().out
    assert "scoring on Dask cluster local:2 (2 workers)" in dask_out
    assert main(["info", str(there)]) == 0
    assert json.loads(capsys.readouterr().out)["shards"] == 3
    for out in (local_out, dask_out):
        assert "scored 90 images" in out and "top.parquet" in out
        assert len([line for line in out.splitlines() if ".h5:" in line]) == 3
    local = np.load(here / "scores" / "cycle-0001" / "scores.npy")
    remote = np.load(there / "scores" / "cycle-0001" / "scores.npy")
    np.testing.assert_allclose(remote, local, rtol=0, atol=1e-4)  # one torch thread per worker here
    import pyarrow.parquet as pq

    top = pq.read_table(there / "scores" / "cycle-0001" / "top.parquet").to_pydict()
    assert len(top["id"]) == 12 and top["id"][0].startswith("field_")


def test_crossmatch_marks_known_objects_and_writes_the_ranking(tmp_path, capsys):
    from .core.test_crossmatch import known_table, write_sky_catalogue
    from .core.test_review import write_scores

    source = write_sky_catalogue(tmp_path / "data")
    session = tmp_path / "session"
    assert main(["init", str(session), str(source)]) == 0
    catalogue = tmp_path / "known.fits"
    known_table("RAJ2000", "DEJ2000", "main_id").write(catalogue)
    out = tmp_path / "matched.csv"
    capsys.readouterr()
    assert main(["crossmatch", str(session), str(catalogue), "--radius", "3arcsec", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 of 8 images are known" in printed and "1 images have no RA/Dec" in printed
    with open(out) as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert rows["src0"]["known_name"] == "lens-A" and rows["src0"]["known"] == "True"
    # src1's nearest object is 5″ away, outside 3″: the known-object columns stay empty
    assert rows["src1"]["known_name"] == "" and rows["src1"]["known_separation_arcsec"] in ("", "nan")
    assert rows["src7"]["known_name"] == "" and rows["src7"]["known"] == "False"

    from napari_anomalymatch.core.session import Session

    with Session.open(session) as opened:  # the match stays with the session: export shows it too
        write_scores(opened, np.linspace(0.9, 0.2, 8).astype(np.float32))
    assert main(["export", str(session), str(tmp_path / "ranking.ecsv")]) == 0
    table = Table.read(tmp_path / "ranking.ecsv")
    assert table["known_name"][0] == "lens-A" and table["known_name"][1] is np.ma.masked  # written empty

    assert main(["crossmatch", str(session), str(tmp_path / "missing.vot")]) == 2
    assert main(["crossmatch", str(session), str(catalogue), "--radius", "3"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0] == f"anomalymatch crossmatch: error: {tmp_path / 'missing.vot'}: no such catalogue file"
    assert "radius '3' is not an angle" in errors[1] and len(errors) == 2


def test_tag_adds_removes_and_exports_tags_without_labelling(tmp_path, blob_folder, capsys):
    from .core.test_review import write_scores

    folder, _ = blob_folder
    session = tmp_path / "session"
    assert main(["init", str(session), str(folder)]) == 0
    assert main(["tag", str(session), "img_003.png", "lens", "merger, arc"]) == 0
    assert main(["tag", str(session), "img_003.png", "merger", "--remove"]) == 0
    assert main(["tag", str(session), "img_004.png", "lens"]) == 0
    capsys.readouterr()
    assert main(["tag", str(session), "img_003.png"]) == 0
    assert capsys.readouterr().out == "img_003.png: tags arc, lens\n"
    assert main(["tag", str(session), "nope.png", "lens"]) == 2
    assert main(["tag", str(session), "img_003.png", " "]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "nope.png" in errors[0] and "empty tag" in errors[1] and len(errors) == 2

    from napari_anomalymatch.core.session import Session

    with Session.open(session) as opened:
        write_scores(opened, np.linspace(0.9, 0.1, 40).astype(np.float32))
        assert opened.labels.counts() == {"normal": 0, "anomaly": 0, "unsure": 0}
    assert main(["export", str(session), str(tmp_path / "ranking.fits")]) == 0
    table = Table.read(tmp_path / "ranking.fits")
    filled = table["tags"].filled("") if hasattr(table["tags"], "filled") else table["tags"]  # FITS: "" is masked
    tags = dict(zip(table["id"], filled, strict=True))
    assert tags["img_003.png"] == "arc;lens" and tags["img_004.png"] == "lens" and tags["img_000.png"] == ""


def test_score_unsupervised_then_export_and_train_refuses_without_labels(tmp_path, capsys):
    from .conftest import rare_bar_folder

    folder, truth = rare_bar_folder(tmp_path / "images")
    session = tmp_path / "session"
    assert main(["init", str(session), str(folder), "--size", "32"]) == 0
    assert main(["score", str(session), "--method", "knn"]) == 2
    assert "--unsupervised" in capsys.readouterr().err
    assert main(["score", str(session), "--unsupervised", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "unsupervised ranking: label a few anomalies" in out
    shown = [line.split()[-1] for line in out.splitlines() if line.strip().startswith(("1 ", "2 ", "3 "))]
    assert set(shown) == {f"img_{i:03d}.png" for i in np.flatnonzero(truth)}
    assert main(["export", str(session), str(tmp_path / "ranking.csv"), "--top", "3"]) == 0
    with open(tmp_path / "ranking.csv") as handle:
        ids = {row["id"] for row in csv.DictReader(handle)}
    assert ids == {f"img_{i:03d}.png" for i in np.flatnonzero(truth)}
    assert main(["train", str(session)]) == 2
    assert "at least one anomaly" in capsys.readouterr().err


def test_after_a_cycle_the_command_line_says_what_remains_and_whether_to_stop(tmp_path, blob_folder, capsys):
    from napari_anomalymatch.cli import _say_remaining
    from napari_anomalymatch.core.review.queue import ReviewQueue
    from napari_anomalymatch.core.session import Session

    from .conftest import tiny_config
    from .core.test_review import write_scores

    folder, truth = blob_folder
    with Session.create(tmp_path / "s", tiny_config(folder)) as session:
        _say_remaining(session, 200)
        assert "nothing labelled yet\nwhat remains is not estimated" in capsys.readouterr().out
        write_scores(session, np.where(truth, 0.8, 0.2) + np.linspace(0, 0.1, len(truth)))
        queue = ReviewQueue(session)
        for _ in range(12):  # the 8 rings, then 4 blobs, in score order
            queue.label("a" if truth[queue.current.index] else "n")
        _say_remaining(session, 200)
    out = capsys.readouterr().out
    assert out.startswith("8 anomalies found in 12 images labelled; the last 12 yielded 8\nwhat remains: ")
    # 12 labels, perfectly separated, say little of the 28 images below them: the interval is all of them
    assert "on 12 labels given in score order" in out and "the next 28 are expected to hold 3.3 (0-28)" in out
    # 1 in 200 of 28 images is 0.14: not advised while the interval's top (28) is above it
    assert "Worth going on" in out and "interval's top is below 1 in 200" in out
