"""The one interface every image source offers.

An ``ImageCollection`` is a fixed-shape, random-access, lazily read set of
images.  ``read(indices)`` always returns ``float32`` arrays shaped
``(N, H, W, C)``; ids are stable strings; opening a collection reads no pixels.
Collections are picklable so that loader worker processes can read from them:
open file handles are dropped on pickling and reopened on first use.
"""

from __future__ import annotations

import abc
import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadImageError, UnknownIdError
from .usable import describe_fault, plane_faults


class BadImageWarning(UserWarning):
    """An image was skipped because it could not be used (``on_error='skip'``)."""


@dataclass(frozen=True)
class NativeFormat:
    """How a collection's stored integers relate to what ``read`` returns.

    ``read(i) == (read_native(i) - offset) * scale`` in float32, so integer
    data can travel to the model as it is stored (4x less than float32) and
    be scaled where the model runs.
    """

    dtype: str
    offset: float = 0.0
    scale: float = 1.0


class ImageCollection(abc.ABC):
    """A fixed-shape set of images with stable ids.

    Subclasses set ``source`` (a description for messages), ``shape``
    (``(H, W, C)``), ``value_range`` (the pixel range when it is fixed by the
    format, e.g. ``(0, 255)`` for 8-bit data, else ``None``) and
    ``may_hold_nan`` (``False`` for integer data), and implement ``__len__``,
    ``id_of`` and ``_read``.  Integer-backed collections also set
    ``native_format`` and implement ``read_native``.
    """

    source: str = ""
    shape: tuple[int, int, int] = (0, 0, 0)
    value_range: tuple[float, float] | None = None
    may_hold_nan: bool = True
    on_error: str = "raise"
    native_format: NativeFormat | None = None

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def id_of(self, index: int) -> str:
        """The stable id of image ``index``."""

    @abc.abstractmethod
    def _read(self, indices: np.ndarray) -> np.ndarray:
        """Read images at ``indices`` (validated, int64) as float32 NHWC."""

    def describe(self, index: int) -> str:
        """Where image ``index`` comes from, for messages (a path, path[hdu], ...)."""
        return f"{self.source}[{index}]"

    def metadata(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Per-image columns such as ``path``, ``ra``, ``dec``; empty when unknown."""
        return {}

    def ids(self) -> list[str]:
        return [self.id_of(i) for i in range(len(self))]

    def index_of(self, image_id: str) -> int:
        """The index of ``image_id``; raises ``UnknownIdError`` naming the source."""
        lookup = self.__dict__.get("_index_by_id")
        if lookup is None:
            lookup = {image_id_: i for i, image_id_ in enumerate(self.ids())}
            self.__dict__["_index_by_id"] = lookup
        try:
            return lookup[image_id]
        except KeyError:
            raise UnknownIdError(
                f"{self.source}: no image with id {image_id!r} among its {len(self)} images"
                f" (ids look like {self.id_of(0)!r})"
            ) from None

    def indices_of(self, image_ids: Sequence[str]) -> np.ndarray:
        return np.array([self.index_of(i) for i in image_ids], dtype=np.int64)

    def read(self, indices: Sequence[int] | np.ndarray, check: bool = True) -> np.ndarray:
        """Read the images at ``indices`` as a float32 ``(N, H, W, C)`` array.

        Images with a plane that holds no finite pixel or a single value raise
        ``BadImageError`` or, with ``on_error='skip'``, are returned as NaN
        after a ``BadImageWarning``.  ``check=False`` returns them as they
        are (for showing raw data, never for training or scoring).
        """
        return self.read_valid(indices, check)[0]

    def read_valid(self, indices: Sequence[int] | np.ndarray, check: bool = True,
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``read(indices)`` and the mask of the images that can be used (the others are NaN)."""
        idx = self._check_indices(indices)
        if idx.size == 0:
            return np.zeros((0, *self.shape), dtype=np.float32), np.zeros(0, dtype=bool)
        batch = self._read(idx)
        if not check:
            return batch, np.ones(len(idx), dtype=bool)
        return batch, self._check_usable(batch, idx)

    def read_one(self, index: int) -> np.ndarray:
        return self.read([index])[0]

    def read_native(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Images at ``indices`` in their stored integer type, ``(N, H, W, C)``, and a mask
        of the usable ones; ``None`` when these images cannot be given so (use ``read``).

        Unusable images (``on_error='skip'``) are left as read with ``False`` in the mask.
        """
        idx = self._check_indices(indices)
        found = self._read_native(idx)
        if found is None or idx.size == 0:
            return found
        images, valid = found
        return images, self._check_usable(images, idx, valid)

    def _read_native(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``read_native`` for validated ``indices`` before the check; None when not offered."""
        return None

    def why_blank(self, index: int) -> str:
        """Why image ``index`` reads as one value, when the reader can tell (a missing chunk); else ''."""
        return ""

    def channel_name(self, channel: int) -> str:
        """How messages name channel ``channel`` (an HDU, a band ...)."""
        return f"channel {channel}"

    def ids_of(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        """The ids of ``indices``, in order."""
        return [self.id_of(int(i)) for i in indices]

    def fingerprint(self) -> str:
        """A short hash of what the collection is: its source, size, shape and ids' ends."""
        n = len(self)
        ends = [self.id_of(i) for i in sorted({0, n // 2, n - 1})] if n else []
        text = f"{type(self).__name__}|{self.source}|{n}|{self.shape}|{ends}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def close(self) -> None:
        """Release open files; the collection reopens them if used again."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in [k for k in state if k.startswith("_handle")]:
            state[key] = None
        state.pop("_index_by_id", None)
        return state

    def __repr__(self) -> str:
        h, w, c = self.shape
        return f"{type(self).__name__}({self.source!r}, {len(self)} images of {h}x{w}x{c})"

    # -- helpers for subclasses -------------------------------------------------

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise IndexError(f"{self.source}: image index {bad} is outside 0..{n - 1}")
        return idx

    def _check_usable(self, batch: np.ndarray, indices: np.ndarray,
                      valid: np.ndarray | None = None) -> np.ndarray:
        """The mask of usable images of ``batch``; each unusable one raises or is skipped (made NaN
        when ``batch`` is float).  Images already ``False`` in ``valid`` are not looked at again."""
        empty, constant = plane_faults(batch)
        usable = ~(empty | constant).any(axis=1)
        if valid is not None:
            usable |= ~valid  # already reported when they failed to decode
        skipped = self.__dict__.get("_skipped", set())
        for position in np.flatnonzero(~usable):
            index = int(indices[position])
            if index in skipped:  # reported once, when it was first read or failed to decode
                if batch.dtype.kind == "f":
                    batch[position] = np.nan
                continue
            problem = describe_fault(batch[position], empty[position], constant[position],
                                     [self.channel_name(c) for c in range(batch.shape[-1])], self.why_blank(index))
            self._bad_image(index, problem, batch=batch if batch.dtype.kind == "f" else None,
                            position=int(position))
        return usable if valid is None else usable & valid

    def _bad_image(self, index: int, problem: str, *, error: type[Exception] = BadImageError,
                   batch: np.ndarray | None = None,
                   position: int | None = None) -> np.ndarray:
        """Raise or, with ``on_error='skip'``, warn and return a NaN image."""
        message = f"{self.describe(index)}: {problem}"
        if self.on_error == "raise":
            raise error(message + ". Pass on_error='skip' (--skip-bad) to leave such images out.")
        self.__dict__.setdefault("_skipped", set()).add(index)
        warnings.warn(message + "; skipped", BadImageWarning, stacklevel=3)
        nan_image = np.full(self.shape, np.nan, dtype=np.float32)
        if batch is not None and position is not None:
            batch[position] = nan_image
        return nan_image


def parse_index_id(image_id: str, length: int, source: str) -> int:
    """The index named by an id that is a plain image number ("0", "1", ...)."""
    text = str(image_id)
    if text.isdigit() and int(text) < length and str(int(text)) == text:
        return int(text)
    raise UnknownIdError(
        f"{source}: no image with id {image_id!r}; ids here are image numbers 0..{length - 1}"
    )
