"""Reading every CSV and ECSV file the project is given, one way.

Spreadsheet programs save CSV in ways astropy's reader does not expect: a
UTF-8 byte-order mark before the header (Excel's "CSV UTF-8"), semicolons
or tabs between fields with decimal commas (European locales), Windows line
endings.  ``read_text_table`` takes all of them: the text is decoded as
UTF-8 with the mark dropped, the separator is taken from the header line,
the rows are parsed with Python's ``csv`` module (quotes and empty fields as
spreadsheets write them) and handed to astropy as plain comma-separated
lines, so column types are inferred as before.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
from pathlib import Path
from typing import Any

from ..errors import CorruptFileError, EmptyCollectionError, SourceNotFoundError

SEPARATORS = (",", ";", "\t")
ECSV_SUFFIX = ".ecsv"
# A number written with a decimal comma, as semicolon-separated files from European locales hold.
DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")


def read_text(path: Path) -> str:
    """The file's text, decoded as UTF-8 without a byte-order mark (``.gz`` files unpacked).

    Raises
    ------
    SourceNotFoundError
        No such file.
    CorruptFileError
        The bytes are not UTF-8, naming the file, the byte and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: no such table file")
    raw = gzip.decompress(path.read_bytes()) if path.suffix.lower() == ".gz" else path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CorruptFileError(
            f"{path}: byte {err.start} ({raw[err.start:err.start + 1]!r}) is not UTF-8 text; "
            "save the file as 'CSV UTF-8' (or convert it: iconv -f latin1 -t utf-8)"
        ) from None


def separator_of(header: str) -> str:
    """The field separator of a CSV header line: the most frequent of ``,`` ``;`` tab (``,`` if none)."""
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def csv_rows(text: str, limit: int | None = None) -> list[list[str]]:
    """The first ``limit`` (all) rows of CSV ``text``, header first, with any separator of
    ``SEPARATORS`` and any line ending; blank lines and ``#`` comments are dropped."""
    lines = io.StringIO(text, newline="")
    header = next((line for line in lines if line.strip() and not line.startswith("#")), "")
    separator = separator_of(header)
    lines.seek(0)
    filled = (row for row in csv.reader(lines, delimiter=separator)
              if any(field.strip() for field in row) and not row[0].startswith("#"))
    rows = list(itertools.islice(filled, limit))
    if rows:
        rows[0] = [name.strip() for name in rows[0]]
    if separator == ";":
        _dot_decimals(rows)
    return rows


def read_text_table(path: Path) -> Any:
    """Read a CSV or ECSV file (suffix ``.ecsv``, possibly ``.gz``) into an astropy ``Table``.

    Raises
    ------
    SourceNotFoundError, CorruptFileError, EmptyCollectionError
        Each naming the file.
    """
    from astropy.table import Table

    path = Path(path)
    text = read_text(path)
    ecsv = ECSV_SUFFIX in [s.lower() for s in path.suffixes]
    kind = "ECSV" if ecsv else "CSV"
    if not text.strip():
        raise EmptyCollectionError(f"{path}: the file is empty; expected a header line and rows")
    try:
        if ecsv:
            table = Table.read(text.splitlines(), format="ascii.ecsv")
        else:
            table = Table.read(_comma_text(csv_rows(text)), format="ascii.csv")
    except Exception as err:  # astropy raises many kinds for a damaged or mis-named file
        raise CorruptFileError(f"{path}: cannot read it as a {kind} table ({type(err).__name__}: {err})") from err
    if len(table) == 0:
        raise EmptyCollectionError(f"{path}: the table has no rows")
    return table


def _comma_text(rows: list[list[str]]) -> str:
    """``rows`` as comma-separated text, short rows padded to the header's width."""
    buffer = io.StringIO()
    width = len(rows[0]) if rows else 0
    csv.writer(buffer, lineterminator="\n").writerows(row + [""] * (width - len(row)) for row in rows)
    return buffer.getvalue()


def _dot_decimals(rows: list[list[str]]) -> None:
    """In place: columns of decimal-comma numbers (and integers) get decimal points."""
    width = max(len(row) for row in rows) if rows else 0
    for col in range(width):
        cells = [row[col].strip() for row in rows[1:] if col < len(row) and row[col].strip()]
        commas = sum(bool(DECIMAL_COMMA.match(cell)) for cell in cells)
        if commas and all(DECIMAL_COMMA.match(cell) or INTEGER.match(cell) for cell in cells):
            for row in rows[1:]:
                if col < len(row):
                    row[col] = row[col].replace(",", ".")
