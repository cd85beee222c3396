"""What a source names on disk: file kinds by suffix, Zarr stores, globs and their roots.

Shared by the readers and the reader registry; nothing here opens a file.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from ..errors import SourceNotFoundError

Source = str | Path | Sequence[str | Path]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fz", ".fits.fz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
CATALOGUE_SUFFIXES = (".csv", ".ecsv")


def has_suffix(path: Path | str, suffixes: Sequence[str]) -> bool:
    return str(path).lower().endswith(tuple(suffixes))


def is_zarr(path: Path) -> bool:
    """Whether ``path`` names a Zarr store (by its suffix, or by the metadata files inside)."""
    return has_suffix(str(path).rstrip("/"), (".zarr",)) or (
        path.is_dir() and ((path / ".zarray").exists() or (path / "zarr.json").exists()
                           or (path / ".zgroup").exists())
    )


def expand_source(source: Source, suffixes: Sequence[str]) -> tuple[list[Path], Path | None]:
    """Files named by a folder (recursively), a glob or a list, sorted, and their root."""
    if not isinstance(source, (str, Path)):
        return [Path(p).expanduser() for p in source], None
    text = str(source)
    if glob.has_magic(text):
        paths = sorted(Path(p) for p in glob.glob(text, recursive=True)
                       if has_suffix(p, suffixes))
        return paths, glob_root(text)
    path = Path(text).expanduser()
    if path.is_dir():
        paths = sorted(p for p in path.rglob("*") if p.is_file() and has_suffix(p, suffixes)
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        return paths, path
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such file or folder")
    return [path], path.parent


def glob_root(pattern: str) -> Path:
    """The folder a glob pattern starts from: its parts before the first wildcard."""
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


