"""Catalogues of known objects: names and sky positions read from a table the user gives.

Any table astropy reads by its suffix (FITS, ECSV, CSV, VOTable, Parquet).
The coordinate columns are found case-insensitively among common spellings
(``ra``/``dec``, ``RAJ2000``/``DEJ2000``, ``ra_deg``/``dec_deg`` ...); values
are degrees unless the column carries a unit, and sexagesimal text
(``10:21:03.5 +12:00:01``) is read as hours and degrees.  The name comes from
``name``, ``id``, ``main_id``, ``objid`` or ``source_id``, or is the row number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EmptyCollectionError
from ..io.columns import COLUMN_NAMES
from ..io.skytable import filled, find_column, read_sky_table, sky_coordinates


@dataclass(frozen=True)
class KnownCatalogue:
    """The usable rows of a catalogue: names and ICRS degrees (rows without a position are left out)."""

    path: str
    names: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    ra_column: str
    dec_column: str
    name_column: str | None  # None: the names are row numbers
    n_rows: int  # rows in the file, with those left out

    def __len__(self) -> int:
        return len(self.names)


def read_known_catalogue(path: str | Path) -> KnownCatalogue:
    """Read a catalogue of known objects.

    Raises
    ------
    SourceNotFoundError
        No such file.
    CorruptFileError
        The file cannot be read as the table its suffix names.
    ConfigError
        No RA or Dec column, values that are not coordinates, or an unknown suffix.
    EmptyCollectionError
        The catalogue has no row with a position.
    """
    path = Path(path)
    table = read_sky_table(path)
    ra_name = find_column(table, COLUMN_NAMES["ra"], path, "RA")
    dec_name = find_column(table, COLUMN_NAMES["dec"], path, "Dec")
    name_column = find_column(table, COLUMN_NAMES["object"], path, "name", required=False)
    ra, dec = sky_coordinates(table, ra_name, dec_name, path)
    if name_column is not None:
        names = filled(table[name_column], "")
    else:
        names = np.array([f"row {i + 1}" for i in range(len(table))], dtype=str)
    usable = np.isfinite(ra) & np.isfinite(dec)
    if not usable.any():
        raise EmptyCollectionError(f"{path}: no row has a position in {ra_name!r}/{dec_name!r}")
    return KnownCatalogue(str(path), names[usable], ra[usable], dec[usable], ra_name, dec_name,
                          name_column, len(table))
