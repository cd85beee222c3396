"""The reader options a person sets, in one table: the settings' flat names (``SessionConfig.with_settings``),
the command line's ``--hdu``/``--dataset``/``--array``/``--ids`` and the Data panel's fields are made from it.

Each option is a keyword of the readers that take it (``registry.Reader.option_names`` says which);
options of different readers that name the same kind of thing share one panel field (the HDF5
dataset and the Zarr array).  A new option is one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def parse_hdu(text: str) -> Any:
    """'1' -> 1, 'SCI' -> 'SCI', '1,2,3' -> [1, 2, 3], 'all' -> 'all'."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    values: list[Any] = [int(p) if p.lstrip("-").isdigit() else p for p in parts]
    return values[0] if len(values) == 1 else values


def format_hdu(hdu: Any) -> str:
    """The inverse of ``parse_hdu``: [1, 2] -> '1,2'; None -> ''."""
    if hdu is None:
        return ""
    return ",".join(str(h) for h in hdu) if isinstance(hdu, (list, tuple)) else str(hdu)


@dataclass(frozen=True)
class ReaderOption:
    """One reader option: its keyword, the panel field that fills it, and its text form."""

    name: str  # the readers' keyword, the flat setting name and the command line's --NAME
    field: str  # the Data panel's field that fills it
    label: str  # that field's label
    help: str  # the command line's help; the field's tooltip
    parse: Callable[[str], Any] = str  # text (an argument, a field) -> the option's value
    format: Callable[[Any], str] = str  # the value -> text (a layer's options shown in the panel)


READER_OPTIONS: tuple[ReaderOption, ...] = (
    ReaderOption("hdu", "hdu", "FITS HDU(s)",
                 "FITS extension(s): index, name, comma-separated list (1,2,3 or G,R,I) or 'all'",
                 parse_hdu, format_hdu),
    ReaderOption("dataset", "array_name", "Dataset / array", "HDF5 dataset of the images (guessed when not given)"),
    ReaderOption("array", "array_name", "Dataset / array", "Zarr array of the images (guessed when not given)"),
    ReaderOption("ids", "ids_name", "Ids dataset",
                 "HDF5 dataset or Zarr array of the image ids beside the images (optional)"),
)


def reader_option_names() -> tuple[str, ...]:
    """The names of the options in ``READER_OPTIONS``."""
    return tuple(option.name for option in READER_OPTIONS)


def option_fields() -> dict[str, tuple[ReaderOption, ...]]:
    """Each Data panel field and the options it can fill, in the table's order."""
    fields: dict[str, tuple[ReaderOption, ...]] = {}
    for option in READER_OPTIONS:
        fields[option.field] = (*fields.get(option.field, ()), option)
    return fields
