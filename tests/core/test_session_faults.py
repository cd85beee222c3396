"""Faults of a whole session: two writers, a full disk at the save, hand-edited files, moved data.

A full disk is simulated by making the write raise ENOSPC (or the free-space
probe report too little): the tests run as root, where a chmod stops nothing.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_anomalymatch.core import atomic
from napari_anomalymatch.core.errors import (
    ConfigError,
    DiskFullError,
    NotTrainedError,
    SessionBusyError,
    SessionError,
    SourceNotFoundError,
)
from napari_anomalymatch.core.folder.lock import SessionLock, read_holder
from napari_anomalymatch.core.folder.relocation import relocate
from napari_anomalymatch.core.io.labelfiles import ConflictingLabelsWarning
from napari_anomalymatch.core.learning import checkpoints
from napari_anomalymatch.core.learning.checkpoints import load_checkpoint, read_checkpoint_info
from napari_anomalymatch.core.learning.settingsdrift import SettingsChangedWarning
from napari_anomalymatch.core.review.export import export_session
from napari_anomalymatch.core.runs import run_to_end
from napari_anomalymatch.core.session import Session

from ..conftest import blob_images, tiny_config, write_pngs


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A session over 24 blobs, trained for one cycle and scored, built once per module."""
    root = tmp_path_factory.mktemp("trained")
    images, truth = blob_images(24)
    write_pngs(root / "blobs", images)
    config = tiny_config(root / "blobs")  # the classifier head: the quickest to train, and all these need
    config = config.replace(train=dataclasses.replace(config.train, head="classifier"))
    with Session.create(root / "session", config) as session:
        ids = session.collection.ids()
        session.labels.set_many([(ids[i], "anomaly") for i in np.flatnonzero(truth)[:2]]
                                + [(ids[i], "normal") for i in np.flatnonzero(~truth)[:3]])
        run_to_end(session.train())
        run_to_end(session.score())
    return root / "session"


@pytest.fixture
def copy(trained, tmp_path) -> Path:
    """A fresh copy of the trained session (its data stays where it was)."""
    return Path(shutil.copytree(trained, tmp_path / "session"))


def _iterations(session_dir: Path) -> int:
    latest = sorted((session_dir / "checkpoints").glob("cycle-*.safetensors"))[-1]
    return read_checkpoint_info(latest).iterations_done


# -- one writer at a time ------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder_and_readers_go_on(copy, tmp_path):
    with SessionLock(copy, "anomalymatch train"), Session.open(copy) as session:
        with pytest.raises(SessionBusyError) as caught:
            run_to_end(session.train())
        message = str(caught.value)
        assert f"'anomalymatch train' (process {os.getpid()}" in message and "since 20" in message
        assert "--wait" in message
        labels = tmp_path / "more.csv"
        labels.write_text("id,label\nimg_005.png,normal\n")
        with pytest.raises(SessionBusyError):
            session.import_labels(labels)
        session.label("img_006.png", "normal")  # labelling is its own transaction: never locked out
        assert session.labels.get("img_006.png") == 0
        with Session.open(copy, read_only=True) as reader:
            assert reader.runs.scores()[0] == 1
            export_session(reader, tmp_path / "out.csv")
    assert _iterations(copy) == 2  # the refused run trained nothing


def test_a_waiting_writer_starts_when_the_holder_ends(tmp_path):
    holder = SessionLock(tmp_path, "anomalymatch score")
    holder.acquire()
    heard = []
    threading.Timer(0.3, holder.release).start()
    waiting = SessionLock(tmp_path, "anomalymatch train")
    waiting.acquire(wait=True, on_wait=heard.append)
    assert waiting.held and heard[0].command == "anomalymatch score" and heard[0].pid == os.getpid()
    assert read_holder(waiting.path).command == "anomalymatch train"
    waiting.release()
    assert read_holder(waiting.path) is None


HOLDER = textwrap.dedent("""
    import sys, time
    from napari_anomalymatch.core.folder.lock import SessionLock
    SessionLock(sys.argv[1], "anomalymatch train").acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                               env=env)
    try:
        assert process.stdout.readline().strip() == "held"
        with pytest.raises(SessionBusyError, match=f"process {process.pid}"):
            SessionLock(tmp_path, "anomalymatch label").acquire()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    with SessionLock(tmp_path, "anomalymatch label") as lock:  # at once: the kernel dropped the dead one's
        assert lock.held


def test_taking_the_lock_catches_up_with_another_writers_cycle(copy):
    with Session.open(copy) as behind:
        assert behind.trainer.cycle == 1
        with Session.open(copy) as other:
            run_to_end(other.train())
        with behind.writing("napari"):
            assert behind.trainer.cycle == 2 and behind.trainer.iterations_done == 4


# -- a full disk ---------------------------------------------------------------------------------


def test_too_little_space_is_refused_before_training(copy, monkeypatch):
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 10, 10))
    with Session.open(copy) as session, pytest.raises(DiskFullError) as caught:
        run_to_end(session.train())
    assert "MB, but the disk has 0.0 MB free; nothing was trained" in str(caught.value)
    assert _iterations(copy) == 2 and not (copy / "checkpoints" / "cycle-0002.safetensors").exists()


def _full_at_checkpoints(monkeypatch, times: int = 1_000) -> list[int]:
    real, failed = Path.write_bytes, []

    def write(self, data):
        if ".safetensors." in self.name and len(failed) < times:
            failed.append(1)
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write)
    return failed


def test_a_disk_that_fills_at_the_save_keeps_the_cycle_to_save_later(copy, monkeypatch, tmp_path):
    _full_at_checkpoints(monkeypatch)
    with Session.open(copy) as session:
        with pytest.raises(DiskFullError, match="cycle 2, 4 iterations in all.*kept in memory"):
            run_to_end(session.train())
        assert session.model.unsaved_cycle == 2
        with pytest.raises(DiskFullError):  # nothing builds on an unsaved cycle
            run_to_end(session.score())
        monkeypatch.undo()
        elsewhere = session.model.save_checkpoint(tmp_path / "spare")
        assert read_checkpoint_info(elsewhere).iterations_done == 4 and session.model.unsaved_cycle == 2
        saved = run_to_end(session.model.save_when_space(poll_s=0))
        assert session.model.unsaved_cycle is None
    assert saved == copy / "checkpoints" / "cycle-0002.safetensors"
    assert torch_equal(load_checkpoint(saved)[0], load_checkpoint(elsewhere)[0])
    assert (copy / "history" / "losses-cycle-0002.json").exists()


def torch_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


# -- hand-edited files ---------------------------------------------------------------------------


def _edit_store(copy: Path, statement: str) -> None:
    with sqlite3.connect(copy / "labels.sqlite") as db:
        db.execute(statement)


@pytest.mark.parametrize(("statement", "expected"), [
    ("UPDATE current SET label = 7 WHERE image_id = 'img_000.png'",
     r"label codes that mean nothing \('img_000.png' has 7\)"),
    ("ALTER TABLE current RENAME COLUMN label TO lab", r"another schema: its table 'current' lacks \['label'\]"),
    ("PRAGMA user_version = 9", "written by a newer napari-anomalymatch"),
])
@pytest.mark.parametrize("read_only", [False, True])
def test_a_hand_edited_label_store_is_named_with_the_fix(copy, statement, expected, read_only):
    _edit_store(copy, statement)
    before = (copy / "labels.sqlite").read_bytes()
    with pytest.raises(SessionError, match=expected):
        Session.open(copy, read_only=read_only)
    assert (copy / "labels.sqlite").read_bytes() == before  # refused, never repaired behind the user's back


def _set_model(copy: Path, old: str, new: str) -> None:
    path = copy / "session.toml"
    path.write_text(path.read_text().replace(old, new))


def test_another_model_name_is_refused_naming_both_and_the_way_back(copy):
    _set_model(copy, 'name = "tf_efficientnet_lite0"', 'name = "resnet18"')
    with Session.open(copy) as session, pytest.raises(ConfigError) as caught:
        run_to_end(session.score())
    message = str(caught.value)
    assert "model.name is 'resnet18'" in message and "name = 'tf_efficientnet_lite0'" in message
    assert "--model resnet18" in message


def test_another_image_size_says_what_it_replaces_before_scoring(copy):
    _set_model(copy, "image_size = 32", "image_size = 48")
    with Session.open(copy) as session, pytest.warns(SettingsChangedWarning) as said:
        scoring = session.score()
        next(scoring)  # the first batch: the warnings came before it
        scoring.close()
    messages = [str(w.message) for w in said]
    assert any("trained on 32-pixel images: it goes on at 48 pixels" in m for m in messages)
    assert any("image size (32 -> 48 pixels)" in m and "replaced" in m for m in messages)


# -- moved data ----------------------------------------------------------------------------------


def _move_data(copy: Path, tmp_path: Path) -> Path:
    with Session.open(copy, read_only=True) as session:
        source = Path(session.config.data.source)
    moved = Path(shutil.copytree(source, tmp_path / "moved"))
    path = copy / "session.toml"
    path.write_text(path.read_text().replace(str(source), str(tmp_path / "gone")))
    return moved


def test_a_moved_source_names_relocate_which_brings_the_session_back(copy, tmp_path):
    moved = _move_data(copy, tmp_path)
    with Session.open(copy, read_only=True) as session, pytest.raises(SourceNotFoundError) as caught:
        session.runs.scores()
    assert f"anomalymatch relocate {copy} NEW_SOURCE" in str(caught.value)
    with Session.open(copy) as session:
        done = relocate(session, moved)
        assert done.n_images == 24 and "all 24 ids of the latest score table" in done.checked
        assert session.runs.scores()[0] == 1
        assert run_to_end(session.score()).n_scored == 0  # the scores stay the collection's: none again
    assert f'source = "{moved}"' in (copy / "session.toml").read_text()


def test_relocate_to_other_images_names_the_ids_and_changes_nothing(copy, tmp_path):
    moved = _move_data(copy, tmp_path)
    (moved / "img_003.png").rename(moved / "stranger.png")
    before = (copy / "session.toml").read_text()
    with Session.open(copy) as session, pytest.raises(SessionError) as caught:
        relocate(session, moved)
    message = str(caught.value)
    assert "1 of the session's ids are missing there (img_003.png)" in message
    assert "1 ids there are not the session's (stranger.png)" in message
    assert (copy / "session.toml").read_text() == before


# -- small ones ----------------------------------------------------------------------------------


def test_export_without_the_scores_folder_says_score(copy, tmp_path):
    shutil.rmtree(copy / "scores")
    with Session.open(copy, read_only=True) as session, pytest.raises(NotTrainedError) as caught:
        export_session(session, tmp_path / "out.csv")
    assert f"run 'anomalymatch score {copy}'" in str(caught.value) and "train" not in str(caught.value)


def test_a_reader_removes_only_provably_abandoned_temporaries(copy):
    folder = copy / "checkpoints"
    dead = folder / ".cycle-0002.safetensors.999999999.0a1b2c3d.tmp"
    live = folder / f".cycle-0002.safetensors.{os.getppid()}.0a1b2c3d.tmp"
    someone_elses = folder / ".notes.tmp"
    for path in (dead, live, someone_elses):
        path.write_bytes(b"x")
    old = time.time() - 2 * atomic.STALE_AFTER_S
    os.utime(someone_elses, (old, old))  # old, but not a name the engine gives
    with Session.open(copy, read_only=True):
        pass
    assert not dead.exists() and live.exists() and someone_elses.exists()


def test_conflicting_rows_of_one_label_file_are_named(copy, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nimg_007.png,anomaly\nimg_008.png,normal\nimg_007.png,normal\nimg_008.png,normal\n")
    with Session.open(copy) as session, pytest.warns(ConflictingLabelsWarning) as said:
        session.import_labels(labels)
        assert session.labels.get("img_007.png") == 0
    assert [str(w.message) for w in said] == [
        f"{labels}: 'img_007.png' is labelled anomaly in row 2, normal in row 4; the last (row 4) is kept. "
        "Fix the file and import it again if another was meant"]
