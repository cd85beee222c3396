"""Many files as one collection: the shards of a survey, end to end.

``ShardedCollection`` concatenates shards (HDF5 files, Zarr stores, FITS
cubes, image folders) in name order.  Image ``i`` of the whole is image
``i - start`` of the shard it falls in; its id is ``"<shard>:<id in shard>"``.
Shards are opened on first use and at most ``open_shards`` of them are kept
open, so a survey of thousands of files never runs out of file handles; a
shard whose size a catalogue gives is not opened until it is read.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeMismatchError, UnknownIdError
from .base import ImageCollection, NativeFormat
from .paths import Source
from .registry import find_reader
from .shardsizes import remember_sizes, with_known_sizes
from .shardsource import Shard, list_shards

OPEN_SHARDS = 8


class ShardedCollection(ImageCollection):
    """Shards concatenated in order; ``shards[k]`` holds images ``starts[k]:starts[k + 1]``.

    Parameters
    ----------
    shards
        The shards, in collection order (names unique and free of ':').
    source
        A description of where the shards came from (a glob, a folder ...).
    options
        Reader options passed to every shard (``dataset=``, ``array=``, ``hdu=`` ...).
    on_error
        ``'raise'`` or ``'skip'``, for every shard.
    """

    def __init__(self, shards: Sequence[Shard], source: str, options: dict[str, Any] | None = None,
                 on_error: str = "raise", open_shards: int = OPEN_SHARDS) -> None:
        if not shards:
            raise ConfigError(f"{source}: a sharded collection needs at least one shard")
        self.source = source
        self.on_error = on_error
        self.options = dict(options or {})
        self.open_shards = max(1, int(open_shards))
        self._open: OrderedDict[int, ImageCollection] = OrderedDict()
        self.shards = list(shards)
        self._describe_first(self.shards[0])
        self.shards = [self._with_size(k, shard) for k, shard in enumerate(self.shards)]
        self.starts = np.concatenate([[0], np.cumsum([s.n_images for s in self.shards])]).astype(np.int64)
        self._number_of = {shard.name: k for k, shard in enumerate(self.shards)}

    # -- sizes and layout ---------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def names(self) -> list[str]:
        return [shard.name for shard in self.shards]

    def shard_of(self, index: int) -> tuple[int, int]:
        """(shard number, index within that shard) of image ``index``."""
        idx = self._check_indices([index])
        shard = int(np.searchsorted(self.starts, idx[0], side="right") - 1)
        return shard, int(idx[0] - self.starts[shard])

    def shard_range(self, shard: int) -> tuple[int, int]:
        """The collection indices ``[start, stop)`` of shard number ``shard``."""
        return int(self.starts[shard]), int(self.starts[shard + 1])

    def shard_table(self) -> tuple[tuple[str, int], ...]:
        """(name, number of images) of every shard, in order."""
        return tuple((shard.name, int(shard.n_images)) for shard in self.shards)  # type: ignore[arg-type]

    # -- ids ----------------------------------------------------------------------------

    def id_of(self, index: int) -> str:
        shard, local = self.shard_of(index)
        return f"{self.shards[shard].name}:{self.shard(shard).id_of(local)}"

    def ids_of(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        idx = self._check_indices(indices)
        out: list[str] = [""] * len(idx)
        for shard, positions, local in self._by_shard(idx):
            name = self.shards[shard].name
            collection = self.shard(shard)
            for position, image in zip(positions, local, strict=True):
                out[position] = f"{name}:{collection.id_of(int(image))}"
        return out

    def ids(self) -> list[str]:
        return self.ids_of(np.arange(len(self)))

    def index_of(self, image_id: str) -> int:
        name, separator, local_id = str(image_id).partition(":")
        shard = self._number_of.get(name) if separator else None
        if shard is None:
            raise UnknownIdError(
                f"{self.source}: no image with id {image_id!r}; ids here are '<shard>:<id in shard>' "
                f"with shards such as {self.shards[0].name!r}"
            )
        try:
            local = self.shard(shard).index_of(local_id)
        except UnknownIdError:
            raise UnknownIdError(
                f"{self.source}: no image with id {image_id!r} (shard {name!r} has no image {local_id!r})"
            ) from None
        return int(self.starts[shard]) + local

    def fingerprint(self) -> str:
        text = f"{type(self).__name__}|{self.source}|{len(self)}|{self.shape}|{self.shard_table()}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- reading --------------------------------------------------------------------------

    def describe(self, index: int) -> str:
        shard, local = self.shard_of(index)
        return self.shard(shard).describe(local)

    def read_valid(self, indices: Sequence[int] | np.ndarray, check: bool = True,
                   ) -> tuple[np.ndarray, np.ndarray]:
        """As ``ImageCollection.read_valid``; each shard checks and reports its own unusable images."""
        idx = self._check_indices(indices)
        batch = np.empty((len(idx), *self.shape), dtype=np.float32)
        valid = np.ones(len(idx), dtype=bool)
        for shard, positions, local in self._by_shard(idx):
            batch[positions], valid[positions] = self.shard(shard).read_valid(local, check)
        return batch, valid

    def _read(self, indices: np.ndarray) -> np.ndarray:
        return self.read_valid(indices)[0]

    def read_native(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if self.native_format is None:
            return None
        idx = self._check_indices(indices)
        batch = np.empty((len(idx), *self.shape), dtype=self.native_format.dtype)
        valid = np.ones(len(idx), dtype=bool)
        for shard, positions, local in self._by_shard(idx):
            collection = self.shard(shard)
            if collection.native_format != self.native_format:
                return None
            found = collection.read_native(local)
            if found is None:
                return None
            batch[positions], valid[positions] = found
        return batch, valid

    def metadata(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Each shard's columns (``ra``, ``dec``, ``path`` ...) plus ``shard``; gaps are NaN or ''."""
        idx = self._check_indices(indices)
        parts = [(positions, self.shard(shard).metadata(local), shard)
                 for shard, positions, local in self._by_shard(idx)]
        names = sorted({name for _, columns, _ in parts for name in columns})
        out: dict[str, np.ndarray] = {"shard": np.empty(len(idx), dtype=object)}
        for name in names:
            numeric = all(np.asarray(c[name]).dtype.kind in "fiu" for _, c, _ in parts if name in c)
            out[name] = np.full(len(idx), np.nan) if numeric else np.full(len(idx), "", dtype=object)
        for positions, columns, shard in parts:
            out["shard"][positions] = self.shards[shard].name
            for name, values in columns.items():
                out[name][positions] = values
        return out

    # -- shards ------------------------------------------------------------------------

    def shard(self, number: int) -> ImageCollection:
        """Shard ``number``, opened (and checked against the first) on first use."""
        collection = self._open.get(number)
        if collection is not None:
            self._open.move_to_end(number)
            return collection
        collection = self._open_shard(self.shards[number])
        self._check_matches(self.shards[number], collection)
        self._open[number] = collection
        while len(self._open) > self.open_shards:
            _, evicted = self._open.popitem(last=False)
            evicted.close()
        return collection

    def close(self) -> None:
        while self._open:
            _, collection = self._open.popitem(last=False)
            collection.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        state.pop("_index_by_id", None)
        return state

    def _open_shard(self, shard: Shard) -> ImageCollection:
        reader = find_reader(shard.source, shard.reader)
        return reader.open(shard.source, on_error=self.on_error, **self.options)

    def _describe_first(self, shard: Shard) -> None:
        first = self._open_shard(shard)
        self.shape = first.shape
        self.value_range = first.value_range
        self.may_hold_nan = first.may_hold_nan
        self.native_format = first.native_format
        self._check_matches(shard, first)
        self._open[0] = first

    def _with_size(self, number: int, shard: Shard) -> Shard:
        if shard.n_images is not None:
            return shard
        collection = self.shard(number)
        size = len(collection)
        if number != 0:  # keep the first open; close the others until they are read
            self._open.pop(number, None)
            collection.close()
        return Shard(shard.name, shard.source, shard.reader, size)

    def _check_matches(self, shard: Shard, collection: ImageCollection) -> None:
        problems = []
        if collection.shape != self.shape:
            problems.append(f"images of {collection.shape} (HxWxC), not {self.shape}")
        if collection.value_range != self.value_range:
            problems.append(f"pixel range {collection.value_range}, not {self.value_range}")
        if shard.n_images is not None and len(collection) != shard.n_images:
            problems.append(f"{len(collection)} images, not the {shard.n_images} listed")
        if problems:
            raise ShapeMismatchError(
                f"{shard.source} (shard {shard.name!r} of {self.source}) holds {'; '.join(problems)}; "
                f"every shard must hold images of the same shape and type as {self.shards[0].name!r}"
            )
        self.may_hold_nan = self.may_hold_nan or collection.may_hold_nan

    def _by_shard(self, indices: np.ndarray):
        """(shard, positions in ``indices``, indices within the shard) for each shard touched."""
        shards = np.searchsorted(self.starts, indices, side="right") - 1
        order = np.argsort(shards, kind="stable")
        sorted_shards = shards[order]
        bounds = np.flatnonzero(np.diff(sorted_shards)) + 1
        for group in np.split(order, bounds):
            if group.size:
                shard = int(shards[group[0]])
                yield shard, group, indices[group] - self.starts[shard]


def open_sharded(source: Source, on_error: str = "raise", open_shards: int = OPEN_SHARDS,
                 size_cache: str | Path | None = None, **options: Any) -> ShardedCollection:
    """Open a glob, a folder of shards or a CSV list of shards as one collection.

    Parameters
    ----------
    source
        ``"/survey/tile_*.h5"``, a folder holding HDF5/Zarr/FITS-cube files or
        image folders, a CSV/ECSV with a ``path`` column (and optional
        ``name``, ``n_images``, ``reader``), or a list of shard paths.
    open_shards
        How many shards may be open at once.
    size_cache
        A JSON file remembering the shards' sizes (see ``shardsizes``), so
        unchanged shards are not opened to learn them next time.
    **options
        Reader options for every shard (``dataset=``, ``array=``, ``hdu=``, ``layout=``, ``ids=``).

    Raises
    ------
    SourceNotFoundError, EmptyCollectionError, ConfigError, ShapeMismatchError
    """
    shards, description = list_shards(source, hdu=options.get("hdu"))
    if size_cache is not None:
        shards = with_known_sizes(shards, Path(size_cache), options)
    collection = ShardedCollection(shards, description, options=options, on_error=on_error,
                                   open_shards=open_shards)
    if size_cache is not None and any(shard.n_images is None for shard in shards):
        remember_sizes(collection.shards, Path(size_cache), options)
    return collection


__all__ = ["NativeFormat", "Shard", "ShardedCollection", "open_sharded"]
