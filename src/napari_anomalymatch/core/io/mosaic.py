"""Survey mosaics as a collection: each catalogue row is one cutout centred on its position.

The source is a catalogue (CSV/ECSV/FITS table/Parquet with ra/dec, optional id and size columns);
``mosaic`` names one glob of FITS tiles per band.  Each position is placed on the tile of each band
that holds it (``tiles.place``) when the collection opens, without reading pixels; the cutouts are cut
when read (``cutting``), a chunk at a time, and kept in the session (``cutoutcache``).  Cutting runs in
parallel where reading does: in the data loader's worker processes and on Dask workers (threads in one
process were measured slower: a cutout is mostly Python work, which holds the GIL).  A collection is
pickled as the files and settings it was opened with (``MosaicOpening``), so a Dask worker opens the
catalogue and tile headers itself and cuts from the tiles: nothing catalogue-sized leaves the client
(pickled whole it was ~80 bytes a row, 80 MB a worker for 10^6 rows).  Positions in no tile are left out
and reported (``outside``, a warning), never dropped without a word.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DuplicateIdError, EmptyCollectionError, MissingDependencyError, SessionError
from .base import ImageCollection
from .columns import COLUMN_NAMES
from .cutoutcache import CHUNK, CutoutCache
from .cutting import combine_bands, cut_resampled, cutout_grid, cutout_slices
from .mosaicsettings import channel_recipe, cutout_pixels
from .skytable import filled, find_column, read_sky_table, sky_coordinates
from .tiles import Placement, Tile, TilePixels, open_band, place


class MosaicWarning(UserWarning):
    """Catalogue positions that lie in no tile of some band (left out of the collection)."""


@dataclass(frozen=True)
class MosaicOpening:
    """The files and settings a mosaic collection was opened with (``open_mosaic``'s arguments): what it is
    pickled as."""

    source: str
    mosaic: tuple[str, ...]
    cutout_size: str | int | None
    channels: str | None
    resample: bool
    cache: str | None
    on_error: str


@dataclass(frozen=True)
class SourceTable:
    """A catalogue's positions: ids, RA/Dec in degrees and sizes (NaN when it has none), row by row."""

    path: Path
    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    size: np.ndarray


def read_sources(path: str | Path) -> SourceTable:
    """Read a source catalogue; ids are its id column or the row numbers.

    Raises
    ------
    ConfigError
        No ra/dec column (naming the columns found), or duplicate ids.
    """
    path = Path(path).expanduser()
    table = read_sky_table(path)
    ra_name = find_column(table, COLUMN_NAMES["ra"], path, "RA")
    dec_name = find_column(table, COLUMN_NAMES["dec"], path, "Dec")
    ra, dec = sky_coordinates(table, ra_name, dec_name, path)
    id_name = find_column(table, COLUMN_NAMES["id"], path, "id", required=False)
    ids = filled(table[id_name], "") if id_name else np.arange(len(table)).astype(str)
    ids = np.asarray([str(i).strip() for i in ids], dtype=object)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DuplicateIdError(f"{path}: ids in column {id_name!r} repeat ({list(unique[counts > 1][:3])}); each "
                               "source needs its own id: fix the column, or remove it to use row numbers")
    size_name = find_column(table, COLUMN_NAMES["size"], path, "size", required=False)
    size = np.asarray(filled(table[size_name], np.nan), dtype=np.float64) if size_name else np.full(len(ra), np.nan)
    return SourceTable(path, ids, ra, dec, size)


def open_mosaic(source: str | Path, mosaic: Sequence[str] | str = (), cutout_size: str | int | None = None,
                channels: str | None = None, resample: bool = True, cache: str | None = None,
                on_error: str = "raise") -> MosaicCollection:
    """Open a catalogue against survey mosaics as a collection of cutouts (no pixel is read).

    Parameters
    ----------
    source
        The catalogue of positions.
    mosaic
        One glob (or FITS file, or folder) of tiles per band, in band order.
    cutout_size
        ``64px`` or an angle (``12arcsec``); default 64 pixels.
    channels
        Band numbers per model channel (``'1,2,3'``, ``'2'``, ``'mean'``); default ``mosaicsettings``'.
    resample
        Resample bands on another pixel grid onto the first band's (``reproject``), or refuse them.
    cache
        A folder to keep cut chunks in (the session sets it); empty: cut every time.

    Raises
    ------
    ConfigError, SourceNotFoundError, MissingDependencyError, EmptyCollectionError
        Each naming the file and the fix.
    """
    patterns = [mosaic] if isinstance(mosaic, (str, Path)) else list(mosaic)
    if not patterns:
        raise ConfigError(f"{source}: a mosaic source needs its tiles: give one --mosaic 'tiles/*_g.fits' per band")
    bands = [open_band(str(pattern), number) for number, pattern in enumerate(patterns)]
    sources = read_sources(source)
    size = cutout_pixels(cutout_size, bands[0][0].pixel_scale_arcsec(), str(source))
    recipe = channel_recipe(channels, len(bands))
    placements = [place(tiles, sources.ra, sources.dec) for tiles in bands]
    opening = MosaicOpening(str(source), tuple(str(p) for p in patterns), cutout_size, channels, resample, cache,
                            on_error)
    collection = MosaicCollection(sources, bands, placements, size, recipe, opening)
    collection.check_grids(resample)
    if cache:
        collection.cache = CutoutCache(Path(cache), collection.cache_key())
    return collection


class MosaicCollection(ImageCollection):
    """Cutouts of catalogue positions from survey tiles; ``outside`` lists the rows left out."""

    def __init__(self, sources: SourceTable, bands: list[list[Tile]], placements: list[Placement], size: int,
                 recipe: list[int | str], opening: MosaicOpening) -> None:
        self.source = str(sources.path)
        self.sources, self.bands, self.recipe, self.size = sources, bands, recipe, size
        self.opening = opening
        self.on_error = opening.on_error
        self.shape = (size, size, len(recipe))
        tiles = np.stack([p.tile for p in placements])
        placed = (tiles >= 0).all(axis=0)
        self.rows = np.flatnonzero(placed)  # the catalogue row of each image
        self.tiles = tiles[:, self.rows]  # (band, image) -> tile number in that band
        self.x, self.y = placements[0].x[self.rows], placements[0].y[self.rows]
        self.outside = self._outside(tiles, placed)
        self.cache: CutoutCache | None = None
        self._padded = self._find_padded()
        self._same_grid = self._find_same_grid()
        self._handle_pixels: dict[tuple[int, int], TilePixels] | None = None
        if len(self.rows) == 0:
            raise EmptyCollectionError(f"{self.source}: none of its {len(placed)} positions lies in a tile of every "
                                       f"band; the tiles cover {self._coverage()}. Check the catalogue's ra/dec "
                                       "columns (degrees) and the --mosaic globs")

    # -- the collection contract -------------------------------------------------------

    def __len__(self) -> int:
        return len(self.rows)

    def id_of(self, index: int) -> str:
        return str(self.sources.ids[self.rows[index]])

    def describe(self, index: int) -> str:
        tile = self.bands[0][self.tiles[0, index]]
        x, y = self.x[index], self.y[index]
        return f"{self.source} row {self.rows[index] + 1} ({tile.path.name} x={x:.1f} y={y:.1f})"

    def channel_name(self, channel: int) -> str:
        item = self.recipe[channel]
        return f"channel {channel} ({'mean of the bands' if item == 'mean' else f'band {int(item) + 1}'})"

    def metadata(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        rows = self.rows[idx]
        tile_paths = np.array([str(t.path) for t in self.bands[0]], dtype=object)
        meta = {"ra": self.sources.ra[rows], "dec": self.sources.dec[rows],
                "path": np.array([self.describe(int(i)) for i in idx], dtype=object),
                "tile": tile_paths[self.tiles[0, idx]], "x": self.x[idx], "y": self.y[idx],
                "padded": self._padded[idx]}
        if np.isfinite(self.sources.size).any():
            meta["size"] = self.sources.size[rows]
        return meta

    def _find_padded(self) -> np.ndarray:
        """Whether each cutout reaches beyond its tile (its pixels there are NaN): the edges astropy's
        ``overlap_slices`` takes, ``ceil(position -/+ size / 2)``, against the tile's shape."""
        shapes = np.array([t.shape for t in self.bands[0]])[self.tiles[0]]
        half = self.size / 2.0
        low = np.minimum(np.ceil(self.x - half), np.ceil(self.y - half)) < 0
        return low | (np.ceil(self.x + half) > shapes[:, 1]) | (np.ceil(self.y + half) > shapes[:, 0])

    def cutout_wcs(self, index: int) -> Any:
        """The celestial WCS of image ``index`` (its first band's grid), from astropy's ``Cutout2D``."""
        return cutout_grid(self.bands[0][self.tiles[0, index]], self.x[index], self.y[index], self.size).wcs

    def _read(self, indices: np.ndarray) -> np.ndarray:
        batch = np.empty((len(indices), *self.shape), dtype=np.float32)
        for positions, wanted, what in self._jobs(indices):
            batch[positions] = self._cut_job(what)[wanted]
        return batch

    def cache_key(self) -> str:
        """What the cutouts depend on: the tiles and catalogue (and their change times), size and channels."""
        files = [t.path for tiles in self.bands for t in tiles] + [self.sources.path]
        stamps = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files]
        return repr((stamps, self.size, self.recipe, len(self)))

    def close(self) -> None:
        for pixels in (self._handle_pixels or {}).values():
            pixels.close()
        self._handle_pixels = None

    def __reduce__(self) -> tuple[Any, tuple[MosaicOpening, str]]:
        """Pickled as its ``opening`` and ``cache_key`` (the files' sizes and change times): unpickled, it opens
        them again, refusing files changed since (``reopen_mosaic``)."""
        return reopen_mosaic, (self.opening, self.cache_key())

    def __copy__(self) -> MosaicCollection:
        """Another handle on the same arrays, with tiles of its own to open (the review's display):
        not opened again as a pickled one is."""
        clone = object.__new__(MosaicCollection)
        clone.__dict__.update(self.__getstate__())
        return clone

    # -- cutting -----------------------------------------------------------------------

    def _jobs(self, indices: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, Any]]:
        """The reads by chunk: (positions in the batch, what to cut or load for them).

        A chunk that is cached, or that the batch reads at least half of, is loaded or cut whole
        and kept; scattered reads (training's draws) cut only the images they want.
        """
        jobs = []
        chunks = indices // CHUNK
        for chunk in np.unique(chunks):
            positions = np.flatnonzero(chunks == chunk)
            wanted = indices[positions]
            chunk_length = min(CHUNK, len(self) - int(chunk) * CHUNK)
            whole = self.cache is not None and (len(np.unique(wanted)) * 2 >= chunk_length
                                                or self.cache.get(int(chunk)) is not None)
            if whole:
                start = int(chunk) * CHUNK
                jobs.append((positions, wanted - start, int(chunk)))
            else:
                jobs.append((positions, np.arange(len(wanted)), wanted))
        return jobs

    def _cut_job(self, what: int | np.ndarray) -> np.ndarray:
        """Chunk ``what`` (an int: from the cache, or cut and kept) or the images ``what`` (an array: cut)."""
        if not isinstance(what, int):
            return self._cut(what)
        cached = self.cache.get(what)
        if cached is not None:
            return cached
        cutouts = self._cut(np.arange(what * CHUNK, min((what + 1) * CHUNK, len(self))))
        self.cache.put(what, cutouts)
        return cutouts

    def _cut(self, indices: np.ndarray) -> np.ndarray:
        """Cut images ``indices`` (all bands, then combined into channels): those whole inside their tile
        with every band on one grid all at once, tile by tile; the others (padded, resampled) one by one."""
        whole = ~self._padded[indices] & self._same_grid[:, indices].all(axis=0)
        if whole.all():
            return self._gather(indices)
        out = np.empty((len(indices), *self.shape), dtype=np.float32)
        if whole.any():
            out[whole] = self._gather(indices[whole])
        for position in np.flatnonzero(~whole):
            out[position] = self._cut_one(int(indices[position]))
        return out

    def _gather(self, indices: np.ndarray) -> np.ndarray:
        """Cutouts wholly inside their tiles, on one grid: each band's pixels gathered per tile at once, from
        the corner ``overlap_slices`` (as ``Cutout2D``) starts at, ``ceil(position - size / 2)``."""
        corner_y = np.ceil(self.y[indices] - self.size / 2).astype(np.int64)
        corner_x = np.ceil(self.x[indices] - self.size / 2).astype(np.int64)
        planes = np.empty((len(self.bands), len(indices), self.size, self.size), dtype=np.float32)
        for band in range(len(self.bands)):
            tiles = self.tiles[band, indices]
            for tile in np.unique(tiles):
                which = tiles == tile
                planes[band, which] = self._pixels(band, int(tile)).gather(corner_y[which], corner_x[which],
                                                                           self.size)
        return combine_bands(planes, self.recipe)

    def _cut_one(self, index: int) -> np.ndarray:
        planes = np.full((len(self.bands), self.size, self.size), np.nan, dtype=np.float32)
        large, small = cutout_slices(self.bands[0][self.tiles[0, index]].shape, self.x[index], self.y[index],
                                     self.size)
        for band in range(len(self.bands)):
            if self._same_grid[band, index]:
                planes[band][small] = self._pixels(band, self.tiles[band, index])[large]
            else:
                self._resample(band, index, planes[band])
        return combine_bands(planes, self.recipe)

    def _find_same_grid(self) -> np.ndarray:
        """(band, image): whether the image's tile in that band is on its first band's tile's grid."""
        same = np.ones(self.tiles.shape, dtype=bool)
        for band in range(1, len(self.bands)):
            for first, tile in {(int(a), int(b)) for a, b in zip(self.tiles[0], self.tiles[band])}:
                if not self.bands[0][first].same_grid(self.bands[band][tile]):
                    same[band, (self.tiles[0] == first) & (self.tiles[band] == tile)] = False
        return same

    def _resample(self, band: int, index: int, plane: np.ndarray) -> None:
        tile = self.bands[band][self.tiles[band, index]]
        target = cutout_grid(self.bands[0][self.tiles[0, index]], self.x[index], self.y[index], self.size)
        row = self.rows[index]
        cut_resampled(self._pixels(band, self.tiles[band, index]), tile, self.sources.ra[row],
                      self.sources.dec[row], target, self.size, plane)

    def _pixels(self, band: int, tile: int) -> TilePixels:
        if self._handle_pixels is None:
            self._handle_pixels = {}
        key = (band, int(tile))
        if key not in self._handle_pixels:
            self._handle_pixels[key] = TilePixels(self.bands[band][tile])
        return self._handle_pixels[key]

    # -- checks at opening -------------------------------------------------------------

    def check_grids(self, resample: bool) -> None:
        """Refuse bands on another pixel grid when not resampling, or when ``reproject`` is missing."""
        other = np.argwhere(~self._same_grid)
        if not len(other):
            return
        band, index = (int(v) for v in other[0])
        first, tile = self.bands[0][self.tiles[0, index]], self.bands[band][self.tiles[band, index]]
        where = (f"{tile.path} (band {band + 1}, {tile.shape[1]}x{tile.shape[0]} px) lies on another pixel grid "
                 f"than {first.path} (band 1, {first.shape[1]}x{first.shape[0]} px)")
        if not resample:
            raise ConfigError(f"{where}; set resample=yes (--resample yes) to resample it onto band 1's grid, "
                              "or give tiles of every band on one grid")
        if importlib.util.find_spec("reproject") is None:
            raise MissingDependencyError(f"{where}; resampling it needs the 'reproject' package: pip install "
                                         "'napari-anomalymatch[mosaic]', or give tiles of every band on one grid")

    def _outside(self, tiles: np.ndarray, placed: np.ndarray) -> list[tuple[str, float, float, str]]:
        """(id, ra, dec, why) of each row left out, and one warning naming how many and the first."""
        left = []
        for row in np.flatnonzero(~placed):
            ra, dec = float(self.sources.ra[row]), float(self.sources.dec[row])
            missing = [band + 1 for band in range(len(tiles)) if tiles[band, row] < 0]
            why = "no position" if not np.isfinite([ra, dec]).all() else f"in no tile of band(s) {missing}"
            left.append((str(self.sources.ids[row]), ra, dec, why))
        if left:
            first = left[0]
            warnings.warn(f"{self.source}: {len(left)} of {len(placed)} positions are left out, in no tile of some "
                          f"band (first: id {first[0]!r} at RA {first[1]:.5f} Dec {first[2]:.5f}, {first[3]}); "
                          "'anomalymatch init' and the collection's 'outside' list them", MosaicWarning, stacklevel=3)
        return left

    def _coverage(self) -> str:
        tile = self.bands[0][0]
        ra, dec = tile.wcs.pixel_to_world_values((tile.shape[1] - 1) / 2, (tile.shape[0] - 1) / 2)
        return f"{len(self.bands[0])} tile(s) of band 1, the first centred on RA {ra:.4f} Dec {dec:.4f}"


def reopen_mosaic(opening: MosaicOpening, key: str) -> MosaicCollection:
    """Open a pickled collection's files again (on a Dask worker, in a loader process), as they were.

    Raises
    ------
    SessionError
        The catalogue or a tile changed since the collection was pickled: its images would not be the
        same, and scores would land on other images' indices.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MosaicWarning)  # said where the collection was first opened
        collection = open_mosaic(opening.source, opening.mosaic, opening.cutout_size, opening.channels,
                                 opening.resample, opening.cache, opening.on_error)
    if collection.cache_key() != key:
        raise SessionError(f"{opening.source}: the catalogue or a tile of {list(opening.mosaic)} changed since the "
                           "collection was opened (size or change time differ); on a cluster every worker must see "
                           "the same files: open the session again, or restore the files")
    return collection
