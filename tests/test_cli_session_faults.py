"""The CLI with two writers, a full disk at the save, read-only readers and moved data."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_anomalymatch import cli
from napari_anomalymatch.cli import main
from napari_anomalymatch.core.folder.lock import LOCK_FILE, read_holder
from napari_anomalymatch.core.labels import sqlite as labels  # where the store's SQLite is opened
from napari_anomalymatch.core.learning.checkpoints import read_checkpoint_info

from .conftest import blob_images, write_label_file, write_pngs

TINY = ["--iterations", "2", "--batch-size", "4", "--unlabelled-ratio", "1", "--pool-size", "16",
        "--size", "32", "--workers", "0", "--head", "classifier"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    images, truth = blob_images(24)
    write_pngs(root / "blobs", images)
    labels_file = write_label_file(root / "labels.csv", truth)
    session = root / "session"
    assert main(["init", str(session), str(root / "blobs"), "--labels", str(labels_file), *TINY]) == 0
    assert main(["train", str(session)]) == 0
    return session


@pytest.fixture
def session(scored, tmp_path):
    return Path(shutil.copytree(scored, tmp_path / "session"))


def _checkpoint(session: Path, cycle: int):
    return read_checkpoint_info(session / "checkpoints" / f"cycle-{cycle:04d}.safetensors")


def _wait_for_holder(session: Path, pid: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = read_holder(session / LOCK_FILE)
        if holder is not None and holder.pid == pid:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never took the session lock")


def test_two_trains_at_once_one_refused_one_waiting_and_every_iteration_kept(session, capsys):
    argv = ["train", str(session), "--no-score", "--iterations", "4"]
    code = f"import sys\nfrom napari_anomalymatch.cli import main\nsys.exit(main({argv!r}))"
    first = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_holder(session, first.pid)
    assert main(["train", str(session), "--no-score"]) == 2
    refused = capsys.readouterr().err
    assert f"'anomalymatch train' (process {first.pid}" in refused and "--wait" in refused
    assert main(["train", str(session), "--no-score", "--wait", "--iterations", "3"]) == 0
    assert f"waiting for 'anomalymatch train' (process {first.pid}" in capsys.readouterr().err
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert _checkpoint(session, 2).iterations_done == 2 + 4  # the first run, after the cycle before
    assert _checkpoint(session, 3).iterations_done == 2 + 4 + 3  # the waiting run, on top of it
    assert read_holder(session / LOCK_FILE) is None


def _full_in(folder: Path, monkeypatch, times: int = 1_000) -> list[int]:
    """Writes of checkpoints in ``folder`` fail with ENOSPC ``times`` times."""
    real, failed = Path.write_bytes, []

    def write(self, data):
        if self.parent == folder and ".safetensors." in self.name and len(failed) < times:
            failed.append(1)
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write)
    return failed


def test_a_full_disk_at_the_save_puts_the_cycle_where_save_to_says(session, tmp_path, monkeypatch, capsys):
    _full_in(session / "checkpoints", monkeypatch)
    spare = tmp_path / "spare"
    assert main(["train", str(session), "--no-score", "--save-to", str(spare)]) == 2
    err = capsys.readouterr().err
    assert f"cycle 2 was saved to {spare / 'cycle-0002.safetensors'} instead" in err and "Traceback" not in err
    assert read_checkpoint_info(spare / "cycle-0002.safetensors").iterations_done == 4
    assert not (session / "checkpoints" / "cycle-0002.safetensors").exists()


def test_a_full_disk_at_the_save_waits_for_space(session, monkeypatch, capsys):
    failed = _full_in(session / "checkpoints", monkeypatch, times=2)
    monkeypatch.setattr(cli, "SPACE_POLL_S", 0.0)
    assert main(["train", str(session), "--no-score"]) == 0
    assert "waiting for space to save cycle 2" in capsys.readouterr().err and len(failed) == 2
    assert _checkpoint(session, 2).iterations_done == 4


def test_similar_is_a_reader_and_works_on_a_read_only_session(session, monkeypatch, capsys):
    real = labels.sqlite3.connect

    def connect(target, *args, **kwargs):
        if "immutable=1" not in str(target):
            raise labels.sqlite3.OperationalError("attempt to write a readonly database")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(labels.sqlite3, "connect", connect)
    monkeypatch.setattr(labels, "folder_writable", lambda folder: False)
    assert main(["similar", str(session), "img_001.png", "--top", "3"]) == 0
    assert capsys.readouterr().out.count(".png") == 3


def test_relocate_is_named_by_the_error_and_brings_a_moved_session_back(session, tmp_path, capsys):
    toml = session / "session.toml"
    source = next(line.split('"')[1] for line in toml.read_text().splitlines() if line.startswith("source ="))
    moved = shutil.copytree(source, tmp_path / "moved")
    toml.write_text(toml.read_text().replace(source, str(tmp_path / "gone")))
    assert main(["info", str(session)]) == 2
    assert f"anomalymatch relocate {session} NEW_SOURCE" in capsys.readouterr().err
    assert main(["relocate", str(session), str(moved)]) == 0
    assert "checked all 24 ids of the latest score table, in order" in capsys.readouterr().out
    assert main(["export", str(session), str(tmp_path / "out.csv")]) == 0
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 25
