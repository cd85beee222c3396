"""Zarr arrays of images, in a bare array store or as a named array of a group."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ..errors import CorruptFileError, SourceNotFoundError
from .arrays import ArrayCollection


class ZarrCollection(ArrayCollection):
    """Images in one Zarr array; ``ids``, ``ra``, ``dec`` arrays of the same group are used."""

    def __init__(self, path: str | Path, array: str | None = None, layout: str = "auto",
                 ids: str | None = None, on_error: str = "raise") -> None:
        self.path = Path(str(path).rstrip("/"))
        if not self.path.exists():
            raise SourceNotFoundError(f"{self.path}: no such Zarr store")
        self.array_name = array
        label = f"{self.path}:{array}" if array else str(self.path)
        super().__init__(label, layout=layout, ids=ids, on_error=on_error)

    def describe(self, index: int) -> str:
        return f"{self.source}[{index}]"

    def why_blank(self, index: int) -> str:
        """Names the first chunk of image ``index`` missing from the store (zarr reads it as the fill value)."""
        array = self._array()
        if self.layout == "encoded":
            return ""
        rows = index // array.chunks[0]
        grid = [range(-(-size // chunk)) for size, chunk in zip(array.shape[1:], array.chunks[1:], strict=True)]
        folder = self.path / self.array_name if self.array_name else self.path
        for rest in itertools.product(*grid):
            key = array.metadata.encode_chunk_key((rows, *rest))
            if not (folder / key).exists():
                return (f"as its chunk {key!r} is missing from the store (zarr reads a missing chunk as "
                        f"the fill value {array.fill_value}; write it again)")
        return ""

    def _open_node(self) -> Any:
        import zarr

        try:
            return zarr.open(str(self.path), mode="r")
        except Exception as err:
            raise CorruptFileError(
                f"{self.path}: not a readable Zarr store ({type(err).__name__}: {err})"
            ) from err

    def _open_array(self) -> Any:
        node = self._open_node()
        if hasattr(node, "shape"):
            return node
        names = sorted(node.array_keys())
        name = self.array_name or next((n for n in ("images", "image", "data") if n in names), None)
        if name is None and len(names) == 1:
            name = names[0]
        if name not in names:
            wanted = repr(self.array_name) if self.array_name else "(none named)"
            raise SourceNotFoundError(
                f"{self.path}: no Zarr array {wanted}; the group holds {names}. Name it with array=..."
            )
        self.array_name = name
        return node[name]

    def _named_array(self, name: str) -> Any | None:
        if self.array_name is None:
            return None
        node = self._open_node()
        return node[name] if name in set(node.array_keys()) else None


def open_zarr(source: str | Path, array: str | None = None, layout: str = "auto",
              ids: str | None = None, on_error: str = "raise") -> ZarrCollection:
    """Open a Zarr store; ``array`` names the images inside a group (guessed when omitted)."""
    return ZarrCollection(source, array=array, layout=layout, ids=ids, on_error=on_error)
