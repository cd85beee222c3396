"""The label store keeps every label, its history and undo, even when the process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from napari_anomalymatch.core.errors import LabelError
from napari_anomalymatch.core.labels import ANOMALY, NORMAL, UNLABELED, UNSURE, LabelStore, parse_label


@pytest.mark.parametrize(
    ("value", "code"),
    [("anomaly", ANOMALY), ("Normal", NORMAL), (1, ANOMALY), ("0", NORMAL), (True, ANOMALY),
     ("", UNLABELED), (float("nan"), UNLABELED), ("unsure", UNSURE), ("1.0", ANOMALY)],
)
def test_parse_label(value, code):
    assert parse_label(value) == code


def test_parse_label_rejects_nonsense():
    with pytest.raises(LabelError, match=r"labels.csv, row 3: label 'lens\?' is not understood"):
        parse_label("lens?", "labels.csv, row 3")


def test_set_history_and_undo(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        store.set("a", "anomaly", cycle=1)
        store.set("b", NORMAL, cycle=1)
        assert store.set("b", NORMAL) is None  # no change, no event
        store.set("a", "normal", cycle=2)
        assert store.current() == {"a": NORMAL, "b": NORMAL}
        undone = store.undo()
        assert (undone.image_id, undone.label, undone.source) == ("a", ANOMALY, "undo")
        assert store.current() == {"a": ANOMALY, "b": NORMAL}
        store.undo()
        store.undo()
        assert store.current() == {}
        assert store.undo() is None
        history = store.history("a")
        assert [e.label for e in history] == [ANOMALY, NORMAL, ANOMALY, UNLABELED]
        assert [e.undone for e in history] == [True, True, False, False]


def test_unsure_is_kept_but_not_trained_on(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        store.set("x", "unsure")
        assert store.current() == {}
        assert store.current(include_unsure=True) == {"x": UNSURE}
        assert store.counts() == {"normal": 0, "anomaly": 0, "unsure": 1}


def test_set_many_is_all_or_nothing(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        with pytest.raises(LabelError):
            store.set_many([("a", "anomaly"), ("b", "perhaps")])
        assert store.current() == {}


def test_labels_survive_reopening(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        store.set_many([(f"img{i}", i % 2) for i in range(50)], source="import")
    with LabelStore(tmp_path / "labels.sqlite") as store:
        assert len(store.current()) == 50
        assert store.history()[0].source == "import"


WRITER = textwrap.dedent(
    """
    import sys
    from napari_anomalymatch.core.labels import LabelStore
    store = LabelStore(sys.argv[1])
    i = 0
    while True:
        store.set(f"img{i}", i % 2, cycle=i // 100)
        print(i, flush=True)
        i += 1
    """
)


def test_a_process_killed_while_labelling_loses_no_label(tmp_path):
    path = tmp_path / "labels.sqlite"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    confirmed = []
    deadline = time.monotonic() + 60
    while len(confirmed) < 40 and time.monotonic() < deadline:
        confirmed.append(int(process.stdout.readline()))
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert len(confirmed) >= 40
    with LabelStore(path) as store:
        labels = store.current()
        for i in confirmed:  # every label whose call returned is there
            assert labels[f"img{i}"] == i % 2
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_closing_twice_is_harmless_and_leaves_every_label_in_the_file(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.set("a", ANOMALY)
    store.close()
    store.close()  # a session closed by its panel and again by its 'with' block
    assert LabelStore(tmp_path / "labels.sqlite", read_only=True).get("a") == ANOMALY
