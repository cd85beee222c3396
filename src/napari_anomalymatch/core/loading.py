"""Reading and preprocessing batches of a collection in loader worker processes.

Both scoring and the loading of a training cycle's images go through
``iterate_batches``: workers read, normalise and resize while the caller uses
the previous batch.  Each item is ``(images, valid)``: a float32 tensor
``(N, C, S, S)`` in [0, 1] and a mask of images that held any finite pixel.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .io.base import ImageCollection
from .transforms import Normaliser, prepare_batch


@dataclass(frozen=True)
class LoadProgress:
    """How many of the images asked for are loaded."""

    n_done: int
    n_total: int


class BatchDataset(torch.utils.data.Dataset):
    """Item ``i`` is batch ``i`` of ``batches``, read and preprocessed."""

    def __init__(self, collection: ImageCollection, normaliser: Normaliser, image_size: int,
                 batches: Sequence[np.ndarray]) -> None:
        self.collection = collection
        self.normaliser = normaliser
        self.image_size = image_size
        self.batches = list(batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.collection.read(self.batches[item])
        if self.collection.may_hold_nan:
            valid = np.isfinite(raw).reshape(len(raw), -1).any(axis=1)
        else:
            valid = np.ones(len(raw), dtype=bool)
        return prepare_batch(raw, self.normaliser, self.image_size), torch.from_numpy(valid)


@contextlib.contextmanager
def iterate_batches(collection: ImageCollection, normaliser: Normaliser, image_size: int,
                    batches: Sequence[np.ndarray], num_workers: int = -1,
                    device: torch.device | None = None,
                    ) -> Iterator[Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Yield an iterator over the preprocessed ``batches``, in order."""
    device = device or torch.device("cpu")
    dataset = BatchDataset(collection, normaliser, image_size, batches)
    workers = min(resolve_workers(num_workers, device), len(dataset))
    if workers == 0 or len(dataset) <= 1:
        yield (dataset[i] for i in range(len(dataset)))
        return
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=4,
        pin_memory=device.type == "cuda", worker_init_fn=_single_thread_worker)
    iterator = iter(loader)
    try:
        yield iterator
    finally:
        del iterator  # shuts the worker processes down


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


def resolve_workers(requested: int, device: torch.device) -> int:
    """Loader processes: as asked, or automatically (1 on a small CPU, more beside a GPU)."""
    if requested >= 0:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        return 1 if cpus >= 2 else 0
    return max(1, min(12, cpus - 2))


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)
