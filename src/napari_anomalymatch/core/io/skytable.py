"""Tables of sky positions, read one way: any format astropy reads by its suffix (FITS, ECSV, CSV,
VOTable, Parquet), columns found by any of their names (``columns.COLUMN_NAMES``), coordinates in degrees.

Values are degrees unless the column carries a unit, and sexagesimal text (``10:21:03.5 +12:00:01``)
is read as hours and degrees.  Catalogues of known objects (``review.known``) and the source
catalogues of mosaics (``io.mosaic``) read their tables here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, CorruptFileError, EmptyCollectionError, SourceNotFoundError
from .csvtable import read_text_table

READ_FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits",
                ".fts": "fits", ".xml": "votable", ".vot": "votable", ".votable": "votable",
                ".parquet": "parquet"}


def read_sky_table(path: Path) -> Any:
    """The table in ``path`` (its format chosen by the suffix); every failure names the file."""
    from astropy.table import Table

    suffixes = [s.lower() for s in path.suffixes]
    suffix = suffixes[-2] if suffixes[-1:] == [".gz"] and len(suffixes) > 1 else (suffixes or [""])[-1]
    fmt = READ_FORMATS.get(suffix)
    if fmt is None:
        raise ConfigError(f"{path}: unknown catalogue format {suffix!r}; use one of {sorted(READ_FORMATS)}")
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: no such catalogue file")
    if fmt.startswith("ascii."):
        return read_text_table(path)  # the one CSV reader: byte-order marks, ';' or tab separators
    try:
        table = Table.read(path, format=fmt)
    except Exception as err:  # astropy raises many kinds for a damaged or mis-named file
        raise CorruptFileError(f"{path}: cannot read it as a {fmt} table ({type(err).__name__}: {err})") from err
    if len(table) == 0:
        raise EmptyCollectionError(f"{path}: the catalogue has no rows")
    table.convert_bytestring_to_unicode()  # FITS text columns, which exports write as UTF-8
    return table


def find_column(table: Any, names: tuple[str, ...], path: Path, what: str, required: bool = True) -> str | None:
    """The name of ``table``'s column called any of ``names`` (any case); None, or an error, when none is."""
    lower = {name.lower(): name for name in table.colnames}
    for name in names:
        if name in lower:
            return lower[name]
    if required:
        raise ConfigError(f"{path}: no {what} column; expected one named one of {list(names)} "
                          f"(any case); columns found: {table.colnames}")
    return None


def sky_coordinates(table: Any, ra_name: str, dec_name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec in degrees (NaN where empty), from numbers (with their units) or sexagesimal text."""
    ra_col, dec_col = table[ra_name], table[dec_name]
    if ra_col.dtype.kind in "iuf" and dec_col.dtype.kind in "iuf":
        ra = _degrees(ra_col, "deg", path)
        dec = _degrees(dec_col, "deg", path)
    else:
        ra, dec = _from_text(filled(ra_col, ""), filled(dec_col, ""), ra_name, dec_name, path)
    bad = np.flatnonzero(np.isfinite(dec) & (np.abs(dec) > 90))
    if bad.size:
        raise ConfigError(f"{path}: column {dec_name!r} row {bad[0] + 1} holds {dec[bad[0]]}, not a "
                          "declination (expected -90 to 90 degrees)")
    return ra % 360.0, dec


def _degrees(col: Any, default: str, path: Path) -> np.ndarray:
    import astropy.units as u

    values = np.asarray(filled(col, np.nan), dtype=np.float64)
    unit = col.unit if col.unit is not None else u.Unit(default)
    try:
        return (values * unit).to_value(u.deg)
    except u.UnitConversionError as err:
        raise ConfigError(f"{path}: column {col.name!r} has unit {unit}, not an angle") from err


def _from_text(ra_text: np.ndarray, dec_text: np.ndarray, ra_name: str, dec_name: str,
               path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decimal degrees written as text, or sexagesimal RA (hours) and Dec (degrees)."""
    from astropy.coordinates import SkyCoord

    ra, dec = np.full(len(ra_text), np.nan), np.full(len(ra_text), np.nan)
    for i, (r, d) in enumerate(zip(ra_text, dec_text, strict=True)):
        r, d = str(r).strip(), str(d).strip()
        if not r and not d:
            continue  # an empty row: no position
        try:
            ra[i], dec[i] = float(r), float(d)
            continue
        except ValueError:
            pass
        try:
            coord = SkyCoord(r, d, unit=("hourangle", "deg"))
        except (ValueError, TypeError) as err:
            raise ConfigError(
                f"{path}: row {i + 1} has RA {r!r} ({ra_name!r}) and Dec {d!r} ({dec_name!r}), which are "
                "not coordinates; expected degrees (150.1, 2.2) or sexagesimal (10:00:24 +02:12:00)"
            ) from err
        ra[i], dec[i] = coord.ra.deg, coord.dec.deg
    return ra, dec


def filled(col: Any, fill: Any) -> np.ndarray:
    """A column's values with masked entries replaced by ``fill``; text as ``str`` (FITS gives bytes)."""
    mask = np.ma.getmaskarray(col)
    values = np.asarray(col)
    if isinstance(fill, str):
        values = values.astype(str)  # numpy decodes bytes here; str(b"x") would give "b'x'"
    elif mask.any():
        values = values.astype(np.float64)  # an integer column cannot hold NaN
    if mask.any():
        values = values.copy()
        values[mask] = fill
    return values
