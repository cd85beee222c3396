"""Collections stored as one array of images (HDF5 datasets, Zarr arrays).

The array is ``N x H x W`` or ``N x H x W x C`` (``N x C x H x W`` with
``layout='NCHW'``) of any numeric dtype, or a 1-D array of encoded image bytes
(PNG/JPEG/TIFF) that is decoded on read.  Opening touches only metadata:
a collection of 10^6 images opens without reading a pixel.  Contiguous index
ranges are read as one slice; other selections are read sorted, then put back
in the order asked for.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, CorruptFileError, EmptyCollectionError, ShapeMismatchError
from .base import ImageCollection, NativeFormat, parse_index_id
from .decode import decode_image_bytes, decode_image_bytes_native

LAYOUTS = ("auto", "NHW", "NHWC", "NCHW")
MAX_CHANNELS = 16
# Integer types that float32 holds exactly, so their native form loses nothing.
NATIVE_DTYPES = ("uint8", "int8", "uint16", "int16")


class ArrayCollection(ImageCollection):
    """Base for array-backed collections; subclasses open the array lazily."""

    def __init__(self, source: str, layout: str = "auto", ids: str | None = None,
                 on_error: str = "raise") -> None:
        self.source = source
        self.on_error = on_error
        self._ids_name = ids
        self._handle = None
        array = self._array()
        self.encoded = _is_encoded(array)
        self._length = int(array.shape[0])
        if self._length == 0:
            raise EmptyCollectionError(f"{self.source}: the array holds no images")
        if self.encoded:
            self.layout = "encoded"
            first = decode_image_bytes(array[0], self.describe(0))
            self.shape = tuple(int(s) for s in first.shape)  # type: ignore[assignment]
            self.value_range = (0.0, 1.0)
            self.may_hold_nan = False
            if _decodes_as_uint8(array[0], self.describe(0)):
                self.native_format = NativeFormat("uint8", 0.0, float(np.float32(1 / 255)))
        else:
            self.layout = _resolve_layout(layout, tuple(array.shape), self.source)
            self.shape = _image_shape(self.layout, tuple(array.shape))
            self.value_range = _value_range(array.dtype)
            self.may_hold_nan = np.issubdtype(array.dtype, np.floating)
            if np.dtype(array.dtype).name in NATIVE_DTYPES:
                self.native_format = NativeFormat(np.dtype(array.dtype).name)
        self._id_values = self._load_ids(array) if ids else None

    @abc.abstractmethod
    def _open_array(self) -> Any:
        """Open and return the array (and keep any file handle in ``self._handle``)."""

    @abc.abstractmethod
    def _named_array(self, name: str) -> Any | None:
        """A sibling array (ids, ra, dec ...) by name, or None."""

    def _array(self) -> Any:
        if self._handle is None:
            self._handle = self._open_array()
        return self._handle

    def __len__(self) -> int:
        return self._length

    def id_of(self, index: int) -> str:
        if self._id_values is not None:
            return self._id_values[index]
        return str(index)

    def ids(self) -> list[str]:
        if self._id_values is not None:
            return list(self._id_values)
        return [str(i) for i in range(self._length)]

    def index_of(self, image_id: str) -> int:
        if self._id_values is not None:
            return super().index_of(image_id)
        return parse_index_id(image_id, self._length, self.source)

    def metadata(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        columns = {}
        for name in ("ra", "dec", "RA", "DEC", "path", "is_anomaly"):
            values = self._named_array(name)
            if values is not None and values.shape[:1] == (self._length,):
                columns[name.lower()] = np.asarray(_read_rows(values, idx))
        return columns

    def _read(self, indices: np.ndarray) -> np.ndarray:
        raw = _read_rows(self._array(), indices)
        if self.encoded:
            return self._decode_rows(raw, indices)
        if self.layout == "NHW":
            raw = raw[..., None]
        elif self.layout == "NCHW":
            raw = np.moveaxis(raw, 1, -1)
        return np.ascontiguousarray(raw, dtype=np.float32)

    def _read_native(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if self.native_format is None:
            return None
        raw = _read_rows(self._array(), idx)
        if self.encoded:
            return self._decode_rows_native(raw, idx)
        if self.layout == "NHW":
            raw = raw[..., None]
        elif self.layout == "NCHW":
            raw = np.moveaxis(raw, 1, -1)
        return np.ascontiguousarray(raw), np.ones(len(idx), dtype=bool)

    def _decode_rows_native(self, rows: Sequence[Any], indices: np.ndarray,
                            ) -> tuple[np.ndarray, np.ndarray] | None:
        """8-bit decoded images, or None if one of them is not 8-bit (then ``read`` is used)."""
        batch = np.zeros((len(indices), *self.shape), dtype=np.uint8)
        valid = np.ones(len(indices), dtype=bool)
        for position, (row, index) in enumerate(zip(rows, indices, strict=True)):
            try:
                image = decode_image_bytes_native(row, self.describe(int(index)))
            except CorruptFileError as err:
                self._bad_image(int(index), str(err).split(": ", 1)[-1], error=CorruptFileError)
                valid[position] = False
                continue
            if image.dtype != np.uint8:
                return None
            if image.shape != self.shape and image.shape[:2] == self.shape[:2] and image.shape[2] == 1:
                image = np.repeat(image, self.shape[2], axis=2)
            if image.shape != self.shape:
                self._bad_image(int(index), f"decodes to {image.shape}, expected {self.shape}",
                                error=ShapeMismatchError)
                valid[position] = False
                continue
            batch[position] = image
        return batch, valid

    def _decode_rows(self, rows: Sequence[Any], indices: np.ndarray) -> np.ndarray:
        batch = np.empty((len(indices), *self.shape), dtype=np.float32)
        for position, (row, index) in enumerate(zip(rows, indices, strict=True)):
            try:
                image = decode_image_bytes(row, self.describe(int(index)))
            except CorruptFileError as err:
                batch[position] = self._bad_image(int(index), str(err).split(": ", 1)[-1],
                                                  error=CorruptFileError)
                continue
            if image.shape != self.shape:
                if image.shape[:2] == self.shape[:2] and image.shape[2] == 1:
                    image = np.repeat(image, self.shape[2], axis=2)
                else:
                    image = self._bad_image(
                        int(index), f"decodes to {image.shape}, expected {self.shape}",
                        error=ShapeMismatchError)
            batch[position] = image
        return batch

    def _load_ids(self, array: Any) -> list[str]:
        values = self._named_array(self._ids_name) if self._ids_name else None
        if values is None:
            raise ConfigError(f"{self.source}: no ids array {self._ids_name!r} beside the images")
        if values.shape[:1] != (self._length,):
            raise ShapeMismatchError(
                f"{self.source}: ids array {self._ids_name!r} has {values.shape[0]} entries "
                f"for {self._length} images")
        ids = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values[:])]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"{self.source}: ids array {self._ids_name!r} holds duplicates")
        return ids

    def close(self) -> None:
        self._handle = None


def _read_rows(array: Any, indices: np.ndarray) -> Any:
    """Rows ``indices`` of ``array`` in the order given, reading sorted runs."""
    if len(indices) == 0:
        return array[0:0]
    start, stop = int(indices.min()), int(indices.max()) + 1
    if stop - start == len(indices) and np.all(np.diff(indices) == 1):
        return array[start:stop]
    order = np.argsort(indices, kind="stable")
    sorted_unique, inverse = np.unique(indices[order], return_inverse=True)
    rows = _take_sorted(array, sorted_unique)
    result = rows[inverse]
    out = np.empty_like(result)
    out[order] = result
    return out


def _take_sorted(array: Any, sorted_unique: np.ndarray) -> Any:
    if hasattr(array, "oindex"):  # zarr
        return array.oindex[sorted_unique]
    if isinstance(array, np.ndarray):
        return array[sorted_unique]
    # h5py: a point selection of a few dozen rows costs ~100x reading them as slices (386 vs 4 ms
    # for 36 images of 300 x 300). Rows are read as one slice per run of consecutive rows, or per
    # chunk where a chunk holds several rows (each chunk is then decompressed once).
    chunk_rows = (getattr(array, "chunks", None) or (1,))[0]
    group = sorted_unique // chunk_rows if chunk_rows > 1 else np.cumsum(np.diff(sorted_unique, prepend=-2) != 1)
    starts = np.flatnonzero(np.diff(group, prepend=group[0] - 1))
    parts = []
    for rows in np.split(sorted_unique, starts[1:]):
        low, high = int(rows[0]), int(rows[-1]) + 1
        block = array[low:high]
        parts.append(block if high - low == len(rows) else block[rows - low])
    return np.concatenate(parts)


def _decodes_as_uint8(row: Any, where: str) -> bool:
    return decode_image_bytes_native(row, where).dtype == np.uint8


def _is_encoded(array: Any) -> bool:
    dtype = array.dtype
    if len(array.shape) != 1:
        return False
    if dtype.kind in ("S", "V", "O"):
        return True
    metadata = getattr(dtype, "metadata", None) or {}
    return "vlen" in metadata


def _resolve_layout(layout: str, shape: tuple[int, ...], source: str) -> str:
    if layout not in LAYOUTS:
        raise ConfigError(f"{source}: layout must be one of {LAYOUTS}; got {layout!r}")
    if len(shape) == 3:
        if layout not in ("auto", "NHW"):
            raise ShapeMismatchError(f"{source}: a 3-D array {shape} can only be N x H x W")
        return "NHW"
    if len(shape) != 4:
        raise ShapeMismatchError(
            f"{source}: the array has shape {shape}; expected N x H x W or N x H x W x C images "
            "(or a 1-D array of encoded image bytes)"
        )
    if layout != "auto":
        return layout
    if shape[-1] <= MAX_CHANNELS:
        return "NHWC"
    if shape[1] <= MAX_CHANNELS:
        return "NCHW"
    raise ShapeMismatchError(
        f"{source}: cannot tell the channel axis of shape {shape}; pass layout='NHWC' or 'NCHW'"
    )


def _image_shape(layout: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if layout == "NHW":
        return int(shape[1]), int(shape[2]), 1
    if layout == "NCHW":
        return int(shape[2]), int(shape[3]), int(shape[1])
    return int(shape[1]), int(shape[2]), int(shape[3])


def _value_range(dtype: np.dtype) -> tuple[float, float] | None:
    if dtype == np.uint8:
        return 0.0, 255.0
    if dtype == np.uint16:
        return 0.0, 65535.0
    if dtype == np.bool_:
        return 0.0, 1.0
    return None
