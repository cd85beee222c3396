"""Drive the real ``anomalymatch`` CLI through faults and count what it answers.

A session is made once (40 PNG blobs written here, one trained and scored
cycle); each case damages a copy of it, runs one command in a fresh process
and is classed as a *clear error* (exit 2, one message with the expected words,
no traceback), *works* (exit 0 and the result checked), a *traceback*, or a
*silent wrong result* (exit 0 where a refusal or warning was due, or a wrong
result).  A full disk or a read-only folder is simulated by making the write
raise the kernel's OSError in the command's process (the machine runs as root,
where chmod does not stop a write).  Results go to benchmarks/results/faults.json.

    python benchmarks/faults.py [--out benchmarks/results/faults.json] [--only "init on"]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import blob_images, write_label_file, write_pngs  # noqa: E402

TINY = ["--iterations", "2", "--batch-size", "4", "--unlabelled-ratio", "1", "--pool-size", "16",
        "--size", "32", "--workers", "0"]
PRELUDE = "import sys\nfrom napari_anomalymatch.cli import main\n"
READ_ONLY_SQLITE = """
import sqlite3
from napari_anomalymatch.core import labels
_real = sqlite3.connect
def _connect(target, *a, **k):
    if "immutable=1" not in str(target):
        raise sqlite3.OperationalError("{message}")
    return _real(target, *a, **k)
labels.sqlite3.connect = _connect
labels.folder_writable = lambda folder: False
"""
FULL_DISK = READ_ONLY_SQLITE.format(message="disk I/O error") + """
import shutil
labels.shutil.disk_usage = lambda _: shutil._ntuple_diskusage(10, 10, 0)
"""
CHECKPOINT_ENOSPC = """
import errno, pathlib
from napari_anomalymatch import cli
cli.SPACE_POLL_S = 0.0
_write = pathlib.Path.write_bytes
_refused = []
def _full(self, data):
    if ".safetensors." in self.name and "spare" not in str(self) and len(_refused) < {times}:
        _refused.append(1)
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 3])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))
    return _write(self, data)
pathlib.Path.write_bytes = _full
"""
EXPORT_EACCES = """
import errno
from astropy.table import Table
def _refuse(self, path, *a, **k):
    raise PermissionError(errno.EACCES, "Permission denied", str(path))
Table.write = _refuse
"""


@dataclass
class Case:
    name: str
    command: list[str]
    expect: str  # "error" or "works"
    words: str = ""  # in stderr (error) or in stderr/stdout (works: a warning that must be given)
    setup: Callable[[Path], None] = lambda s: None
    check: Callable[[Path, str, str], bool] = lambda s, out, err: True
    patch: str = ""
    umask: int | None = None
    outcome: str = field(default="", init=False)
    detail: str = field(default="", init=False)


def run(argv: list[str], patch: str = "", umask: int | None = None, timeout: int = 600):
    code = PRELUDE + patch + f"\nsys.exit(main({argv!r}))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=timeout, preexec_fn=preexec)
    return done.returncode, done.stdout, done.stderr


def make_base(root: Path) -> Path:
    images, truth = blob_images(40)
    write_pngs(root / "blobs", images)
    labels = write_label_file(root / "labels.csv", truth)
    session = root / "base"
    for argv in (["init", str(session), str(root / "blobs"), "--labels", str(labels), "--part-size", "10",
                  *TINY], ["train", str(session)]):
        rc, out, err = run(argv)
        if rc != 0:
            raise SystemExit(f"making the base session failed: {argv}\n{out}\n{err}")
    return session


# -- damage ----------------------------------------------------------------------------------------


def partial_run(session: Path, cycle: int = 2, keep: int = 1) -> None:
    run_dir = session / "scores" / f"cycle-{cycle:04d}"
    shutil.copytree(session / "scores" / "cycle-0001", run_dir, dirs_exist_ok=True)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "cycle": cycle}))
    for name in ("complete.json", "scores.npy", "scores.parquet", "top.parquet"):
        (run_dir / name).unlink(missing_ok=True)
    for part in sorted(run_dir.glob("part-*.npy"))[keep:]:
        part.unlink()


def only_partial(session: Path) -> None:
    partial_run(session, 2, 1)
    shutil.rmtree(session / "scores" / "cycle-0001")


def flip_last(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def damaged_latest_checkpoint(session: Path) -> None:
    latest = session / "checkpoints" / "cycle-0002.safetensors"
    shutil.copy(session / "checkpoints" / "cycle-0001.safetensors", latest)
    flip_last(latest)


def foreign_checkpoint(session: Path) -> None:
    import torch

    from napari_anomalymatch.core.learning.checkpoints import CheckpointInfo, save_checkpoint

    save_checkpoint(session / "checkpoints" / "cycle-0002.safetensors", {"x": torch.zeros(3)},
                    CheckpointInfo(2, 4, "tf_efficientnet_lite0", 1, 32, "x"))


def damaged_part(kind: str) -> Callable[[Path], None]:
    def damage(session: Path) -> None:
        run_dir = session / "scores" / "cycle-0001"
        part = sorted(run_dir.glob("part-*.npy"))[1]
        if kind == "flip":
            flip_last(part)
        else:
            np.save(part, np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
        for name in ("complete.json", "scores.npy"):
            (run_dir / name).unlink()
    return damage


def write_file(relative: str, data: bytes) -> Callable[[Path], None]:
    return lambda session: (session / relative).write_bytes(data)


def truncate(relative: str, keep: int) -> Callable[[Path], None]:
    return lambda session: (session / relative).write_bytes((session / relative).read_bytes()[:keep])


def remove(relative: str) -> Callable[[Path], None]:
    return lambda session: (session / relative).unlink()


def bad_name_folder(session: Path) -> None:
    folder = session.parent / "oddnames"
    images, _ = blob_images(12)
    write_pngs(folder, images)
    os.rename(folder / "img_000.png", os.path.join(os.fsencode(folder), b"caf\xe9.png"))
    shutil.rmtree(session)


def stale_temporary(session: Path) -> None:
    (session / "checkpoints" / ".cycle-0002.safetensors.999999999.abcd.tmp").write_bytes(b"x" * 1000)


def export_then_delete_store(session: Path) -> None:
    rc, out, err = run(["export", str(session), str(session.parent / "saved.csv")])
    assert rc == 0, err
    (session / "labels.sqlite").unlink()


def no_initial_anomaly(session: Path) -> None:
    images, truth = blob_images(20)
    paths = write_pngs(session.parent / "bench" / "images", images)
    with open(session.parent / "bench" / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "is_anomaly", "initial_label"])
        for i, path in enumerate(paths):
            writer.writerow([f"images/{path.name}", int(truth[i]), "normal" if i < 4 and not truth[i] else ""])


# -- checks ----------------------------------------------------------------------------------------


def exported_finite(name: str) -> Callable[[Path, str, str], bool]:
    def check(session: Path, out: str, err: str) -> bool:
        with open(session.parent / name) as handle:
            rows = list(csv.DictReader(handle))
        return len(rows) == 40 and all(np.isfinite(float(r["score"])) for r in rows)
    return check


def info_says(key: str, value) -> Callable[[Path, str, str], bool]:
    return lambda session, out, err: json.loads(out)[key] == value


def top_table_readable(session: Path, out: str, err: str) -> bool:
    import pyarrow.parquet as pq

    return pq.read_table(session / "scores" / "cycle-0001" / "top.parquet").num_rows > 0


def checkpoint_saved_late(before: dict[str, bytes]) -> Callable[[Path, str, str], bool]:
    """The cycle the full disk refused was saved once there was space, and the previous one kept."""
    def check(session: Path, out: str, err: str) -> bool:
        from napari_anomalymatch.core.learning.checkpoints import read_checkpoint_info

        folder = session / "checkpoints"
        return (folder / "cycle-0001.safetensors").read_bytes() == before["ckpt"] and \
            not list(folder.glob(".*.tmp")) and "previous one is intact" in err and \
            read_checkpoint_info(folder / "cycle-0002.safetensors").iterations_done == 4
    return check


def cases(base: Path) -> list[Case]:
    s = "{session}"
    before = {"ckpt": (base / "checkpoints" / "cycle-0001.safetensors").read_bytes()}
    return [
        Case("info: newer run incomplete, older complete", ["info", s], "works", "cycle 2 is incomplete (1 of 4",
             lambda x: partial_run(x), info_says("scored_cycle", 1)),
        Case("export: newer run incomplete, older complete", ["export", s, "{tmp}/out.csv"], "works",
             "cycle 2 is incomplete", lambda x: partial_run(x), exported_finite("out.csv")),
        Case("export: only an incomplete run", ["export", s, "{tmp}/out.csv"], "error",
             "scoring of cycle 2 is incomplete (1 of 4 parts)", only_partial),
        Case("info: only an incomplete run", ["info", s], "works", "no complete scores exist yet", only_partial,
             info_says("scored_cycle", None)),
        Case("empty session.toml", ["info", s], "error", "data.source is missing or empty",
             write_file("session.toml", b"")),
        Case("learning_rate = 'fast'", ["train", s], "error", "train.learning_rate must be a number",
             write_file("session.toml", b'[data]\nsource = "x"\n[train]\nlearning_rate = "fast"\n')),
        Case("source = 5", ["info", s], "error", "data.source must be a string", write_file("session.toml",
                                                                                            b"[data]\nsource = 5\n")),
        Case("[train] is not a table", ["info", s], "error", "[train] must be a table",
             write_file("session.toml", b'train = 3\n')),
        Case("non-UTF-8 byte in session.toml", ["info", s], "error", "not valid UTF-8 TOML",
             write_file("session.toml", b'[data]\nsource = "caf\xe9"\n')),
        Case("labels.sqlite deleted", ["info", s], "error", "label store is missing", remove("labels.sqlite")),
        Case("labels.sqlite emptied", ["train", s], "error", "label store is empty",
             write_file("labels.sqlite", b"")),
        Case("labels.sqlite garbage", ["info", s], "error", "not a readable label store",
             write_file("labels.sqlite", b"garbage" * 200)),
        Case("label --new-store from an export", ["label", s, "{tmp}/saved.csv", "--new-store"], "works",
             "", export_then_delete_store, lambda x, out, err: "'normal': 3" in out and "'anomaly': 2" in out),
        Case("damaged latest checkpoint (flipped byte)", ["score", s], "error",
             "continue from cycle 1", damaged_latest_checkpoint),
        Case("truncated checkpoint", ["train", s], "error", "cycle-0001.safetensors",
             truncate("checkpoints/cycle-0001.safetensors", 5000)),
        Case("checkpoint with foreign tensors", ["score", s], "error", "do not fit", foreign_checkpoint),
        Case("score part with a flipped byte", ["score", s], "error", "damaged (SHA-256 mismatch)",
             damaged_part("flip")),
        Case("object-array .npy planted as a part", ["score", s], "error", "part-000001.npy",
             damaged_part("object")),
        Case("truncated scores.npy", ["export", s, "{tmp}/out.csv"], "error", "scores.npy",
             truncate("scores/cycle-0001/scores.npy", 100)),
        Case("garbage top.parquet", ["score", s], "works", "", write_file("scores/cycle-0001/top.parquet", b"junk"),
             top_table_readable),
        Case("garbage manifest.json", ["info", s], "error", "unreadable score manifest",
             write_file("scores/cycle-0001/manifest.json", b"{not json")),
        Case("garbage complete.json", ["info", s], "error", "complete.json",
             write_file("scores/cycle-0001/complete.json", b"\xff\xfe")),
        Case("export --top 0", ["export", s, "{tmp}/out.csv", "--top", "0"], "error", "expected an integer >= 1"),
        Case("export --top -5", ["export", s, "{tmp}/out.csv", "--top", "-5"], "error", "expected an integer >= 1"),
        Case("train --cycles 0", ["train", s, "--cycles", "0"], "error", "expected an integer >= 1"),
        Case("label --skip-bad with an unknown id", ["label", s, "{tmp}/unknown.csv", "--skip-bad"], "works", "",
             lambda x: (x.parent / "unknown.csv").write_text("id,label\nnope.png,anomaly\nimg_001.png,normal\n")),
        Case("label with an unknown id (no --skip-bad)", ["label", s, "{tmp}/unknown.csv"], "error",
             "--skip-bad", lambda x: (x.parent / "unknown.csv").write_text("id,label\nnope.png,anomaly\n")),
        Case("init on a non-UTF-8 file name", ["init", s, "{tmp}/oddnames"], "error", "is not valid UTF-8",
             bad_name_folder),
        Case("init --skip-bad on a non-UTF-8 file name", ["init", s, "{tmp}/oddnames", "--skip-bad"], "works",
             "not valid UTF-8", bad_name_folder, lambda x, out, err: "11 images" in out),
        Case("read-only session: info", ["info", s], "works", "", patch=READ_ONLY_SQLITE.format(
            message="attempt to write a readonly database"), check=info_says("scored_cycle", 1)),
        Case("read-only session: export", ["export", s, "{tmp}/out.csv"], "works", "", patch=READ_ONLY_SQLITE.format(
            message="attempt to write a readonly database"), check=exported_finite("out.csv")),
        Case("read-only session: label", ["label", s, "{tmp}/unknown.csv"], "error", "read-only for you",
             lambda x: (x.parent / "unknown.csv").write_text("id,label\nimg_001.png,normal\n"),
             patch=READ_ONLY_SQLITE.format(message="attempt to write a readonly database")),
        Case("full disk: info", ["info", s], "works", "", patch=FULL_DISK, check=info_says("scored_cycle", 1)),
        Case("full disk: train", ["train", s], "error", "the disk is full", patch=FULL_DISK),
        Case("full disk during the checkpoint save, then space", ["train", s, "--no-score"], "works",
             "waiting for space to save cycle 2", patch=CHECKPOINT_ENOSPC.format(times=2),
             check=checkpoint_saved_late(before)),
        Case("export into a folder the user cannot write", ["export", s, "{tmp}/out.csv"], "error",
             "cannot write here", patch=EXPORT_EACCES),
        Case("stale temporary from a killed save", ["label", s, "{tmp}/unknown.csv"], "works", "",
             lambda x: (stale_temporary(x), (x.parent / "unknown.csv").write_text("id,label\nimg_001.png,normal\n")),
             lambda x, out, err: not list((x / "checkpoints").glob(".*.tmp"))),
        Case("umask 002 honoured", ["label", s, "{tmp}/unknown.csv", "--skip-bad"], "works", "",
             lambda x: (x.parent / "unknown.csv").write_text("id,label\nimg_001.png,normal\n"),
             lambda x, out, err: (x / "session.toml").stat().st_mode & 0o777 == 0o664, umask=0o002),
        Case("evaluate with no initial anomaly", ["evaluate", "{tmp}/bench/manifest.csv", *TINY], "error",
             "training needs at least one anomaly and one normal label", no_initial_anomaly),
    ]


# -- inputs: blank or non-finite images, Unicode names in exports, large images, spreadsheet CSVs ----------


def zarr_missing_chunks(session: Path) -> None:
    """``stack.zarr``: 20 noise images in chunks of 2, the chunks of images 6-7 and 14-15 deleted."""
    import zarr

    shutil.rmtree(session)
    array = zarr.open_group(str(session.parent / "stack.zarr"), mode="w").create_array(
        "images", shape=(20, 32, 32), chunks=(2, 32, 32), dtype="float32")
    array[:] = np.random.default_rng(0).normal(100, 5, (20, 32, 32)).astype(np.float32)
    for chunk in ("3", "7"):
        shutil.rmtree(session.parent / "stack.zarr" / "images" / "c" / chunk)


def cube_with_nan_plane(session: Path) -> None:
    """``cube.fits``: HDUs 1 and 2 are 6-plane cubes; plane 4 of HDU 2 is all NaN."""
    from astropy.io import fits

    shutil.rmtree(session)
    rng = np.random.default_rng(0)
    first, second = (rng.normal(100, 5, (6, 32, 32)).astype(np.float32) for _ in range(2))
    second[4] = np.nan
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(first), fits.ImageHDU(second)]).writeto(
        session.parent / "cube.fits")


def folder_with_blank_png(session: Path) -> None:
    shutil.rmtree(session)
    images, _ = blob_images(12)
    images[5] = 0  # a cutout off the survey's footprint
    write_pngs(session.parent / "withblank", images)


UNICODE_NAMES = ["🚀 ring.png", "galaxie_é.png", "物体.png"]


def unicode_session(session: Path) -> None:
    """A session trained on ``données/`` whose file names hold an emoji, an accent and CJK."""
    shutil.rmtree(session)
    images, truth = blob_images(20)
    names = [UNICODE_NAMES[i] if i < 3 else f"img_{i:03d}.png" for i in range(20)]
    write_pngs(session.parent / "données", images, names=names)
    labels = session.parent / "labels.csv"
    rows = [[names[i], "anomaly" if truth[i] else "normal"] for i in (0, 1, 2, 3, 5)]
    labels.write_text("id,label\n" + "".join(f"{n},{label}\n" for n, label in rows), encoding="utf-8")
    for argv in (["init", str(session), str(session.parent / "données"), "--labels", str(labels), *TINY],
                 ["train", str(session)]):
        rc, out, err = run(argv)
        assert rc == 0, err


def exported_ids_equal(name: str) -> Callable[[Path, str, str], bool]:
    def check(session: Path, out: str, err: str) -> bool:
        from astropy.table import Table

        table = Table.read(session.parent / name)
        table.convert_bytestring_to_unicode()
        return set(UNICODE_NAMES) <= set(table["id"]) and all(
            Path(p).name == i and "données" in p for p, i in zip(table["path"], table["id"], strict=True))
    return check


LARGE_SIDE = 6000  # 144 MB of float32: above the 4,096-pixel side from which images are read in blocks
PEAK_MEMORY = """
import atexit, json, pathlib, resource
import torch, napari_anomalymatch.core.session  # what any init imports: not the image's cost
_baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
atexit.register(lambda: pathlib.Path({path!r}).write_text(json.dumps(
    [_baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss])))
"""


def large_tile(session: Path) -> None:
    from astropy.io import fits

    shutil.rmtree(session)
    tile = np.random.default_rng(0).normal(100, 5, (LARGE_SIDE, LARGE_SIDE)).astype(np.float32)
    fits.PrimaryHDU(tile).writeto(session.parent / "tile.fits")


def grew_at_most(times_file: float) -> Callable[[Path, str, str], bool]:
    def check(session: Path, out: str, err: str) -> bool:
        baseline, peak = json.loads((session.parent / "memory.json").read_text())  # kB
        return (peak - baseline) * 1024 <= times_file * (session.parent / "tile.fits").stat().st_size
    return check


def spreadsheet_files(session: Path) -> None:
    """What a spreadsheet saves: UTF-8 with a byte-order mark, semicolons, Windows line endings."""
    images, _ = blob_images(6)
    write_pngs(session.parent / "sheet", images)
    rows = ["path;id;label;ra"] + [f"sheet/img_{i:03d}.png;obj {i};{'anomaly' if i == 0 else ''};10,{i}5"
                                   for i in range(6)]
    (session.parent / "catalogue.csv").write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode())
    (session.parent / "labels.csv").write_bytes("\ufeffid\tlabel\r\nobj 1\tnormal\r\n".encode())


def catalogue_read(session: Path, out: str, err: str) -> bool:
    from napari_anomalymatch.core.labels import ANOMALY, NORMAL
    from napari_anomalymatch.core.session import Session

    opened = Session.open(session)
    labels = opened.labels.current()
    return opened.collection.ids()[:2] == ["obj 0", "obj 1"] and labels == {"obj 0": ANOMALY, "obj 1": NORMAL} and \
        abs(opened.collection.metadata([1])["ra"][0] - 10.15) < 1e-9


def input_cases() -> list[Case]:
    """Issue 34, items 2, 3, 5 and 6: each a case of its own."""
    s = "{session}"
    return [
        Case("init on a Zarr store with missing chunks", ["init", s, "{tmp}/stack.zarr"], "error",
             "is missing from the store", zarr_missing_chunks),
        Case("init --skip-bad on a Zarr store with missing chunks", ["init", s, "{tmp}/stack.zarr", "--skip-bad"],
             "works", "'c/3/0/0' is missing from the store", zarr_missing_chunks),
        Case("init --hdu 1,2 on a cube with an all-NaN plane", ["init", s, "{tmp}/cube.fits", "--hdu", "1,2"],
             "error", "channel 1 (HDU 2) has no finite pixel", cube_with_nan_plane),
        Case("init on a folder holding an all-black image", ["init", s, "{tmp}/withblank"], "error",
             "img_005.png: is blank", folder_with_blank_png),
        Case("export FITS with an emoji, CJK and accents in ids and folder", ["export", s, "{tmp}/out.fits"], "works",
             "", unicode_session, exported_ids_equal("out.fits")),
        Case(f"init on a {LARGE_SIDE}^2 FITS image grows at most 2x its size", ["init", s, "{tmp}/tile.fits"],
             "works", "", large_tile, grew_at_most(2.0), patch=PEAK_MEMORY.format(path="{tmp}/memory.json")),
        Case("init on a spreadsheet catalogue (BOM, ';', decimal commas, CRLF)",
             ["init", s, "{tmp}/catalogue.csv", "--labels", "{tmp}/labels.csv"], "works", "",
             lambda x: (spreadsheet_files(x), shutil.rmtree(x)), catalogue_read),
    ]


# -- one writer, a full disk, hand-edited files, moved data (issue 34) -----------------------------


LOW_SPACE = """
import shutil
from napari_anomalymatch.core.learning import checkpoints
checkpoints.shutil.disk_usage = lambda _: shutil._ntuple_diskusage(10**9, 10**9 - 5 * 10**6, 5 * 10**6)
"""


def sql(statement: str) -> Callable[[Path], None]:
    def edit(session: Path) -> None:
        import sqlite3

        with sqlite3.connect(session / "labels.sqlite") as db:
            db.execute(statement)
    return edit


def edit_toml(old: str, new: str) -> Callable[[Path], None]:
    def edit(session: Path) -> None:
        path = session / "session.toml"
        path.write_text(path.read_text().replace(old, new))
    return edit


def data_moved(keep_same: bool = True) -> Callable[[Path], None]:
    """The data copied to {tmp}/moved (one image renamed unless ``keep_same``) and gone from the source."""
    def move(session: Path) -> None:
        text = (session / "session.toml").read_text()
        source = next(line.split('"')[1] for line in text.splitlines() if line.startswith("source ="))
        moved = Path(shutil.copytree(source, session.parent / "moved"))
        if not keep_same:
            (moved / "img_003.png").rename(moved / "stranger.png")
        (session / "session.toml").write_text(text.replace(source, str(session.parent / "gone")))
    return move


def checkpoint_untouched(before: dict[str, bytes]) -> Callable[[Path, str, str], bool]:
    def check(session: Path, out: str, err: str) -> bool:
        folder = session / "checkpoints"
        return (folder / "cycle-0001.safetensors").read_bytes() == before["ckpt"] and \
            not (folder / "cycle-0002.safetensors").exists()
    return check


def saved_to_spare(session: Path, out: str, err: str) -> bool:
    from napari_anomalymatch.core.learning.checkpoints import read_checkpoint_info

    return read_checkpoint_info(session.parent / "spare" / "cycle-0002.safetensors").iterations_done == 4


def relocated(session: Path, out: str, err: str) -> bool:
    rc, info, _ = run(["info", str(session)])
    return rc == 0 and json.loads(info)["scored_cycle"] == 1 and str(session.parent / "moved") in info


def session_cases(base: Path) -> list[Case]:
    s = "{session}"
    before = {"ckpt": (base / "checkpoints" / "cycle-0001.safetensors").read_bytes()}
    one_row = lambda x: (x.parent / "one.csv").write_text("id,label\nimg_004.png,anomaly\n")  # noqa: E731
    return [
        Case("too little space for the checkpoint, before training", ["train", s, "--no-score"], "error",
             "nothing was trained", patch=LOW_SPACE, check=checkpoint_untouched(before)),
        Case("full disk during the save, --save-to", ["train", s, "--no-score", "--save-to", "{tmp}/spare"], "error",
             "cycle 2 was saved to", patch=CHECKPOINT_ENOSPC.format(times=10**6), check=saved_to_spare),
        Case("unknown label code in the label store", ["info", s], "error", "label codes that mean nothing",
             sql("UPDATE current SET label = 7 WHERE image_id = 'img_000.png'")),
        Case("label store of another schema", ["train", s], "error", "has another schema",
             sql("ALTER TABLE current RENAME COLUMN label TO lab")),
        Case("label store of a newer version", ["info", s], "error", "written by a newer",
             sql("PRAGMA user_version = 9")),
        Case("model.name edited to another network", ["score", s], "error", "model.name is 'resnet18'",
             edit_toml('name = "tf_efficientnet_lite0"', 'name = "resnet18"')),
        Case("model.image_size edited 32 -> 48", ["score", s], "works", "image size (32 -> 48 pixels)",
             edit_toml("image_size = 32", "image_size = 48"), lambda x, out, err: "scored 40 images" in out),
        Case("data moved: info", ["info", s], "error", "anomalymatch relocate", data_moved()),
        Case("data moved: export", ["export", s, "{tmp}/out.csv"], "error", "anomalymatch relocate", data_moved()),
        Case("relocate to the moved data", ["relocate", s, "{tmp}/moved"], "works", "", data_moved(), relocated),
        Case("relocate to other images", ["relocate", s, "{tmp}/moved"], "error",
             "1 of the session's ids are missing there (img_003.png)", data_moved(keep_same=False),
             lambda x, out, err: "gone" in (x / "session.toml").read_text()),
        Case("export after the scores folder is deleted", ["export", s, "{tmp}/out.csv"], "error",
             "run 'anomalymatch score", lambda x: shutil.rmtree(x / "scores")),
        Case("similar on a read-only session", ["similar", s, "img_001.png", "--top", "3"], "works", "",
             patch=READ_ONLY_SQLITE.format(message="attempt to write a readonly database"),
             check=lambda x, out, err: out.count(".png") == 3),
        Case("similar on a full disk", ["similar", s, "img_001.png", "--top", "3"], "works", "", patch=FULL_DISK,
             check=lambda x, out, err: out.count(".png") == 3),
        Case("info after a killed save", ["info", s], "works", "", stale_temporary,
             lambda x, out, err: not list((x / "checkpoints").glob(".*.tmp"))),
        Case("conflicting rows in one label file", ["label", s, "{tmp}/twice.csv"], "works",
             "'img_001.png' is labelled anomaly in row 2, normal in row 3",
             lambda x: (x.parent / "twice.csv").write_text("id,label\nimg_001.png,anomaly\nimg_001.png,normal\n")),
        Case("label import while another process writes", ["label", s, "{tmp}/one.csv"], "error",
             "the session is being changed by 'anomalymatch train'", lambda x: (one_row(x), hold_lock(x)),
             label_absent("img_004.png")),
    ]


HOLDER = """
import sys, time
from napari_anomalymatch.core.folder.lock import SessionLock
SessionLock(sys.argv[1], "anomalymatch train").acquire()
time.sleep(float(sys.argv[2]))
"""


def hold_lock(session: Path, seconds: float = 300) -> subprocess.Popen:
    """Another process holding the session's write lock, as a training run does; returns once it holds it."""

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(session), str(seconds)],
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    wait_for_holder(session, holder.pid)
    return holder


def wait_for_holder(session: Path, pid: int) -> None:
    from napari_anomalymatch.core.folder.lock import LOCK_FILE, read_holder

    while True:
        found = read_holder(session / LOCK_FILE)
        if found is not None and found.pid == pid:
            return
        time.sleep(0.05)


def start(argv: list[str]) -> subprocess.Popen:
    code = PRELUDE + f"\nsys.exit(main({argv!r}))\n"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})


def iterations_of(session: Path, cycle: int) -> int | None:
    from napari_anomalymatch.core.learning.checkpoints import read_checkpoint_info

    path = session / "checkpoints" / f"cycle-{cycle:04d}.safetensors"
    return read_checkpoint_info(path).iterations_done if path.exists() else None


def concurrent_train_case(base: Path, work: Path) -> Case:
    """Three trains at once: the first holds the lock, one is refused, one waits; no iteration is lost."""
    case = Case("two trains at once (one refused, one --wait)", ["train", "{session}"], "works", "")
    session = Path(shutil.copytree(base, work / "concurrent"))
    first = start(["train", str(session), "--no-score", "--iterations", "40"])
    wait_for_holder(session, first.pid)
    refused = start(["train", str(session), "--no-score"])
    waiting = start(["train", str(session), "--no-score", "--wait", "--iterations", "2"])
    ended = [(p.wait(timeout=1800), *p.communicate()) for p in (first, refused, waiting)]
    errors = "".join(err for _, _, err in ended)
    named = f"'anomalymatch train' (process {first.pid}"
    kept = (iterations_of(session, 2), iterations_of(session, 3)) == (2 + 40, 2 + 40 + 2)
    if "Traceback" in errors:
        case.outcome, case.detail = "traceback", errors.strip().splitlines()[-1]
    elif [rc for rc, _, _ in ended] == [0, 2, 0] and named in ended[1][2] and named in ended[2][2] and kept:
        case.outcome, case.detail = "works", f"refused: {ended[1][2].strip().splitlines()[-1]}"
    else:
        case.outcome, case.detail = "silent wrong result", (f"exits {[rc for rc, _, _ in ended]}, iterations "
                                                            f"{iterations_of(session, 2)}, {iterations_of(session, 3)}")
    return case


def killed_holder_case(base: Path, work: Path) -> Case:
    """A training run killed with -9 while it holds the lock: the next one starts at once."""
    case = Case("train after a kill -9'd train", ["train", "{session}"], "works", "")
    session = Path(shutil.copytree(base, work / "killed"))
    holder = start(["train", str(session), "--no-score", "--iterations", "5000"])
    wait_for_holder(session, holder.pid)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    rc, out, err = run(["train", str(session), "--no-score", "--iterations", "2"])
    case.outcome, case.detail = classify(case, rc, out, err, session)
    if case.outcome == "works" and iterations_of(session, 2) != 4:
        case.outcome, case.detail = "silent wrong result", f"cycle 2 holds {iterations_of(session, 2)} iterations"
    return case


def label_absent(image_id: str) -> Callable[[Path, str, str], bool]:
    def check(session: Path, out: str, err: str) -> bool:
        import sqlite3

        from napari_anomalymatch.core.folder.lock import LOCK_FILE, read_holder

        os.kill(read_holder(session / LOCK_FILE).pid, signal.SIGKILL)  # the holder's work is done
        with sqlite3.connect(session / "labels.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM current WHERE image_id = ?", (image_id,)).fetchone()[0] == 0
    return check


def classify(case: Case, rc: int, out: str, err: str, session: Path) -> tuple[str, str]:
    if "Traceback" in err:
        return "traceback", err.strip().splitlines()[-1]
    last = err.strip().splitlines()[-1] if err.strip() else ""
    if case.expect == "error":
        if rc == 0:
            return "silent wrong result", "exit 0 where a refusal was due"
        if rc == 2 and case.words in err and case.check(session, out, err):
            return "clear error", last
        return "unclear error", f"exit {rc}: {last}"
    if rc != 0:
        return "unexpected error", f"exit {rc}: {last}"
    if (case.words and case.words not in err + out) or not case.check(session, out, err):
        return "silent wrong result", "exit 0 but the result or its warning was wrong"
    return "works", last or out.strip().splitlines()[-1]


def interrupt_case(base: Path, work: Path) -> Case:
    """Ctrl-C in the middle of a training cycle: the message must name what is really on disk."""
    case = Case("Ctrl-C during training", ["train", "{session}"], "error", "")
    session = Path(shutil.copytree(base, work / "interrupt"))
    code = PRELUDE + f"\nsys.exit(main({['train', str(session), '--iterations', '5000', '--no-score']!r}))\n"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    time.sleep(60)  # well into the cycle's 5,000 iterations
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    from napari_anomalymatch.core.learning.checkpoints import read_checkpoint_info

    latest = sorted((session / "checkpoints").glob("cycle-*.safetensors"))[-1]
    info = read_checkpoint_info(latest)
    truthful = f"{latest} (cycle {info.cycle}, {info.iterations_done} iterations in all)" in err
    if "Traceback" in err:
        case.outcome, case.detail = "traceback", err.strip().splitlines()[-1]
    elif process.returncode == 130 and truthful:
        case.outcome, case.detail = "clear error", f"{latest.name} kept ({info.iterations_done} iterations): " + \
            err.strip().splitlines()[-1]
    else:
        case.outcome, case.detail = "silent wrong result", f"exit {process.returncode}: {err[-300:]}"
    return case


def run_cases(todo: list[Case], base: Path | None, work: Path, start: int = 0) -> list[Case]:
    """Run each case on a fresh copy of ``base`` (an empty folder without one), classing what it answered."""
    for number, case in enumerate(todo, start=start):
        folder = work / f"case{number:02d}"
        session = Path(shutil.copytree(base, folder / "session")) if base is not None else folder / "session"
        session.mkdir(parents=True, exist_ok=True)
        case.setup(session)
        argv = [a.format(session=session, tmp=folder) for a in case.command]
        rc, out, err = run(argv, case.patch.replace("{tmp}", str(folder)), case.umask)
        case.outcome, case.detail = classify(case, rc, out, err, session)
        print(f"{case.outcome:20s} {case.name}: {case.detail[:160]}", flush=True)
    return todo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "faults.json")
    parser.add_argument("--only", nargs="+", default=[""], help="run only the cases whose name holds one of these")
    args = parser.parse_args()
    wanted = lambda case: any(text in case.name for text in args.only)  # noqa: E731
    inputs = [case for case in input_cases() if wanted(case)]
    only_inputs = args.only != [""] and all(any(text in case.name for case in input_cases()) for text in args.only)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = None if only_inputs else make_base(work / "made")  # the input cases make their own data
        done = run_cases([c for c in cases(base) + session_cases(base) if wanted(c)], base, work) if base else []
        done.extend(run_cases(inputs, base, work, start=len(done)))
        for special in (interrupt_case, concurrent_train_case, killed_holder_case) if args.only == [""] else ():
            done.append(special(base, work))
            print(f"{done[-1].outcome:20s} {done[-1].name}: {done[-1].detail[:160]}", flush=True)
    outcomes = [c.outcome for c in done]
    summary = {name: outcomes.count(name) for name in
               ("clear error", "works", "traceback", "silent wrong result", "unclear error", "unexpected error")}
    result = {"cases_tried": len(done), **summary,
              "host": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
              "cases": [{"name": c.name, "command": c.command[0], "expected": c.expect, "outcome": c.outcome,
                         "detail": c.detail} for c in done]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"cases_tried": len(done), **summary}))


if __name__ == "__main__":
    main()
