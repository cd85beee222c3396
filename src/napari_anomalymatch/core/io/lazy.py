"""An ``ImageCollection`` seen as a read-only ``(N, H, W, C)`` float32 array, read on demand.

``CollectionArray`` has ``shape``, ``dtype``, ``ndim`` and NumPy-style
indexing: the first axis (an integer, a slice, a list or a boolean mask)
chooses which images are read through ``collection.read``; the other axes are
then indexed in memory.  Array libraries that wrap array-likes (``dask.array.
from_array``, napari) can therefore show a collection of 10^6 images without
reading more than the images on screen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import ImageCollection

FLOAT_BYTES = 4
# Images read per chunk by array wrappers: about a MiB, a fast read that still spans many images.
CHUNK_BYTES = 1024 * 1024
# Collections whose images are decoded one by one (files, encoded bytes) use small chunks.
DECODED_CHUNK_LENGTH = 8


class CollectionArray:
    """``collection`` as an ``(N, H, W, C)`` float32 array-like; nothing is read until indexed.

    With ``drop_channel`` a one-channel collection is seen as ``(N, H, W)``.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, collection: ImageCollection, drop_channel: bool = False) -> None:
        if drop_channel and collection.shape[2] != 1:
            raise ValueError(f"{collection.source}: drop_channel needs one-channel images; "
                             f"they have {collection.shape[2]}")
        self.collection = collection
        self.drop_channel = drop_channel
        self.shape = (len(collection), *collection.shape[: 2 if drop_channel else 3])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = _split_key(key, self.ndim)
        if isinstance(first, (int, np.integer)):
            index = int(first) + (len(self) if first < 0 else 0)
            return self._read([index])[0][rest]
        if isinstance(first, slice):
            indices = np.arange(*first.indices(len(self)))
        else:
            selector = np.asarray(first)
            indices = np.flatnonzero(selector) if selector.dtype == bool else selector.astype(np.int64)
            indices = np.where(indices < 0, indices + len(self), indices)
        return self._read(indices)[(slice(None), *rest)]

    def _read(self, indices: Any) -> np.ndarray:
        images = self.collection.read(indices, check=False)  # shown as stored, blank or not
        return images[..., 0] if self.drop_channel else images

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[:]
        return data if dtype is None else data.astype(dtype)

    def __repr__(self) -> str:
        return f"CollectionArray({self.collection!r})"


def chunk_length(collection: ImageCollection, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Images per chunk for lazy array wrappers of ``collection``.

    About ``chunk_bytes`` of float32 pixels for array stores (HDF5, Zarr, FITS
    cubes); ``DECODED_CHUNK_LENGTH`` when every image is decoded on its own
    (files, encoded bytes), so showing one image never decodes hundreds.
    """
    h, w, c = collection.shape
    per_image = max(1, h * w * c * FLOAT_BYTES)
    length = max(1, chunk_bytes // per_image)
    if getattr(collection, "encoded", False) or hasattr(collection, "paths"):
        length = min(length, DECODED_CHUNK_LENGTH)
    return int(min(length, len(collection)))


def _split_key(key: Any, ndim: int) -> tuple[Any, tuple[Any, ...]]:
    """The first-axis index and the index of the other axes (Ellipsis expanded)."""
    parts = key if isinstance(key, tuple) else (key,)
    if any(p is Ellipsis for p in parts):
        at = next(i for i, p in enumerate(parts) if p is Ellipsis)
        named = len(parts) - 1 - sum(p is None for p in parts)
        parts = parts[:at] + (slice(None),) * (ndim - named) + parts[at + 1:]
    if not parts:
        return slice(None), ()
    if parts[0] is None:
        raise IndexError("CollectionArray does not add axes before the image axis")
    return parts[0], tuple(parts[1:])
