"""Remembering how many images each shard holds, so a survey of thousands of files reopens at once.

Learning a shard's size means opening it (its metadata only), which for
10^4 HDF5 files takes tens of seconds.  A size cache (a JSON file, kept by a
session in its folder) records each shard's size together with the file's
size and modification time and the reader options; a shard whose file has not
changed since is not opened again until it is read.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from .shardsource import Shard

FORMAT_VERSION = 1


class ShardSizeCacheWarning(UserWarning):
    """The shard size cache could not be written; the next opening will read every shard again."""


def with_known_sizes(shards: list[Shard], cache: Path, options: dict[str, Any]) -> list[Shard]:
    """``shards`` with ``n_images`` filled in from ``cache`` wherever the file is unchanged."""
    entries = _read(cache, options)
    if not entries:
        return shards
    out = []
    for shard in shards:
        known = entries.get(shard.source)
        if shard.n_images is None and known is not None and known[:2] == _stamp(shard.source):
            shard = Shard(shard.name, shard.source, shard.reader, int(known[2]))
        out.append(shard)
    return out


def remember_sizes(shards: list[Shard], cache: Path, options: dict[str, Any]) -> None:
    """Write every shard's size (and its file's stamp) to ``cache``; warn if that fails."""
    entries = {shard.source: [*_stamp(shard.source), shard.n_images] for shard in shards}
    text = json.dumps({"version": FORMAT_VERSION, "options": _options_key(options), "shards": entries})
    try:
        atomic_write_bytes(Path(cache), text.encode())
    except OSError as err:
        warnings.warn(f"{cache}: could not remember the shards' sizes ({err}); the next opening will "
                      "read every shard's metadata again", ShardSizeCacheWarning, stacklevel=3)


def _read(cache: Path, options: dict[str, Any]) -> dict[str, list]:
    try:
        data = json.loads(Path(cache).read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or an unreadable one: sizes are learnt again
    if data.get("version") != FORMAT_VERSION or data.get("options") != _options_key(options):
        return {}
    return dict(data.get("shards", {}))


def _stamp(source: str) -> list[int]:
    try:
        status = Path(source).stat()
    except OSError:
        return [-1, -1]
    return [int(status.st_size), int(status.st_mtime_ns)]


def _options_key(options: dict[str, Any]) -> str:
    return repr(sorted((str(k), repr(v)) for k, v in options.items()))
