"""Finding the shards of a sharded source: a glob, a folder or a CSV list of shards.

A shard is one file or folder holding many images: an HDF5 file, a Zarr
store, a FITS cube or a folder of image files.  Shards are named by their path
relative to the source's root (POSIX style), so a shard's name, and with it
every image id ``"<shard>:<id in shard>"``, stays the same wherever the survey
is mounted.  Nothing here reads pixels; FITS headers are read only to tell a
cube (a shard) from a single image.
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, EmptyCollectionError, SourceNotFoundError
from .catalogue import column, read_table
from .csvtable import ECSV_SUFFIX, csv_rows, read_text
from .fitsfile import fits_stack_length
from .paths import CATALOGUE_SUFFIXES, FITS_SUFFIXES, HDF5_SUFFIXES, IMAGE_SUFFIXES, glob_root, has_suffix, is_zarr

SHARD_PATH_COLUMNS = ("path", "shard", "file", "filename")
SHARD_READERS = ("hdf5", "zarr", "fits", "folder")


@dataclass(frozen=True)
class Shard:
    """One shard: its name, where it is, which reader opens it and (when known) its size."""

    name: str
    source: str
    reader: str
    n_images: int | None = None


def is_shard_source(path: Path) -> bool:
    """Whether ``path`` (a glob, folder or CSV file) names several-image containers."""
    text = str(path)
    if glob.has_magic(text):
        return _holds_containers([Path(p) for p in sorted(glob.glob(text, recursive=True))])
    if not path.exists():
        return False
    if path.is_dir():
        if is_zarr(path):
            return False
        return _holds_containers(_visible_children(path))
    if has_suffix(path, CATALOGUE_SUFFIXES):
        return _is_shard_catalogue(path)
    return False


def list_shards(source: str | Path | list, hdu: object = None) -> tuple[list[Shard], str]:
    """The shards of ``source`` and a description of it, in a stable (sorted) order.

    Raises
    ------
    SourceNotFoundError, EmptyCollectionError, ConfigError
    """
    if isinstance(source, (list, tuple)):
        paths = [Path(p).expanduser() for p in source]
        root = Path(os.path.commonpath([str(p.absolute()) for p in paths])) if paths else Path(".")
        if len(paths) == 1:
            root = paths[0].absolute().parent
        return _shards_of(paths, root, hdu, f"{len(paths)} shards"), f"{len(paths)} shards"
    text = str(source)
    if glob.has_magic(text):
        paths = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        return _shards_of(paths, glob_root(text), hdu, text), text
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return _shards_of(_visible_children(path), path, hdu, text), text
    if has_suffix(path, CATALOGUE_SUFFIXES):
        return read_shard_catalogue(path), text
    raise ConfigError(
        f"{path}: not a sharded source; expected a glob, a folder of HDF5/Zarr/FITS-cube files "
        "or image folders, or a CSV listing shard paths"
    )


def read_shard_catalogue(path: Path) -> list[Shard]:
    """Shards from a CSV/ECSV with ``path`` and optional ``name``, ``n_images``, ``reader``.

    Giving ``n_images`` for every shard lets the collection open without
    opening every shard; relative paths are relative to the catalogue.
    """
    table = read_table(path)
    paths = column(table, SHARD_PATH_COLUMNS, path, required=True)
    names = column(table, ("name",), path)
    sizes = column(table, ("n_images", "n", "length"), path)
    readers = column(table, ("reader",), path)
    shards = []
    for row, text in enumerate(paths):
        shard_path = Path(str(text)).expanduser()
        if not shard_path.is_absolute():
            shard_path = path.parent / shard_path
        where = f"{path}, row {row + 2}"
        if not shard_path.exists():
            raise SourceNotFoundError(f"{where}: shard {shard_path} does not exist")
        reader = str(readers[row]).strip() if readers is not None and str(readers[row]).strip() else None
        name = str(names[row]).strip() if names is not None and str(names[row]).strip() else None
        size = _parse_size(sizes[row], where) if sizes is not None else None
        shards.append(Shard(name=_check_name(name or _relative_name(shard_path, path.parent), where),
                            source=str(shard_path),
                            reader=_check_reader(reader or _reader_for(shard_path, None) or "", where),
                            n_images=size))
    return _check_unique(shards, str(path))


# -- helpers ------------------------------------------------------------------------------


def _visible_children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _holds_containers(paths: list[Path]) -> bool:
    """True when ``paths`` include HDF5 files or Zarr stores, or their FITS files are cubes."""
    if any(_kind(p) in ("hdf5", "zarr") for p in paths):
        return True
    fits_files = [p for p in paths if _kind(p) == "fits"]
    return bool(fits_files) and _is_fits_cube(fits_files[0])


def _kind(path: Path) -> str | None:
    if is_zarr(path):
        return "zarr"
    if path.is_file() and has_suffix(path, HDF5_SUFFIXES):
        return "hdf5"
    if path.is_file() and has_suffix(path, FITS_SUFFIXES):
        return "fits"
    if path.is_dir():
        return "folder"
    return None


def _reader_for(path: Path, hdu: object) -> str | None:
    kind = _kind(path)
    if kind == "fits" and not _is_fits_cube(path, hdu):
        return None  # a single image, not a shard
    if kind == "folder" and not _holds_images(path):
        return None
    return kind


def _is_fits_cube(path: Path, hdu: object = None) -> bool:
    return fits_stack_length(path, hdu) is not None


def _holds_images(folder: Path) -> bool:
    suffixes = IMAGE_SUFFIXES + FITS_SUFFIXES
    return any(p.is_file() and has_suffix(p, suffixes) for p in folder.rglob("*"))


def _shards_of(paths: list[Path], root: Path, hdu: object, source: str) -> list[Shard]:
    """Shards among ``paths``; FITS files count as cubes when the first one is (headers are read once)."""
    shards = []
    fits_are_cubes: bool | None = None
    for path in paths:
        if _kind(path) == "fits":
            if fits_are_cubes is None:
                fits_are_cubes = _is_fits_cube(path, hdu)
            reader = "fits" if fits_are_cubes else None
        else:
            reader = _reader_for(path, hdu)
        if reader is not None:
            shards.append(Shard(name=_check_name(_relative_name(path, root), str(path)),
                                source=str(path), reader=reader))
    if not shards:
        raise EmptyCollectionError(
            f"{source}: no shards found; expected HDF5 files, Zarr stores, FITS cubes or folders "
            "of images"
        )
    return _check_unique(shards, source)


def _relative_name(path: Path, root: Path) -> str:
    text = str(path).rstrip("/")
    try:
        return Path(text).absolute().relative_to(Path(root).absolute()).as_posix()
    except ValueError:
        return Path(text).name


def _check_name(name: str, where: str) -> str:
    if not name or ":" in name:
        raise ConfigError(
            f"{where}: shard name {name!r} cannot be used; names must be non-empty and hold no ':' "
            "(ids are '<shard>:<id>'). Rename the file or give a 'name' column"
        )
    return name


def _check_reader(reader: str, where: str) -> str:
    if reader not in SHARD_READERS:
        raise ConfigError(
            f"{where}: cannot tell how to open this shard (reader {reader!r}); expected an HDF5 "
            f"file, a Zarr store, a FITS cube or an image folder, or a 'reader' column of {SHARD_READERS}"
        )
    return reader


def _parse_size(value: object, where: str) -> int | None:
    text = str(value).strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{where}: n_images must be a positive integer; got {text!r}")
    return int(text)


def _check_unique(shards: list[Shard], source: str) -> list[Shard]:
    seen: set[str] = set()
    for shard in shards:
        if shard.name in seen:
            raise ConfigError(f"{source}: two shards are named {shard.name!r}; shard names must be unique")
        seen.add(shard.name)
    return shards


def _is_shard_catalogue(path: Path) -> bool:
    """A CSV/ECSV whose first listed path is an HDF5 file or Zarr store, or which has ``n_images``."""
    header, first = _first_rows(path)
    lower = [h.strip().lower() for h in header]
    if "n_images" in lower:
        return True
    path_column = next((lower.index(name) for name in SHARD_PATH_COLUMNS if name in lower), None)
    if path_column is None or first is None or path_column >= len(first):
        return False
    text = first[path_column].strip().strip('"')
    candidate = Path(text) if Path(text).is_absolute() else path.parent / text
    return has_suffix(text.rstrip("/"), (*HDF5_SUFFIXES, ".zarr")) or is_zarr(candidate)


def _first_rows(path: Path) -> tuple[list[str], list[str] | None]:
    text = read_text(path)
    if ECSV_SUFFIX in [s.lower() for s in path.suffixes]:  # space-separated under '#' metadata
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")][:2]
        rows = list(csv.reader(lines, delimiter=" ", skipinitialspace=True))
    else:
        rows = csv_rows(text, limit=2)
    return (rows[0] if rows else []), (rows[1] if len(rows) > 1 else None)
