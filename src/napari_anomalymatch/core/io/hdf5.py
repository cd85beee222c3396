"""HDF5 datasets of images (``N x H x W[ x C]``, any dtype) or of encoded image bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CorruptFileError, SourceNotFoundError
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
