"""What is checked and written when a session folder is created or opened, and how its data
source is opened with the caches the folder keeps."""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import remove_stale_temporaries
from ..config import CONFIG_FILE, SessionConfig, check_source
from ..errors import ConfigError, SessionError, SourceNotFoundError
from ..io.autocrop import resolve_automatic
from ..io.base import ImageCollection
from ..io.registry import find_reader, open_collection
from ..labels import LABELS_FILE, move_label_store_aside, require_label_store
from .relocation import moved_source_error

CUTOUTS_FOLDER = "cutouts"  # a mosaic source's cutouts, cut once
SHARD_SIZES_FILE = "shard-sizes.json"  # how many images each shard of a sharded source holds


def write_new_settings(path: Path, config: SessionConfig, exist_ok: bool = False,
                       ) -> tuple[SessionConfig, ImageCollection]:
    """Open ``config``'s source, settle its automatic settings and write them into a new session
    folder ``path``; returns them and the open collection.

    The source is opened first: a missing or unreadable source raises before anything is
    written, so a failed attempt leaves no folder behind.
    """
    if (path / CONFIG_FILE).exists() and not exist_ok:
        raise SessionError(f"{path}: a session exists here already; open it, or choose a new folder")
    if not config.data.source:
        raise ConfigError("a session needs a data source (data.source)")
    try:
        config.data.source.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{os.fsencode(config.data.source)!r}: the data source's name is not valid "
                          "UTF-8, which session.toml needs; rename the folder") from None
    data = config.data
    collection = open_collection(data.source, reader=data.reader, on_error=data.on_error, **data.options)
    config = resolve_automatic(config, collection)
    path.mkdir(parents=True, exist_ok=True)
    config.to_toml(path / CONFIG_FILE)
    return config, collection


def read_settings(path: Path, new_label_store: bool = False) -> SessionConfig:
    """The settings of the session folder ``path``, once its source and label store are checked
    (see ``Session.open``); a dead process's temporary files are removed."""
    if not (path / CONFIG_FILE).exists():
        raise SessionError(f"{path}: not a session folder (no {CONFIG_FILE}); create one first "
                           "with 'anomalymatch init'")
    config = SessionConfig.from_toml(path / CONFIG_FILE)
    check_source(path / CONFIG_FILE, config)
    if new_label_store:
        move_label_store_aside(path / LABELS_FILE)
    else:
        require_label_store(path / LABELS_FILE)
    remove_stale_temporaries(path)  # only a dead process's; a read-only folder keeps them
    return config


def open_source(path: Path, config: SessionConfig) -> ImageCollection:
    """The data source of the session in ``path``, reading and writing the caches kept there.

    Raises
    ------
    SourceNotFoundError
        The source moved: the message says how to point the session at it again.
    """
    data = config.data
    check_source(path / CONFIG_FILE, config)
    options = dict(data.options)
    try:
        if find_reader(data.source, data.reader).name == "sharded":
            options.setdefault("size_cache", str(path / SHARD_SIZES_FILE))
        if options.get("mosaic"):
            options.setdefault("cache", str(path / CUTOUTS_FOLDER))  # the next cycle reads, not cuts
        return open_collection(data.source, reader=data.reader, on_error=data.on_error, **options)
    except SourceNotFoundError as err:
        raise moved_source_error(err, path, data.source) from err
