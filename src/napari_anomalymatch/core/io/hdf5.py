"""HDF5 datasets of images (``N x H x W[ x C]``, any dtype) or of encoded image bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..errors import CorruptFileError, ShapeMismatchError, SourceNotFoundError
from .arrays import ArrayCollection

CHUNK_CACHE_BYTES = 64 * 1024 * 1024


class Hdf5Collection(ArrayCollection):
    """Images in one HDF5 dataset; ``ids``, ``ra``, ``dec`` datasets beside it are used."""

    def __init__(self, path: str | Path, dataset: str | None = None, layout: str = "auto",
                 ids: str | None = None, on_error: str = "raise") -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SourceNotFoundError(f"{self.path}: no such HDF5 file")
        self.dataset = dataset or _guess_dataset(self.path)
        super().__init__(f"{self.path}:{self.dataset}", layout=layout, ids=ids, on_error=on_error)

    def describe(self, index: int) -> str:
        return f"{self.path}:{self.dataset}[{index}]"

    def _open_array(self) -> Any:
        handle = _open_file(self.path)
        if self.dataset not in handle:
            found = _list_datasets(handle)
            handle.close()
            raise SourceNotFoundError(
                f"{self.path}: no HDF5 dataset {self.dataset!r}; found {found}"
            )
        return handle[self.dataset]

    def _named_array(self, name: str) -> Any | None:
        group = self._array().parent
        return group[name] if name in group and hasattr(group[name], "shape") else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.file.close()
        super().close()


def open_hdf5(source: str | Path, dataset: str | None = None, layout: str = "auto",
              ids: str | None = None, on_error: str = "raise") -> Hdf5Collection:
    """Open an HDF5 file; ``dataset`` is the images' path (guessed when omitted)."""
    return Hdf5Collection(source, dataset=dataset, layout=layout, ids=ids, on_error=on_error)


def _open_file(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
    except OSError as err:
        raise CorruptFileError(
            f"{path}: not a readable HDF5 file ({err}); expected an HDF5 file of images"
        ) from err


def _list_datasets(handle: Any) -> list[str]:
    import h5py

    names: list[str] = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


def _guess_dataset(path: Path) -> str:
    """The dataset most likely to hold the images: 'images' if present, else the largest."""
    import h5py

    with _open_file(path) as handle:
        candidates = []
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and (obj.ndim in (3, 4) or (
                    obj.ndim == 1 and h5py.check_vlen_dtype(obj.dtype) is not None)):
                candidates.append((name, obj.size))
        handle.visititems(visit)
        found = _list_datasets(handle)
    if not candidates:
        raise SourceNotFoundError(
            f"{path}: no dataset of images (N x H x W[ x C] or encoded bytes); found {found}. "
            "Name it with dataset=..."
        )
    names = [name for name, _ in candidates]
    for preferred in ("images", "image", "data", "cutouts", "x"):
        if preferred in names:
            return preferred
    return max(candidates, key=lambda item: item[1])[0]


def write_hdf5_stack(path: str | Path, images: Any, ids: list[str] | None = None,
                     dataset: str = "images", batch: int = 1024,
                     columns: dict[str, Any] | None = None) -> Path:
    """Write an ``(N, H, W[, C])`` array (or array-like) as a chunked HDF5 image collection.

    One image per chunk, so the collection reads any image without decoding
    its neighbours; ``ids``, when given, go into an ``ids`` dataset beside it,
    and ``columns`` (e.g. ``ra``, ``dec``: one number per image) into datasets
    of their names, which the reader hands on as the images' metadata.
    The file is written under a temporary name and renamed when complete.
    """
    import h5py
    import numpy as np

    path = Path(path)
    shape = tuple(int(s) for s in images.shape)
    if len(shape) not in (3, 4) or shape[0] == 0:
        raise ShapeMismatchError(f"{path}: can only store N x H x W[ x C] images; got shape {shape}")
    if ids is not None and len(ids) != shape[0]:
        raise ShapeMismatchError(f"{path}: {len(ids)} ids for {shape[0]} images")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        data = handle.create_dataset(dataset, shape=shape, dtype=np.dtype(images.dtype),
                                     chunks=(1, *shape[1:]))
        for start in range(0, shape[0], batch):
            data[start:start + batch] = np.asarray(images[start:start + batch])
        if ids is not None:
            handle.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        for name, values in (columns or {}).items():
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (shape[0],):
                raise ShapeMismatchError(f"{path}: column {name!r} has shape {values.shape}; expected "
                                         f"one number per image ({shape[0]},)")
            handle.create_dataset(name, data=values)
    return path
