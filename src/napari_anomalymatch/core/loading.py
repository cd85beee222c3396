"""Reading and preprocessing batches of a collection in loader worker processes.

Both scoring and the loading of a training cycle's images go through
``iterate_batches``: workers read (and decode) while the caller uses the
previous batch.  Each item is ``(images, valid)``: a float32 tensor
``(N, C, S, S)`` in [0, 1] on the caller's device and a mask of the images
that could be used.

Integer data under a fixed-range normalisation travel as stored (``uint8``:
a quarter of float32), through pinned memory to the GPU, and are scaled and
resized there (``transforms.prepare_native_batch``); anything else is
normalised and resized in the workers.  Batches are described by index
ranges, so a plan of 10^8 images costs a few kilobytes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .io.base import ImageCollection
from .runs import map_events
from .transforms import Normaliser, prepare_batch, prepare_native_batch

# Aim to keep at most this many bytes of decoded batches waiting in the loader queues.
PREFETCH_BYTES = 1 << 30


@dataclass(frozen=True)
class LoadProgress:
    """How many of the images asked for are loaded."""

    n_done: int
    n_total: int


class RangeBatches(Sequence):
    """Batches of at most ``batch_size`` consecutive indices over ``segments``.

    A batch never straddles two segments ``(start, stop)``; batch ``k`` is
    computed when asked for, so no list of indices is ever held.
    """

    def __init__(self, segments: Sequence[tuple[int, int]], batch_size: int) -> None:
        self.segments = np.asarray(segments, dtype=np.int64).reshape(-1, 2)
        self.batch_size = int(batch_size)
        counts = -(-(self.segments[:, 1] - self.segments[:, 0]) // self.batch_size)
        self.first_batch = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.first_batch[-1])

    def bounds(self, k: int) -> tuple[int, int]:
        """``(start, stop)`` of batch ``k``."""
        if not 0 <= k < len(self):
            raise IndexError(f"batch {k} is outside 0..{len(self) - 1}")
        segment = int(np.searchsorted(self.first_batch, k, side="right") - 1)
        seg_start, seg_stop = (int(v) for v in self.segments[segment])
        start = seg_start + (k - int(self.first_batch[segment])) * self.batch_size
        return start, min(start + self.batch_size, seg_stop)

    def __getitem__(self, k: int) -> np.ndarray:  # type: ignore[override]
        start, stop = self.bounds(int(k))
        return np.arange(start, stop, dtype=np.int64)


class BatchDataset(torch.utils.data.Dataset):
    """Item ``i`` is batch ``i`` of ``batches``: ``(images, valid, native)``.

    ``native`` items hold the stored integers ``(N, H, W, C)``; the others
    the finished float32 model input ``(N, C, S, S)``.
    """

    def __init__(self, collection: ImageCollection, normaliser: Normaliser, image_size: int,
                 batches: Sequence[np.ndarray], native: bool = False) -> None:
        self.collection = collection
        self.normaliser = normaliser
        self.image_size = image_size
        self.batches = batches if isinstance(batches, RangeBatches) else list(batches)
        self.native = native

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        indices = self.batches[item]
        if self.native:
            found = self.collection.read_native(indices)
            if found is not None:
                images, valid = found
                return torch.from_numpy(images), torch.from_numpy(valid), True
        raw, valid = self.collection.read_valid(indices)
        return prepare_batch(raw, self.normaliser, self.image_size), torch.from_numpy(valid), False


def can_load_native(collection: ImageCollection, normaliser: Normaliser) -> bool:
    """Whether batches may travel as stored integers (fixed-range normalisation of integer data)."""
    return collection.native_format is not None and normaliser.fixed_affine() is not None


@contextlib.contextmanager
def iterate_batches(collection: ImageCollection, normaliser: Normaliser, image_size: int,
                    batches: Sequence[np.ndarray], num_workers: int = -1,
                    device: torch.device | None = None,
                    ) -> Iterator[Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Yield an iterator over the preprocessed ``batches``, in order, on ``device``.

    Parameters
    ----------
    batches
        Index arrays, or a ``RangeBatches`` plan.
    num_workers
        Loader processes; -1 chooses (see ``resolve_workers``), 0 reads in this process.
    device
        Where the images are wanted (CPU when None); batches are pinned for a GPU.
    """
    device = device or torch.device("cpu")
    native = can_load_native(collection, normaliser)
    dataset = BatchDataset(collection, normaliser, image_size, batches, native)
    finish = _Finisher(collection, normaliser, image_size, device)
    workers = min(resolve_workers(num_workers, device), len(dataset))
    if workers == 0 or len(dataset) <= 1:
        yield (finish(dataset[i]) for i in range(len(dataset)))
        return
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers,
        prefetch_factor=_prefetch_factor(collection, dataset, workers, native),
        pin_memory=device.type == "cuda", worker_init_fn=_single_thread_worker)
    iterator = iter(loader)
    try:
        yield (finish(item) for item in iterator)
    finally:
        del iterator  # shuts the worker processes down


class _Finisher:
    """Moves a loaded batch to the device and, for native batches, normalises it there."""

    def __init__(self, collection: ImageCollection, normaliser: Normaliser, image_size: int,
                 device: torch.device) -> None:
        native = collection.native_format
        self.decode = (native.offset, native.scale) if native is not None else (0.0, 1.0)
        self.affine = normaliser.fixed_affine()
        self.crop = normaliser.config.crop
        self.image_size = image_size
        self.device = device

    def __call__(self, item: tuple[torch.Tensor, torch.Tensor, bool]) -> tuple[torch.Tensor, torch.Tensor]:
        images, valid, native = item
        images = images.to(self.device, non_blocking=True)
        if native:
            images = prepare_native_batch(images, self.decode, self.affine, self.image_size,  # type: ignore[arg-type]
                                          self.crop)
        return images, valid


def load_images(collection: ImageCollection, normaliser: Normaliser, image_size: int,
                indices: Sequence[int] | np.ndarray, batch_size: int = 256,
                num_workers: int = -1, dtype: torch.dtype = torch.float16,
                ) -> Generator[LoadProgress, None, tuple[torch.Tensor, np.ndarray]]:
    """Load and preprocess ``indices`` into one tensor, yielding progress.

    Returns ``(images, valid)``: ``(N, C, S, S)`` in ``dtype`` and the mask of
    images that could be used.
    """
    idx = np.asarray(indices, dtype=np.int64)
    channels = collection.shape[2]
    images = torch.empty((len(idx), channels, image_size, image_size), dtype=dtype)
    valid = np.zeros(len(idx), dtype=bool)
    batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    position = 0
    with iterate_batches(collection, normaliser, image_size, batches, num_workers) as loaded:
        for batch_images, batch_valid in loaded:
            n = len(batch_images)
            images[position:position + n] = batch_images.to(dtype)
            valid[position:position + n] = batch_valid.numpy()
            position += n
            yield LoadProgress(position, len(idx))
    return images, valid


class DecodedImages:
    """The images the last ``load`` decoded, so the next load reads only the images it lacks.

    A training cycle loads its labelled images and an unlabelled pool; the next cycle's mostly
    overlap them (on a small collection, entirely). What is kept is one load's worth, and it is
    dropped when the collection, normalisation, image size or dtype differ.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._indices = np.zeros(0, dtype=np.int64)
        self._sorter = np.zeros(0, dtype=np.int64)
        self._images: torch.Tensor | None = None
        self._valid = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self._indices)

    def load(self, collection: ImageCollection, normaliser: Normaliser, image_size: int,
             indices: Sequence[int] | np.ndarray, num_workers: int = -1, dtype: torch.dtype = torch.float16,
             ) -> Generator[LoadProgress, None, tuple[torch.Tensor, np.ndarray]]:
        """``load_images`` of ``indices``, decoding only those the last load did not; yields a
        first ``LoadProgress`` (the images already at hand) before anything is read."""
        idx = np.asarray(indices, dtype=np.int64)
        key = (collection.fingerprint(), normaliser.config, normaliser.value_range, image_size, dtype)
        at = self._positions(idx) if key == self._key else np.full(len(idx), -1)
        known = at >= 0
        yield LoadProgress(int(known.sum()), len(idx))
        fresh, fresh_valid = yield from map_events(
            load_images(collection, normaliser, image_size, idx[~known], num_workers=num_workers, dtype=dtype),
            lambda event: LoadProgress(int(known.sum()) + event.n_done, len(idx)))  # counted among them all
        images = torch.empty((len(idx), *fresh.shape[1:]), dtype=dtype)
        valid = np.zeros(len(idx), dtype=bool)
        if known.any():
            images[torch.from_numpy(known)] = self._images[torch.from_numpy(at[known])]
            valid[known] = self._valid[at[known]]
        images[torch.from_numpy(~known)] = fresh
        valid[~known] = fresh_valid
        self._key, self._indices, self._sorter = key, idx, np.argsort(idx, kind="stable")
        self._images, self._valid = images, valid
        return images, valid

    def _positions(self, idx: np.ndarray) -> np.ndarray:
        """Where each of ``idx`` lies among the kept images (-1: not kept)."""
        if not len(self._indices):
            return np.full(len(idx), -1)
        ordered = self._indices[self._sorter]
        place = np.clip(np.searchsorted(ordered, idx), 0, len(ordered) - 1)
        return np.where(ordered[place] == idx, self._sorter[place], -1)


def resolve_workers(requested: int, device: torch.device) -> int:
    """Loader processes: as asked, or automatically (1 on a small CPU, more beside a GPU)."""
    if requested >= 0:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        return 1 if cpus >= 2 else 0
    return max(1, min(12, cpus - 2))


def _prefetch_factor(collection: ImageCollection, dataset: BatchDataset, workers: int, native: bool) -> int:
    """2 to 4 batches per worker, fewer when batches are large."""
    h, w, c = collection.shape
    first = dataset.batches[0]
    item_bytes = len(first) * h * w * c * (1 if native else 4)
    return int(np.clip(PREFETCH_BYTES // max(1, workers * item_bytes), 2, 4))


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)
