"""Already known?  Each image's nearest object in a catalogue of known ones, kept in the session.

``crossmatch_session`` matches the RA/Dec of every image against a catalogue
(``known.read_known_catalogue``) with astropy's ``match_to_catalog_sky`` and
stores the result in the session's ``crossmatch.npz`` (written atomically), so
the review and every export read it again after the session is reopened.  An
image is *known* when its nearest catalogue object lies within the radius;
images without coordinates get no match, and the result counts them.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import ConfigError
from ..io.base import ImageCollection
from .known import KnownCatalogue, read_known_catalogue

CROSSMATCH_FILE = "crossmatch.npz"
DEFAULT_RADIUS = "3arcsec"
METADATA_CHUNK = 100_000  # images whose coordinates are read at once


def parse_radius(text: str | float) -> float:
    """A match radius such as ``"3arcsec"``, ``"0.001deg"`` or ``"0.05 arcmin"``, in arcseconds.

    Raises
    ------
    ConfigError
        Not an angle with a unit, or not above zero.
    """
    import astropy.units as u

    try:
        quantity = u.Quantity(str(text).strip())
        arcsec = float(quantity.to_value(u.arcsec))
    except (TypeError, ValueError, u.UnitsError):
        raise ConfigError(f"radius {text!r} is not an angle; give a number with its unit, such as "
                          "3arcsec, 0.001deg or 0.05arcmin") from None
    if not arcsec > 0 or not math.isfinite(arcsec):
        raise ConfigError(f"radius {text!r} must be above zero, such as 3arcsec")
    return arcsec


@dataclass(frozen=True)
class CrossMatch:
    """Every image's nearest known object (collection order) and where it came from."""

    catalogue: str
    radius_arcsec: float
    ra_column: str
    dec_column: str
    name_column: str | None
    n_catalogue: int
    collection: str  # the collection's fingerprint: a match of another collection is not used
    names: np.ndarray  # the names matched, each once
    name_index: np.ndarray  # per image: its nearest object's place in ``names``; -1 without coordinates
    separation_arcsec: np.ndarray  # per image: the separation to it; NaN without coordinates

    @property
    def known(self) -> np.ndarray:
        """Per image: whether its nearest object lies within the radius."""
        return np.nan_to_num(self.separation_arcsec, nan=np.inf) <= self.radius_arcsec

    @property
    def n_known(self) -> int:
        return int(self.known.sum())

    @property
    def n_without_coordinates(self) -> int:
        return int((self.name_index < 0).sum())

    def name_of(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The nearest object's name of each image (``""`` without coordinates)."""
        where = self.name_index[np.asarray(indices, dtype=np.int64)]
        table = np.append(self.names, "")
        return table[where]  # -1 picks the appended ""

    def describe(self, index: int) -> str:
        """One line for the review: ``known: NAME (1.2″)``, ``not yet known ...`` or no coordinates."""
        separation = float(self.separation_arcsec[index])
        if math.isnan(separation):
            return "no coordinates to match"
        name = str(self.name_of([index])[0])
        if separation <= self.radius_arcsec:
            return f"known: {name} ({_angle(separation)})"
        return f"not yet known (nearest: {name}, {_angle(separation)})"

    def columns(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """The export's columns for ``indices``: ``known``, ``known_name``, ``known_separation_arcsec``;
        the name and separation stay empty (``""``, NaN) for an image with no object within the radius."""
        indices = np.asarray(indices, dtype=np.int64)
        known = self.known[indices]
        return {"known": known, "known_name": np.where(known, self.name_of(indices), ""),
                "known_separation_arcsec": np.where(known, self.separation_arcsec[indices], np.nan)}

    def summary(self) -> str:
        """What the match found, in words."""
        n = len(self.separation_arcsec)
        text = (f"{self.n_known} of {n} images are known in {self.catalogue} "
                f"({self.n_catalogue} objects) within {_angle(self.radius_arcsec)}")
        if self.n_without_coordinates:
            text += f"; {self.n_without_coordinates} images have no RA/Dec and were not matched"
        return text


def _angle(arcsec: float) -> str:
    if arcsec >= 60:
        return f"{arcsec / 60:.2f}′"
    return f"{arcsec:.2f}″" if arcsec < 10 else f"{arcsec:.1f}″"


def match_positions(ra: np.ndarray, dec: np.ndarray, catalogue: KnownCatalogue,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each position's nearest catalogue row and its separation in arcsec (-1 and NaN where not finite)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    row = np.full(len(ra), -1, dtype=np.int64)
    separation = np.full(len(ra), np.nan)
    finite = np.isfinite(ra) & np.isfinite(dec)
    if finite.any():
        images = SkyCoord(ra[finite] * u.deg, dec[finite] * u.deg)
        known = SkyCoord(catalogue.ra * u.deg, catalogue.dec * u.deg)
        nearest, sep2d, _ = images.match_to_catalog_sky(known)
        row[finite] = nearest
        separation[finite] = sep2d.to_value(u.arcsec)
    return row, separation


def image_coordinates(collection: ImageCollection) -> tuple[np.ndarray, np.ndarray]:
    """Every image's RA/Dec in degrees (NaN where unknown), read a chunk at a time."""
    n = len(collection)
    ra, dec = np.full(n, np.nan), np.full(n, np.nan)
    for start in range(0, n, METADATA_CHUNK):
        stop = min(n, start + METADATA_CHUNK)
        meta = collection.metadata(np.arange(start, stop))
        if "ra" in meta and "dec" in meta:
            ra[start:stop] = np.asarray(meta["ra"], dtype=np.float64)
            dec[start:stop] = np.asarray(meta["dec"], dtype=np.float64)
    return ra, dec


def crossmatch_session(session: Any, catalogue: str | Path, radius: str | float = DEFAULT_RADIUS,
                       ) -> CrossMatch:
    """Match the session's images against ``catalogue`` and store the result in the session.

    Parameters
    ----------
    session
        An open, writable ``Session``.
    catalogue
        A FITS/ECSV/CSV/VOTable/Parquet file with RA/Dec columns (see ``known``).
    radius
        How near the nearest object must be to call an image known (``"3arcsec"``).

    Raises
    ------
    ConfigError
        A bad radius, a catalogue without RA/Dec, or a collection whose images carry no RA/Dec.
    SourceNotFoundError, CorruptFileError, EmptyCollectionError
        A missing, unreadable or empty catalogue.
    """
    radius_arcsec = parse_radius(radius)
    known = read_known_catalogue(catalogue)
    collection = session.collection
    ra, dec = image_coordinates(collection)
    if not (np.isfinite(ra) & np.isfinite(dec)).any():
        raise ConfigError(f"{collection.source}: no image has RA/Dec, so there is nothing to match "
                          f"against {catalogue}; use a catalogue source with ra/dec columns, or FITS "
                          "images with a celestial WCS")
    row, separation = match_positions(ra, dec, known)
    used, name_index = np.unique(row[row >= 0], return_inverse=True)
    per_image = np.full(len(row), -1, dtype=np.int64)
    per_image[row >= 0] = name_index
    match = CrossMatch(str(Path(catalogue).absolute()), radius_arcsec, known.ra_column, known.dec_column,
                       known.name_column, len(known), collection.fingerprint(), known.names[used],
                       per_image, separation)
    write_crossmatch(Path(session.path) / CROSSMATCH_FILE, match)
    return match


def write_crossmatch(path: Path, match: CrossMatch) -> None:
    """Store ``match`` in one file, written atomically (a crash leaves the old one or the new one)."""
    about = {"catalogue": match.catalogue, "radius_arcsec": match.radius_arcsec,
             "ra_column": match.ra_column, "dec_column": match.dec_column,
             "name_column": match.name_column, "n_catalogue": match.n_catalogue,
             "collection": match.collection}
    buffer = io.BytesIO()
    np.savez(buffer, about=np.array(json.dumps(about)), names=np.asarray(match.names, dtype=str),
             name_index=match.name_index, separation_arcsec=match.separation_arcsec)
    atomic_write_bytes(path, buffer.getvalue())


def read_crossmatch(session: Any) -> CrossMatch | None:
    """The session's stored cross-match, or None when there is none for its collection.

    A match made before the data source changed, or an unreadable file, is not
    used (it holds no labels: running the cross-match again remakes it).
    """
    path = Path(session.path) / CROSSMATCH_FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            about = json.loads(str(stored["about"]))
            match = CrossMatch(**about, names=stored["names"], name_index=stored["name_index"],
                               separation_arcsec=stored["separation_arcsec"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    collection = session.collection
    if match.collection != collection.fingerprint() or len(match.name_index) != len(collection):
        return None
    return match
