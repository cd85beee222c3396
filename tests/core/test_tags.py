"""Free tags: kept in the label store with their history, undone like labels, never a label."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from napari_anomalymatch.core.errors import LabelError, ReadOnlyError, UnknownIdError
from napari_anomalymatch.core.labels import (
    ANOMALY,
    NORMAL,
    SCHEMA_VERSION,
    TAG_ADDED,
    TAG_REMOVED,
    UNSURE,
    LabelStore,
    parse_tags,
)
from napari_anomalymatch.core.labels import store as labels_module
from napari_anomalymatch.core.review.export import export_session
from napari_anomalymatch.core.review.queue import ReviewQueue

from .test_review import SCORES, session, write_scores  # noqa: F401  (session is a fixture)

# Written by the label store before tags existed (main at 1ec503e): 5 labels, 7 events, one undo.
BEFORE_TAGS = Path(__file__).resolve().parents[1] / "data" / "labels-before-tags.sqlite"
LABELS_BEFORE = {"img_000.png": ANOMALY, "img_001.png": NORMAL, "img_002.png": UNSURE,
                 "img_003.png": NORMAL, "img_004.png": ANOMALY}


@pytest.mark.parametrize(("text", "tags"), [
    ("lens", ["lens"]), (" lens , merger ", ["lens", "merger"]), (["lens", "arc; lens"], ["lens", "arc"]),
    ("tidal   tail", ["tidal tail"]),
])
def test_parse_tags(text, tags):
    assert parse_tags(text) == tags


@pytest.mark.parametrize(("text", "message"), [
    ("", "holds an empty tag"), ("lens,,merger", "holds an empty tag"), ([], "no tag given"),
    ("x" * 65, "65 characters long"),
])
def test_bad_tags_are_refused(text, message):
    with pytest.raises(LabelError, match=message):
        parse_tags(text)


def test_tags_have_history_and_undo_reverts_the_last_action(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        store.set("a", "normal")
        added = store.add_tags("a", "lens, merger")
        assert [(e.tag, e.label, e.previous) for e in added] == [("lens", TAG_ADDED, TAG_REMOVED),
                                                                 ("merger", TAG_ADDED, TAG_REMOVED)]
        assert store.add_tags("a", "lens") == []  # had it: no event
        store.add_tags("b", "lens")
        store.remove_tags("a", "merger")
        assert store.tags("a") == ("lens",) and store.tags("b") == ("lens",)
        assert store.all_tags() == {"lens": 2}
        assert store.tagged("lens") == {"a": ("lens",), "b": ("lens",)}
        assert store.current() == {"a": NORMAL}  # tags never touch the label
        store.undo()  # the removal of merger
        assert store.tags("a") == ("lens", "merger")
        store.undo()  # b's tag
        assert store.tagged() == {"a": ("lens", "merger")}
        store.undo()  # both tags of one call go together
        assert store.tags("a") == () and store.current() == {"a": NORMAL}
        store.undo()  # and then the label, the first action
        assert store.current() == {}
        history = store.history("a")
        assert [(e.tag, e.label, e.source) for e in history][:3] == [
            (None, NORMAL, "user"), ("lens", TAG_ADDED, "user"), ("merger", TAG_ADDED, "user")]
        assert all(e.undone for e in history[:4] if e.source == "user")


def test_one_typed_line_adds_and_removes_in_one_undoable_step(session):  # noqa: F811
    queue = ReviewQueue(session)
    queue.add_tags("merger")
    events = queue.edit_tags("lens, -merger, arc")
    assert [(e.tag, e.label) for e in events] == [("lens", TAG_ADDED), ("arc", TAG_ADDED), ("merger", TAG_REMOVED)]
    assert queue.current.tags == ("arc", "lens")
    assert queue.current.caption().splitlines()[-1] == "tags: arc, lens"
    queue.undo()
    assert queue.current.tags == ("merger",)


def test_a_tag_named_like_a_label_stays_a_tag(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        store.set("a", "normal")
        store.add_tags("a", ["anomaly", "unsure"])
        assert store.current(include_unsure=True) == {"a": NORMAL}
        assert store.tags("a") == ("anomaly", "unsure") and store.counts()["anomaly"] == 0


def test_a_store_from_before_tags_is_migrated_in_place(tmp_path):
    path = tmp_path / "labels.sqlite"
    shutil.copy(BEFORE_TAGS, path)
    with LabelStore(path, read_only=True) as store:  # read-only: read as it is, without tags
        assert store.current(include_unsure=True) == LABELS_BEFORE
        before = store.history()
        assert store.tagged() == {} and store.tags("img_000.png") == ()
        with pytest.raises(ReadOnlyError, match="written before tags existed"):
            store.add_tags("img_000.png", "lens")
    assert len(before) == 7 and sum(e.undone for e in before) == 1
    with LabelStore(path) as store:
        assert store.current(include_unsure=True) == LABELS_BEFORE
        assert store.history() == before  # every event, as it was
        store.add_tags("img_000.png", "lens")
        store.undo()  # the tag
        store.undo()  # then the import, as before the migration
        assert "img_003.png" not in store.current() and store.tags("img_000.png") == ()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_a_failed_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "labels.sqlite"
    shutil.copy(BEFORE_TAGS, path)
    broken = (*labels_module._TO_VERSION_1[:2], "CREATE TABLE events (x)")  # fails after two steps
    monkeypatch.setattr(labels_module, "_TO_VERSION_1", broken)
    with pytest.raises(Exception, match="events"):
        LabelStore(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert "tag" not in {row[1] for row in db.execute("PRAGMA table_info(events)")}
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'tags'").fetchone() is None
    db.close()
    monkeypatch.undo()
    with LabelStore(path) as store:  # the next open migrates
        assert store.current(include_unsure=True) == LABELS_BEFORE


def test_the_review_shows_filters_and_exports_tags(session, tmp_path):  # noqa: F811
    write_scores(session, SCORES)
    queue = ReviewQueue(session)
    first = queue.current.image_id
    queue.add_tags("lens, arc")
    assert queue.current.image_id == first and queue.current.tags == ("arc", "lens")  # no advance
    assert "tags: arc, lens" in queue.current.describe()
    queue.move(2)
    queue.add_tags("lens")
    queue.set_order(which="all", tag="lens")
    assert [queue.candidate_at(p).image_id for p in range(len(queue))] == [first, queue.current.image_id]
    queue.undo()  # the last tag: that image is still listed until the next refresh
    queue.refresh()
    assert len(queue) == 1 and queue.current.image_id == first
    with pytest.raises(LabelError, match="no image has the tag 'merger'"):
        queue.set_order(tag="merger")
    queue.set_order(tag="")
    assert len(queue) == 8
    table = Table.read(export_session(session, tmp_path / "ranking.ecsv"))
    tags = dict(zip(table["id"], table["tags"], strict=True))
    assert tags[first] == "arc;lens" and sum(1 for t in tags.values() if t) == 1
    assert list(np.unique(table["label"])) == ["unlabelled"]  # tags labelled nothing


def test_tags_need_a_known_image(session):  # noqa: F811
    with pytest.raises(UnknownIdError, match="nope.png"):
        session.edit_tags("nope.png", add="lens")
    assert session.labels.all_tags() == {}
