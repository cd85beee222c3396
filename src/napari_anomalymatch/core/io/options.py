"""The reader options a person sets, in one table: the settings' flat names (``SessionConfig.with_settings``),
the command line's ``--hdu``/``--dataset``/``--array``/``--ids`` and the Data panel's fields are made from it.

Each option is a keyword of the readers that take it (``registry.Reader.option_names`` says which);
options of different readers that name the same kind of thing share one panel field (the HDF5
dataset and the Zarr array).  A new option is one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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


def parse_patterns(text: str) -> list[str]:
    """'tiles/*_g.fits; tiles/*_r.fits' -> those globs made absolute (a session reopens from anywhere)."""
    return [str(Path(part.strip()).expanduser().absolute()) for part in text.split(";") if part.strip()]


def format_patterns(patterns: Any) -> str:
    return "; ".join(patterns) if isinstance(patterns, (list, tuple)) else str(patterns or "")


def parse_yes_no(text: str) -> bool:
    """'yes'/'no' (also true/false, on/off, 1/0) -> True/False."""
    value = text.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise ValueError(f"expected yes or no; got {text!r}")


def format_yes_no(value: Any) -> str:
    return "" if value is None else ("yes" if value else "no")


@dataclass(frozen=True)
class ReaderOption:
    """One reader option: its keyword, the panel field that fills it, and its text form."""

    name: str  # the readers' keyword, the flat setting name and the command line's --NAME
    field: str  # the Data panel's field that fills it
    label: str  # that field's label
    help: str  # the command line's help; the field's tooltip
    parse: Callable[[str], Any] = str  # text (an argument, a field) -> the option's value
    format: Callable[[Any], str] = str  # the value -> text (a layer's options shown in the panel)
    repeated: bool = False  # given once per value on the command line (--mosaic A --mosaic B), values joined


READER_OPTIONS: tuple[ReaderOption, ...] = (
    ReaderOption("hdu", "hdu", "FITS HDU(s)",
                 "FITS extension(s): index, name, comma-separated list (1,2,3 or G,R,I) or 'all'",
                 parse_hdu, format_hdu),
    ReaderOption("dataset", "array_name", "Dataset / array", "HDF5 dataset of the images (guessed when not given)"),
    ReaderOption("array", "array_name", "Dataset / array", "Zarr array of the images (guessed when not given)"),
    ReaderOption("ids", "ids_name", "Ids dataset",
                 "HDF5 dataset or Zarr array of the image ids beside the images (optional)"),
    ReaderOption("mosaic", "mosaic", "Mosaic tiles (one band each, ';' between)",
                 "FITS tiles of one band of a survey mosaic (a glob such as 'tiles/*_g.fits'); repeat for each "
                 "band; the source is then the catalogue of positions to cut (reader 'mosaic')",
                 parse_patterns, format_patterns, repeated=True),
    ReaderOption("cutout_size", "cutout_size", "Cutout size",
                 "side of each mosaic cutout: pixels (64px) or an angle (12arcsec, 0.2arcmin); default 64px"),
    ReaderOption("channels", "channels", "Bands to channels",
                 "how mosaic bands make the model's channels: band numbers as RGB ('1,2,3', '3,2,1'), one band "
                 "('2'), or 'mean' (grey of all bands); default: the first three bands, or one band as grey"),
    ReaderOption("resample", "resample", "Resample other grids",
                 "resample bands on another pixel grid onto the first band's (yes, the default; needs "
                 "'reproject') or refuse them (no)", parse_yes_no, format_yes_no),
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


def option_texts(options: dict[str, Any]) -> dict[str, str]:
    """The text of each Data panel field for reader ``options`` (a session's saved ones, a layer's): each
    option's ``format``, in the field it fills; '' for a field none of them fills."""
    texts = {}
    for field, field_options in option_fields().items():
        given = [option.format(options[option.name]) for option in field_options
                 if options.get(option.name) is not None]
        texts[field] = given[0] if given else ""
    return texts
