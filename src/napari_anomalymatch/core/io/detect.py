"""A catalogue when there is none: sources detected on a mosaic's tiles with ``sep`` (SExtractor's
background, threshold and deblending), written as an ECSV table a mosaic source reads.

Each tile is searched whole (a 10,000^2 float32 tile takes 400 MB while it is searched); a source
found on two overlapping tiles is kept once, from the tile it lies deepest inside (``tiles.place``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..config import DataConfig
from ..errors import ConfigError, EmptyCollectionError, MissingDependencyError, SessionError
from ..runs import run_to_end
from .tiles import Tile, TilePixels, open_band, place

DETECTED_CATALOGUE = "detected-sources.ecsv"  # where a session keeps the catalogue detection made
DETECTION_META = "anomalymatch_detection"  # the key of the detection settings in the catalogue's ECSV header
SESSION_SETTINGS = "session.toml"  # a session folder's mark (session.CONFIG_FILE; session imports the models)


@dataclass(frozen=True)
class DetectConfig:
    """How sources are found: threshold in background sigmas, smallest area in pixels, deblending."""

    threshold: float = 3.0
    min_area: int = 5
    deblend_nthresh: int = 32
    deblend_cont: float = 0.005

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ConfigError(f"detection threshold must be above 0 sigma; got {self.threshold}, e.g. 3")
        if int(self.min_area) < 1:
            raise ConfigError(f"detection min_area must be at least 1 pixel; got {self.min_area}, e.g. 5")
        if not 0 <= self.deblend_cont <= 1:
            raise ConfigError(f"deblend_cont must be 0..1 (1: no deblending); got {self.deblend_cont}")


DETECT_FIELDS = tuple(field.name for field in dataclasses.fields(DetectConfig))


@dataclass(frozen=True)
class DetectProgress:
    """One tile searched: its number (1-based) of ``n_tiles``, its file and the sources kept so far."""

    tile: int
    n_tiles: int
    path: Path
    found: int

    def describe(self) -> str:
        return f"detecting sources: tile {self.tile} of {self.n_tiles} ({self.path.name}), {self.found} found so far"


def detect_sources(pattern: str, out: Path, config: DetectConfig | None = None) -> Path:
    """Detect the sources on the tiles ``pattern`` names and write them to ``out`` (ECSV); see ``detect_events``."""
    return run_to_end(detect_events(pattern, out, config))


def detect_events(pattern: str, out: Path, config: DetectConfig | None = None,
                  ) -> Generator[DetectProgress, None, Path]:
    """Detect the sources on the tiles ``pattern`` names, yielding after each tile, and write them to ``out``.

    The ECSV table has the columns ``id`` (tile name and number), ``ra``/``dec`` (degrees), ``size`` (the
    semi-major axis in arcseconds), ``flux`` (background-subtracted, in the tile's units) and ``tile``; its
    header keeps the tiles and the settings (``saved_detection`` reads them back).  It is written whole
    or not at all (a reader never sees half a catalogue).

    Raises
    ------
    MissingDependencyError
        ``sep`` is not installed.
    EmptyCollectionError
        No source was found, naming the threshold to lower.
    """
    config = config or DetectConfig()
    tiles = open_band(pattern, 0)
    parts = []
    for number, tile in enumerate(tiles):
        parts.append(_detect_on(tile, number, tiles, config))
        yield DetectProgress(number + 1, len(tiles), tile.path, sum(len(part["id"]) for part in parts))
    table = _joined(parts)
    if len(table) == 0:
        raise EmptyCollectionError(f"{pattern}: no source found above {config.threshold} sigma over "
                                   f"{config.min_area} pixels; lower the threshold (e.g. --detect-threshold 1.5)")
    table.meta[DETECTION_META] = {"tiles": str(pattern), **dataclasses.asdict(config)}
    with atomic_path(Path(out)) as temporary:
        table.write(temporary, format="ascii.ecsv", overwrite=True)
    return Path(out)


def saved_detection(catalogue: str | Path) -> DetectConfig | None:
    """The settings ``detect_events`` found the sources of ``catalogue`` with (its ECSV header), or None for a
    catalogue it did not write.  Only the header is read, however long the table."""
    from astropy.table.meta import YamlParseError, get_header_from_yaml

    path = Path(catalogue)
    if path.suffix.lower() != ".ecsv" or not path.is_file():
        return None
    lines = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            lines.append(line[2:].rstrip("\n"))
    try:
        saved = get_header_from_yaml(lines).get("meta", {}).get(DETECTION_META)
        return None if saved is None else DetectConfig(**{key: saved[key] for key in DETECT_FIELDS})
    except (YamlParseError, ValueError, TypeError, KeyError, AttributeError, ConfigError):
        return None  # not our header: the catalogue was given, not detected


def _detect_on(tile: Tile, number: int, tiles: list[Tile], config: DetectConfig) -> dict[str, np.ndarray]:
    try:
        import sep
    except ImportError as err:
        raise MissingDependencyError("detecting sources needs the 'sep' package: pip install "
                                     "'napari-anomalymatch[mosaic]', or give a catalogue (--catalogue)") from err
    pixels = TilePixels(tile)
    try:
        data = np.ascontiguousarray(pixels[:, :], dtype=np.float32)
    finally:
        pixels.close()
    mask = ~np.isfinite(data)
    data[mask] = 0.0
    background = sep.Background(data, mask=mask)
    found = sep.extract(data - background, config.threshold, err=background.globalrms, mask=mask,
                        minarea=int(config.min_area), deblend_nthresh=int(config.deblend_nthresh),
                        deblend_cont=float(config.deblend_cont))
    ra, dec = tile.wcs.pixel_to_world_values(found["x"], found["y"])
    own = place(tiles, np.asarray(ra), np.asarray(dec)).tile == number  # overlaps: kept by one tile only
    return {"id": np.array([f"{_stem(tile.path)}-{i}" for i in range(len(found))])[own],
            "ra": np.asarray(ra)[own], "dec": np.asarray(dec)[own],
            "size": np.asarray(found["a"] * tile.pixel_scale_arcsec())[own],
            "flux": np.asarray(found["flux"])[own], "tile": np.full(int(own.sum()), str(tile.path))}


def _joined(parts: list[dict[str, np.ndarray]]):
    from astropy.table import Table

    names = ("id", "ra", "dec", "size", "flux", "tile")
    table = Table({name: np.concatenate([part[name] for part in parts]) for name in names})
    table["ra"].unit = table["dec"].unit = "deg"
    table["size"].unit = "arcsec"
    return table


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".fz", ".gz", ".fits", ".fit", ".fts"):
        name = name.removesuffix(suffix)
    return name


def mosaic_data(session: Path, data: DataConfig, detect: DetectConfig | None = None) -> DataConfig:
    """The data settings of a new mosaic session: its catalogue as given, or (``detect``) the sources found
    on its first band, written into the session folder (``DETECTED_CATALOGUE``) and used as its catalogue.

    Raises
    ------
    ConfigError
        Tiles without a catalogue or detection, detection without tiles, or both a catalogue and detection.
    SessionError
        Detection into a folder that holds a session already (its catalogue would be replaced).
    """
    bands = data.options.get("mosaic")
    if detect is None:
        if bands and not data.source:
            raise ConfigError("a mosaic source needs the positions to cut: give a catalogue (--catalogue cat.fits, "
                              "or the Data panel's Source, with ra/dec columns) or detect the sources on the first "
                              "band (--detect, or the panel's Detect sources)")
        return data
    if data.source:
        raise ConfigError(f"give either a catalogue ({data.source}) or --detect, not both")
    out = detection_catalogue(session, bands)
    found = detect_sources(bands[0], out, detect)
    return dataclasses.replace(data, source=str(found), reader="mosaic")


def detection_catalogue(session: str | Path, bands: list[str] | None) -> Path:
    """Where the sources detected on ``bands``' first band go for a new session in folder ``session``.

    Raises
    ------
    ConfigError
        No tiles, or no session folder.
    SessionError
        ``session`` holds a session already: its catalogue, and the ids its labels name, would be replaced.
    """
    if not bands:
        raise ConfigError("--detect finds sources on a mosaic: give its tiles with --mosaic 'tiles/*_g.fits' "
                          "(in the Data panel: Mosaic tiles)")
    if not str(session).strip():
        raise ConfigError("choose a session folder first: the detected sources are kept in it")
    folder = Path(session).expanduser().absolute()
    if (folder / SESSION_SETTINGS).exists():
        raise SessionError(f"{folder}: a session exists here already; choose a new folder for the detected sources")
    return folder / DETECTED_CATALOGUE
