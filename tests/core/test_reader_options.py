"""The reader options' one table: settings, command line arguments and their text form come from it."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_anomalymatch.cli import build_parser, main
from napari_anomalymatch.core.config import SessionConfig, setting_names
from napari_anomalymatch.core.io.options import (
    READER_OPTIONS,
    format_hdu,
    option_fields,
    option_texts,
    parse_hdu,
    reader_option_names,
)
from napari_anomalymatch.core.io.registry import READERS, reader_named
from napari_anomalymatch.core.session import Session


@pytest.mark.parametrize(("text", "value"), [
    ("1", 1), ("SCI", "SCI"), ("1,2,3", [1, 2, 3]), ("G, R,I", ["G", "R", "I"]), ("all", "all"), ("-1", -1),
])
def test_hdu_text_and_back(text, value):
    assert parse_hdu(text) == value
    assert parse_hdu(format_hdu(value)) == value
    assert format_hdu(None) == ""


@pytest.mark.parametrize("option", READER_OPTIONS, ids=lambda option: option.name)
def test_every_option_is_taken_by_a_reader_and_is_a_setting(option):
    assert any(option.name in (reader.option_names() or ()) for reader in READERS)
    assert option.name in setting_names()
    value = option.parse("1")
    assert SessionConfig().with_settings(**{option.name: value}).data.options == {option.name: value}


def test_the_panel_fields_group_the_options_of_one_kind():
    fields = option_fields()
    assert {field: [option.name for option in options] for field, options in fields.items()} == {
        "hdu": ["hdu"], "array_name": ["dataset", "array"], "ids_name": ["ids"], "mosaic": ["mosaic"],
        "cutout_size": ["cutout_size"], "channels": ["channels"], "resample": ["resample"]}
    assert [option.name for options in fields.values() for option in options] == list(reader_option_names())


def test_the_command_line_takes_every_option():
    given = [arg for option in READER_OPTIONS if option.name != "resample"
             for arg in (f"--{option.name.replace('_', '-')}", "2,3")]
    args = build_parser().parse_args(["init", "s", "source.h5", *given, "--mosaic", "b/*.fits", "--resample", "no"])
    assert {option.name: getattr(args, option.name) for option in READER_OPTIONS} == {
        "hdu": [2, 3], "dataset": "2,3", "array": "2,3", "ids": "2,3", "cutout_size": "2,3", "channels": "2,3",
        "mosaic": [str(Path("2,3").absolute()), str(Path("b/*.fits").absolute())], "resample": False}


def test_init_reads_the_ids_named_on_the_command_line(tmp_path):
    source = tmp_path / "stack.h5"
    with h5py.File(source, "w") as handle:
        handle["images"] = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
        handle["names"] = np.array([b"m31", b"m33", b"m51", b"m101"])
    assert main(["init", str(tmp_path / "s"), str(source), "--dataset", "images", "--ids", "names",
                 "--crop", "1"]) == 0
    with Session.open(tmp_path / "s") as session:
        assert session.config.data.options == {"dataset": "images", "ids": "names"}
        assert session.collection.ids() == ["m31", "m33", "m51", "m101"]


def test_saved_options_give_each_panel_field_its_text():
    saved = {"mosaic": ["/t/a_g.fits", "/t/a_r.fits"], "cutout_size": "12arcsec", "resample": False, "array": "x"}
    texts = option_texts(saved)
    assert texts == {"hdu": "", "array_name": "x", "ids_name": "", "mosaic": "/t/a_g.fits; /t/a_r.fits",
                     "cutout_size": "12arcsec", "channels": "", "resample": "no"}
    assert set(texts) == set(option_fields())
    assert reader_named("auto", saved) == "mosaic" and reader_named("auto", {}) == "auto"
    assert reader_named("fits", saved) == "fits"  # a reader named is kept
