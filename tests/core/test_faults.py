"""Faults never give a wrong answer: damaged files, full disks, read-only folders, interrupts.

Full disks and read-only folders are simulated by making the write raise the
OSError (ENOSPC, EROFS) the kernel would give, or, for SQLite, by a real
``max_page_count`` limit: the tests run as root on the build machines, where a
chmod does not stop a write.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_anomalymatch.core import atomic
from napari_anomalymatch.core.config import DataConfig, ModelConfig, ScoreConfig, SessionConfig, TrainConfig
from napari_anomalymatch.core.errors import (
    CheckpointError,
    ConfigError,
    CorruptFileError,
    DiskFullError,
    IncompleteScoresError,
    ReadOnlyError,
    SessionError,
    UnsupportedSourceError,
)
from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.labels import LabelStore
from napari_anomalymatch.core.labels import sqlite as labels  # where the store's SQLite is opened
from napari_anomalymatch.core.learning import checkpoints
from napari_anomalymatch.core.learning.checkpoints import CheckpointInfo, load_checkpoint, save_checkpoint
from napari_anomalymatch.core.review.export import export_session
from napari_anomalymatch.core.review.queue import ReviewQueue
from napari_anomalymatch.core.scoring.collection import score_manifest
from napari_anomalymatch.core.scoring.run import run_to_end
from napari_anomalymatch.core.scoring.store import CHECKSUMS, COMPLETE, SCORES, ScoreStore
from napari_anomalymatch.core.session import Session, saved_state

from ..conftest import TINY_TRAINING, blob_images, write_pngs

INFO = CheckpointInfo(cycle=1, iterations_done=2, model_name="m", in_chans=1, image_size=32, weights_source="x")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A session trained for one cycle and scored (4 parts of 10), built once per module."""
    root = tmp_path_factory.mktemp("trained")
    images, truth = blob_images(40)
    write_pngs(root / "blobs", images)
    config = SessionConfig(data=DataConfig(source=str(root / "blobs")), model=ModelConfig(image_size=32),
                           train=TrainConfig(**TINY_TRAINING),
                           score=ScoreConfig(batch_size=10, part_size=10, num_workers=0))
    with Session.create(root / "session", config) as session:
        ids = session.collection.ids()
        for i in np.flatnonzero(truth)[:2]:
            session.label(ids[i], "anomaly")
        for i in np.flatnonzero(~truth)[:3]:
            session.label(ids[i], "normal")
        for _ in session.train():
            pass
        run_to_end(session.score())
    return root / "session"


@pytest.fixture
def copy(trained, tmp_path) -> Path:
    """A fresh copy of the trained session to damage."""
    return Path(shutil.copytree(trained, tmp_path / "session"))


def _partial_run(session_dir: Path, cycle: int, keep_parts: int) -> Path:
    """A score run of ``cycle`` that stopped after ``keep_parts`` parts (copied from cycle 1's)."""
    run = session_dir / "scores" / f"cycle-{cycle:04d}"
    shutil.copytree(session_dir / "scores" / "cycle-0001", run, dirs_exist_ok=True)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "cycle": cycle}))
    for name in (COMPLETE, SCORES, "scores.parquet", "top.parquet"):
        (run / name).unlink(missing_ok=True)
    for part in sorted(run.glob("part-*.npy"))[keep_parts:]:
        part.unlink()
    return run


# -- incomplete score runs ---------------------------------------------------------------


def test_an_incomplete_newer_run_is_never_ranked_and_is_announced(copy):
    _partial_run(copy, 2, keep_parts=1)
    with Session.open(copy) as session:
        cycle, scores = session.runs.scores()
        assert cycle == 1 and np.isfinite(scores).all()
        notice = session.runs.notice()
        assert "scoring of cycle 2 is incomplete (1 of 4 parts)" in notice
        assert "cycle 1 (complete) are used" in notice
        queue = ReviewQueue(session, which="all")
        assert queue.scores_cycle == 1 and queue.scores_notice == notice
        assert np.isfinite(queue.scores).all()


def test_only_an_incomplete_run_is_refused_by_export_and_ranking_has_no_scores(copy, tmp_path):
    shutil.rmtree(copy / "scores" / "cycle-0001")
    with Session.open(copy) as session:
        gen = session.score()
        next(gen)  # one batch (one part of 10) written
        gen.close()
        with pytest.raises(IncompleteScoresError, match=r"cycle 1 is incomplete \(1 of 4 parts\)"):
            export_session(session, tmp_path / "out.csv")
        assert session.runs.scores() is None
    assert not (tmp_path / "out.csv").exists()


# -- checkpoints ---------------------------------------------------------------------------


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_latest_checkpoint_is_named_and_the_previous_offered(copy):
    latest = copy / "checkpoints" / "cycle-0002.safetensors"
    shutil.copy(copy / "checkpoints" / "cycle-0001.safetensors", latest)
    _flip_last_byte(latest)
    with Session.open(copy) as session, pytest.raises(CheckpointError) as caught:
        session.trainer  # noqa: B018
    message = str(caught.value)
    assert "damaged" in message and str(latest) in message
    assert "cycle-0001.safetensors" in message and "continue from cycle 1" in message


def test_a_checkpoint_without_checksum_still_opens(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    save_file({"w": torch.arange(6.0)}, str(path), metadata={"info": json.dumps(INFO.__dict__)})
    tensors, info = load_checkpoint(path)
    assert torch.equal(tensors["w"], torch.arange(6.0)) and info == INFO


def test_checkpoint_tensors_that_do_not_fit_the_model_are_a_clear_error(copy):
    save_checkpoint(copy / "checkpoints" / "cycle-0002.safetensors", {"nothing": torch.zeros(3)},
                    CheckpointInfo(2, 4, "tf_efficientnet_lite0", 1, 32, "x"))
    with Session.open(copy) as session, pytest.raises(CheckpointError, match="do not fit"):
        session.trainer  # noqa: B018


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_or_foreign_checkpoints_are_a_clear_error(tmp_path, damage):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(1000)}, INFO)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if damage == "truncate" else b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_a_full_disk_during_the_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(1000)}, INFO)
    before = path.read_bytes()

    def half_then_full(self, data):
        with open(self, "wb") as handle:
            handle.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(DiskFullError, match=r"disk is full .* about 0\.0 MB needed.*previous one is intact"):
        save_checkpoint(path, {"w": torch.zeros(1000)}, INFO)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no partial file left


def test_too_little_space_is_said_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.raises(DiskFullError, match="MB needed"):
        save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(1000)}, INFO)
    assert not list(tmp_path.iterdir())


def _interrupting_write(monkeypatch, n_interrupts: int) -> None:
    real = Path.write_bytes

    def write(self, data):
        for _ in range(n_interrupts):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # let the handler run between the two
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write)


def test_ctrl_c_during_the_save_waits_for_it(tmp_path, monkeypatch, capsys):
    _interrupting_write(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(1000)}, INFO)
    monkeypatch.undo()
    tensors, _ = load_checkpoint(tmp_path / "c.safetensors")  # complete and checksummed
    assert torch.equal(tensors["w"], torch.ones(1000))
    assert "press Ctrl-C again to abort" in capsys.readouterr().err


def test_a_second_ctrl_c_aborts_the_save_and_keeps_the_previous(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(10)}, INFO)
    _interrupting_write(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": torch.zeros(10)}, INFO)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)[0]["w"], torch.ones(10))
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


KILLED_WRITER = textwrap.dedent("""
    import sys, torch
    from napari_anomalymatch.core.learning.checkpoints import CheckpointInfo, save_checkpoint
    info = CheckpointInfo(2, 4, "m", 1, 32, "x")
    big = {f"t{i}": torch.full((1_000_000,), float(i)) for i in range(40)}
    while True:
        save_checkpoint(sys.argv[1], big, info)
""")


def test_kill_9_during_the_checkpoint_write_loses_nothing_and_its_temporary_is_removed(copy):
    previous = copy / "checkpoints" / "cycle-0001.safetensors"
    before = previous.read_bytes()
    target = copy / "checkpoints" / "cycle-0002.safetensors"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], env=env)
    deadline = time.time() + 120
    try:
        while not list(target.parent.glob(".*.tmp")) and time.time() < deadline:
            time.sleep(0.01)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert previous.read_bytes() == before
    if target.exists():  # a complete earlier write: it must load and check
        assert load_checkpoint(target)[1].cycle == 2
    assert list(target.parent.glob(".*.tmp")), "the writer was killed before it started a temporary"
    with Session.open(copy):
        pass
    assert not list(target.parent.glob(".*.tmp"))


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    live = tmp_path / f".x.npy.{os.getppid()}.abcd.tmp"
    dead = tmp_path / ".x.npy.999999999.abcd.tmp"
    live.write_bytes(b"1")
    dead.write_bytes(b"1")
    assert atomic.remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_session_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic.atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == mode


# -- score files ---------------------------------------------------------------------------


def _run(copy: Path) -> Path:
    return copy / "scores" / "cycle-0001"


@pytest.mark.parametrize("damage", ["flip", "truncate", "object-array", "wrong-length"])
def test_a_damaged_score_part_is_named(copy, damage):
    part = sorted(_run(copy).glob("part-*.npy"))[1]
    if damage == "flip":
        _flip_last_byte(part)
    elif damage == "truncate":
        part.write_bytes(part.read_bytes()[:40])
    elif damage == "object-array":
        np.save(part, np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    else:
        np.save(part, np.zeros(3, dtype=np.float32))
    (_run(copy) / SCORES).unlink()  # the parts are read when scores.npy is rebuilt
    store = ScoreStore.existing(_run(copy))
    with pytest.raises(CorruptFileError, match=part.name):
        store.read_part(1)
    with Session.open(copy) as session, pytest.raises(CorruptFileError, match="score its 10 images again"):
        run_to_end(session.score())


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_scores_npy_is_named(copy, damage):
    path = _run(copy) / SCORES
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:100], "flip": data[:-1] + bytes([data[-1] ^ 1]),
                      "garbage": b"x" * len(data)}[damage])
    with Session.open(copy) as session, pytest.raises(CorruptFileError, match="scores.npy"):
        session.runs.scores()


def test_a_garbage_top_table_is_written_again(copy):
    pytest.importorskip("pyarrow")
    top = _run(copy) / "top.parquet"
    top.write_bytes(b"garbage")
    with Session.open(copy) as session:
        run_to_end(session.score())
    import pyarrow.parquet as pq

    assert pq.read_table(top).num_rows > 0
    assert ScoreStore.existing(_run(copy)).intact("top.parquet")


def test_a_part_without_its_checksum_is_scored_again(copy):
    run = _run(copy)
    lines = (run / CHECKSUMS).read_text().splitlines()
    (run / CHECKSUMS).write_text("\n".join(lines[1:]) + "\n")
    assert [p.number for p in ScoreStore.existing(run).remaining_parts()] == [0]


def test_a_run_folder_removed_while_scoring_is_a_clear_error(copy):
    with Session.open(copy) as session:
        shutil.rmtree(_run(copy))
        manifest = score_manifest(session.collection, session.config, "hash", session.trainer.cycle)
        store = ScoreStore(_run(copy), manifest)
        shutil.rmtree(_run(copy))
        with pytest.raises(SessionError, match="removed while scoring"):
            store.write_part(0, np.zeros(10, dtype=np.float32))


@pytest.mark.parametrize("name", ["manifest.json", "complete.json", CHECKSUMS])
def test_garbage_run_files_give_no_traceback(copy, name):
    (_run(copy) / name).write_bytes(b"\xff\x00garbage")
    with Session.open(copy) as session:
        try:
            found = session.runs.scores()
        except (SessionError, CorruptFileError) as err:
            assert str(_run(copy)) in str(err)
        else:  # a checksum log of garbage: no part is known, so the run counts as incomplete
            assert found is None and "incomplete" in session.runs.notice()


# -- session.toml and the label store ---------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('[train]\nlearning_rate = "fast"\n', r"train.learning_rate must be a number; got 'fast'"),
    ("[data]\nsource = 5\n", r"data.source must be a string; got 5"),
    ('[score]\ntta = "yes"\n', r"score.tta must be true or false"),
    ("train = 3\n", r"\[train\] must be a table"),
    ("[model]\nimage_size = 64.5\n", r"model.image_size must be an integer"),
])
def test_wrong_typed_settings_name_key_value_and_type(copy, text, expected):
    (copy / "session.toml").write_text(text)
    with pytest.raises(ConfigError, match=expected):
        Session.open(copy)


def test_a_non_utf8_session_toml_is_a_clear_error(copy):
    (copy / "session.toml").write_bytes(b'[data]\nsource = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not valid UTF-8 TOML"):
        Session.open(copy)


def test_an_empty_session_toml_never_uses_the_current_folder(copy, monkeypatch):
    monkeypatch.chdir(copy.parent)
    (copy / "session.toml").write_text("")
    with pytest.raises(ConfigError, match="data.source is missing or empty"):
        Session.open(copy)


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_lost_label_store_is_an_error_and_new_store_keeps_the_old(copy, damage):
    store = copy / "labels.sqlite"
    if damage == "missing":
        store.unlink()
    else:
        store.write_bytes(b"")
    with pytest.raises(SessionError, match=f"label store {'is missing' if damage == 'missing' else 'is empty'}"):
        Session.open(copy)
    with Session.open(copy, new_label_store=True) as session:
        assert len(session.labels) == 0
    assert (damage == "empty") == bool(list(copy.glob("labels.sqlite.*.old")))


def test_a_damaged_label_store_is_called_so(copy):
    (copy / "labels.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(SessionError, match="not a readable label store"):
        Session.open(copy)


def _refuse_writable_sqlite(monkeypatch, message: str) -> None:
    real = sqlite3.connect

    def connect(target, *args, **kwargs):
        if "immutable=1" not in str(target):
            raise sqlite3.OperationalError(message)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(labels.sqlite3, "connect", connect)
    monkeypatch.setattr(labels, "folder_writable", lambda folder: False)


def test_a_read_only_session_is_named_and_still_readable(copy, monkeypatch):
    _refuse_writable_sqlite(monkeypatch, "attempt to write a readonly database")
    with pytest.raises(ReadOnlyError, match="read-only for you.*labels in it are intact"):
        Session.open(copy)
    with Session.open(copy, read_only=True) as session:
        assert session.labels.counts()["anomaly"] == 2
        assert session.runs.scores()[0] == 1


def test_a_full_disk_is_named_and_the_session_still_readable(copy, monkeypatch):
    _refuse_writable_sqlite(monkeypatch, "disk I/O error")
    monkeypatch.setattr(labels.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(DiskFullError, match="disk is full.*labels in it are intact"):
        Session.open(copy)
    with Session.open(copy, read_only=True) as session:
        assert session.labels.counts()["normal"] == 3


def test_a_label_refused_by_a_full_database_is_named_and_nothing_is_lost(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        store.set("a", "anomaly")
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(DiskFullError, match="label was not stored"):
            store.set_many([(f"id{i}" * 50, "normal") for i in range(2000)])
        assert store.current() == {"a": 1}


def test_atomic_writes_name_a_read_only_folder(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.os, "open", refuse)
    with pytest.raises(ReadOnlyError, match="read-only"):
        atomic.atomic_write_bytes(tmp_path / "f", b"x")


# -- file names and what an interruption kept ------------------------------------------------------


def test_undecodable_file_names_are_refused_or_skipped(tmp_path):
    images, _ = blob_images(3)
    folder = tmp_path / "imgs"
    write_pngs(folder, images)
    os.rename(folder / "img_000.png", os.path.join(os.fsencode(folder), b"caf\xe9.png"))
    with pytest.raises(UnsupportedSourceError, match=r"b'.*caf\\xe9.png' is not valid UTF-8.*--skip-bad"):
        open_collection(str(folder))
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        collection = open_collection(str(folder), on_error="skip")
    assert collection.ids() == ["img_001.png", "img_002.png"]


def test_saved_state_says_what_is_on_disk(copy):
    assert "cycle-0001.safetensors (cycle 1, 2 iterations in all)" in saved_state(copy)
    assert "the scores of cycle 1: complete" in saved_state(copy)
    _partial_run(copy, 2, keep_parts=3)
    assert "the scores of cycle 2: 3 of 4 parts kept" in saved_state(copy)
