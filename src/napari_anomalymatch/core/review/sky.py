"""Where on the sky an image lies, in words and as a link to a sky viewer.

Positions come from the collection's metadata (``ra``/``dec`` columns of a
catalogue or manifest, the WCS of a FITS cutout's centre, ``ra``/``dec``
arrays beside an HDF5 or Zarr stack) and, failing that, from an IAU-style
name in the image id (``J123456.7+123456``, as FIRST and many surveys name
sources; such a name is truncated, so the position is good to about 0.1″).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from ..config import SKY_VIEWER_NAMES
from ..errors import ConfigError
from ..io.base import ImageCollection

# The viewers a candidate opens in (``SkyConfig.viewer``): each a URL for ``ra``/``dec`` in degrees.
SKY_VIEWERS = {
    "legacy-survey": "https://www.legacysurvey.org/viewer?ra={ra}&dec={dec}&layer=ls-dr10&zoom=16",
    "esasky": "https://sky.esa.int/esasky/?target={ra}%20{dec}&hips=DSS2+color&fov=0.05&cooframe=J2000&sci=true",
    "aladin": "https://aladin.cds.unistra.fr/AladinLite/?target={ra}%20{dec}&fov=0.05&survey=P%2FDSS2%2Fcolor",
}
DEFAULT_SKY_VIEWER = SKY_VIEWER_NAMES[0]
# J + hhmmss(.s) + sign + ddmmss(.s): the name's digits after J, anywhere in the id.
IAU_NAME = re.compile(r"J(\d{2})(\d{2})(\d{2}(?:\.\d+)?)([+-])(\d{2})(\d{2})(\d{2}(?:\.\d+)?)")


@dataclass(frozen=True)
class SkyPosition:
    """An ICRS position in degrees."""

    ra: float
    dec: float

    def degrees(self) -> str:
        """``150.123456, +2.234567``."""
        return f"{self.ra:.6f}, {self.dec:+.6f}"

    def sexagesimal(self) -> str:
        """``10:00:29.63 +02:14:04.4`` (RA in hours)."""
        from astropy.coordinates import Angle

        ra = Angle(self.ra, unit="deg").to_string(unit="hourangle", sep=":", precision=2, pad=True)
        dec = Angle(self.dec, unit="deg").to_string(unit="deg", sep=":", precision=1, pad=True, alwayssign=True)
        return f"{ra} {dec}"

    def describe(self) -> str:
        """One line for the review: ``RA, Dec 150.123456, +2.234567 (10:00:29.63 +02:14:04.4)``."""
        return f"RA, Dec {self.degrees()} ({self.sexagesimal()})"


def position_from_name(name: str) -> SkyPosition | None:
    """The position an IAU-style name (``J123456.7+123456``) in ``name`` gives, or None."""
    found = IAU_NAME.search(name)
    if found is None:
        return None
    hours, minutes, seconds, sign, degrees, arcmin, arcsec = found.groups()
    ra = 15.0 * (int(hours) + int(minutes) / 60 + float(seconds) / 3600)
    dec = int(degrees) + int(arcmin) / 60 + float(arcsec) / 3600
    if ra >= 360.0 or dec > 90.0:
        return None  # digits that only look like a name
    return SkyPosition(ra, -dec if sign == "-" else dec)


def sky_positions(collection: ImageCollection, indices: Sequence[int] | np.ndarray,
                  metadata: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec in degrees of ``indices`` (NaN where neither the metadata nor the id gives one);
    ``metadata``: ``collection.metadata(indices)`` when the caller has read it already."""
    indices = np.asarray(indices, dtype=np.int64)
    meta = metadata if metadata is not None else collection.metadata(indices) if len(indices) else {}
    ra = np.asarray(meta.get("ra", np.full(len(indices), np.nan)), dtype=np.float64)
    dec = np.asarray(meta.get("dec", np.full(len(indices), np.nan)), dtype=np.float64)
    for place in np.flatnonzero(~(np.isfinite(ra) & np.isfinite(dec))):
        named = position_from_name(collection.id_of(int(indices[place])))
        if named is not None:
            ra[place], dec[place] = named.ra, named.dec
    return ra, dec


def sky_position(collection: ImageCollection, index: int) -> SkyPosition | None:
    """Image ``index``'s position, or None when the collection does not say where it lies."""
    ra, dec = sky_positions(collection, [index])
    if not (math.isfinite(ra[0]) and math.isfinite(dec[0])):
        return None
    return SkyPosition(float(ra[0]), float(dec[0]))


def require_position(position: SkyPosition | None, image_id: str) -> SkyPosition:
    """``position``, or a ``ConfigError`` saying that image ``image_id`` has none and where one comes from."""
    if position is None:
        raise ConfigError(f"image {image_id!r} has no sky position: its collection gives no RA/Dec; use a "
                          "catalogue or manifest with ra/dec columns, FITS cutouts with a celestial WCS, or "
                          "ids holding an IAU name such as J123456.7+123456")
    return position


def sky_url(position: SkyPosition, viewer: str = DEFAULT_SKY_VIEWER) -> str:
    """The address of ``position`` in a sky viewer of ``SKY_VIEWERS``.

    Raises
    ------
    ConfigError
        For a viewer that is not one of ``SKY_VIEWERS``.
    """
    if viewer not in SKY_VIEWERS:
        raise ConfigError(f"unknown sky viewer {viewer!r}; use one of {list(SKY_VIEWERS)}")
    return SKY_VIEWERS[viewer].format(ra=f"{position.ra:.6f}", dec=quote(f"{position.dec:+.6f}"))
