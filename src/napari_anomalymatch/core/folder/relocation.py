"""Pointing a session at its data after the data moved (``anomalymatch relocate``).

The new source is opened with the session's reading settings and its ids are
checked against what the session knows of its images: the id column of the
newest score table (every id, in order, when there is one), the ids labelled or
tagged, and the number of images every score run covers.  Only when all agree
is ``data.source`` changed, and the score runs and the cross-match are told the
collection's new fingerprint, so nothing is scored again.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..atomic import atomic_write_bytes
from ..config import SessionConfig, resolve_source
from ..errors import SessionError, SourceNotFoundError
from ..io.base import ImageCollection
from ..io.registry import open_collection
from ..labels import LabelStore
from ..scoring.store import ScoreStore, read_manifest


class RelocatedSession(Protocol):
    """What relocating reads and changes of a session (``core.session.Session`` is one)."""

    path: Path
    config: SessionConfig
    labels: LabelStore

    def update_config(self, config: SessionConfig) -> bool: ...

CROSSMATCH_FILE = "crossmatch.npz"  # as core.review.crossmatch names it
SHOWN = 5  # ids named in a message


@dataclass(frozen=True)
class Relocation:
    """What ``relocate`` did."""

    old_source: str
    new_source: str
    n_images: int
    checked: str  # which of the session's records the ids were checked against


def moved_source_error(err: SourceNotFoundError, session_path: Path, source: str) -> SourceNotFoundError:
    """``err`` with the way out when the session's whole data source is gone (moved, say)."""
    if _source_exists(source):
        return err  # something inside the source is missing, not the source
    return SourceNotFoundError(
        f"{err}; the session's data source is gone. If the data moved, point the session at it: "
        f"anomalymatch relocate {session_path} NEW_SOURCE (the ids are checked first)")


def relocate(session: RelocatedSession, new_source: str | Path) -> Relocation:
    """Point ``session`` (held for writing by the caller) at ``new_source`` after checking its ids.

    Raises
    ------
    SessionError
        The ids differ from the session's (the message names some of either side); nothing changed.
    AnomalyMatchError
        The new source cannot be opened.
    """
    data = session.config.data
    source = resolve_source(new_source)
    collection = open_collection(source, reader=data.reader, on_error=data.on_error, **data.options)
    checked = check_ids(session, collection)
    old = data.source
    session.update_config(session.config.replace(data=dataclasses.replace(data, source=source)))
    _retell_fingerprint(session.path, collection)
    (session.path / "shard-sizes.json").unlink(missing_ok=True)  # a cache of the old shards' paths
    return Relocation(old, source, len(collection), checked)


def check_ids(session: RelocatedSession, collection: ImageCollection) -> str:
    """Check ``collection``'s ids against the session's records; returns what was checked.

    Raises
    ------
    SessionError
        Naming the ids missing from, or new in, ``collection``.
    """
    ids = collection.ids()
    known = _scored_ids(session.path)
    where = f"{collection.source}: these are not the session's images"
    if known is not None and known != ids:
        raise SessionError(f"{where}: {_difference(known, ids)}; nothing was changed")
    missing = sorted(set(session.labels.current(include_unsure=True)) | set(session.labels.tagged()))
    missing = [image_id for image_id in missing if image_id not in set(ids)]
    if missing:
        raise SessionError(f"{where}: {len(missing)} labelled or tagged ids are not there "
                           f"({_some(missing)}); nothing was changed")
    sizes = {store.manifest.n_images for store in _runs(session.path)}
    if sizes - {len(ids)}:
        raise SessionError(f"{where}: it holds {len(ids)} images, the session's scores cover "
                           f"{sorted(sizes)}; nothing was changed")
    if known is not None:
        return f"all {len(ids)} ids of the latest score table, in order"
    return f"the labelled ids and the number of images ({len(ids)})"


def _difference(known: list[str], ids: list[str]) -> str:
    here = set(ids)
    gone = [i for i in known if i not in here]
    had = set(known)
    new = [i for i in ids if i not in had]
    if not gone and not new:
        return "the same ids in another order (the scores would fall on the wrong images)"
    said = []
    if gone:
        said.append(f"{len(gone)} of the session's ids are missing there ({_some(gone)})")
    if new:
        said.append(f"{len(new)} ids there are not the session's ({_some(new)})")
    return "; ".join(said)


def _some(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (" ..." if len(ids) > SHOWN else "")


def _runs(session_path: Path) -> list[ScoreStore]:
    """Every score run of the session, newest first."""
    found = sorted((session_path / "scores").glob("cycle-*"), reverse=True)
    return [ScoreStore.existing(d) for d in found if read_manifest(d) is not None]


def _scored_ids(session_path: Path) -> list[str] | None:
    """Every id of the newest score table (``scores.parquet``), in order; None without one."""
    for store in _runs(session_path):
        table = store.directory / "scores.parquet"
        if table.exists():
            try:
                import pyarrow.parquet as pq

                found = pq.read_table(table, columns=["index", "id"]).to_pydict()
            except (ImportError, OSError, ValueError, KeyError):
                continue
            order = np.argsort(found["index"], kind="stable")
            return [str(found["id"][i]) for i in order]
    return None


def _retell_fingerprint(session_path: Path, collection: ImageCollection) -> None:
    """Score runs and the cross-match name the collection by its fingerprint, which holds its source."""
    fingerprint = collection.fingerprint()
    for store in _runs(session_path):
        store.rename_collection(fingerprint)
    path = session_path / CROSSMATCH_FILE
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        about = json.loads(str(arrays["about"]))
        arrays["about"] = np.array(json.dumps({**about, "collection": fingerprint}))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())


def _source_exists(source: str) -> bool:
    """Whether the source (for a glob, the folder its pattern starts in) is there."""
    fixed = source
    for mark in "*?[":
        fixed = fixed.split(mark, 1)[0]
    return os.path.exists(fixed if fixed == source else os.path.dirname(fixed) or ".")
