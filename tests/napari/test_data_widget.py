"""The Data panel: bad input is a notification (never a traceback); good input opens a session."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_anomalymatch.core.config import SessionConfig
from napari_anomalymatch.core.io.autocrop import choose_crop
from napari_anomalymatch.core.io.options import option_fields
from napari_anomalymatch.core.labels import ANOMALY, NORMAL
from napari_anomalymatch.core.review.tiles import frame_width

from .conftest import notifications_during, tiny_config


def click(button) -> list[str]:
    return notifications_during(lambda: button.clicked.emit())


@pytest.fixture
def panel(widget):
    widget.controller.defaults = tiny_config(crop="auto")  # the default: chosen from the images
    return widget.data_panel


@pytest.mark.parametrize(("fill", "expected"), [
    ({}, "choose a session folder"),
    ({"session_dir": "{tmp}/new"}, "not a session folder yet; choose a data source"),
    ({"session_dir": "{tmp}/new", "source": "{tmp}/nowhere.h5"}, "nowhere.h5: no such file"),
    ({"session_dir": "{tmp}/new", "source": "{tmp}/notes.txt"}, "no reader for this kind of file"),
    ({"session_dir": "{tmp}/new", "source": "{tmp}/stack.h5", "array_name": "imgs"},
     "no HDF5 dataset 'imgs'; found ['images']"),
    ({"session_dir": "{tmp}/new", "source": "{blobs}", "array_name": "imgs"},
     "Dataset / array 'imgs' does not apply to the folder reader"),
    ({"session_dir": "{tmp}/new", "source": "{tmp}/cube.fits", "array_name": "images", "ids_name": "ids"},
     "Dataset / array 'images' does not apply to the fits reader"),
    ({"session_dir": "{tmp}/new", "source": "{blobs}", "low": 99.9}, "must be below high_percentile"),
])
def test_bad_input_gives_a_notification_and_no_session(tmp_path, panel, widget, blobs, fill, expected):
    (tmp_path / "notes.txt").write_text("hello")
    with h5py.File(tmp_path / "stack.h5", "w") as handle:
        handle["images"] = np.zeros((3, 8, 8), np.uint8)
    write_sources(tmp_path)
    for name, value in fill.items():
        widget_ = getattr(panel, name)
        text = value.format(tmp=tmp_path, blobs=blobs[0]) if isinstance(value, str) else value
        if hasattr(widget_, "line_edit"):
            widget_.line_edit.value = text
        else:
            widget_.value = text
    messages = click(panel.load_button)
    assert len(messages) == 1 and expected in messages[0], messages
    assert widget.controller.session is None
    assert not (tmp_path / "new").exists()  # nothing written: the corrected input can be tried again


def test_load_import_and_normalisation(tmp_path, panel, widget, blobs):
    folder, truth = blobs
    panel.session_dir.line_edit.value = str(tmp_path / "session")
    panel.source.line_edit.value = str(folder)
    assert panel.crop.native.text() == "auto" and panel.normalisation_config().crop == "auto"
    assert click(panel.load_button) == []
    controller = widget.controller
    assert controller.session is not None and len(controller.queue) == 16
    assert "16 images of 32x32x1" in panel.status.value
    chosen = controller.session.config.data.normalisation.crop  # the blobs lie in the middle
    assert chosen == choose_crop(controller.session.collection) < 1 and panel.crop.value == chosen

    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nghost.png,anomaly\n")
    panel.labels_file.line_edit.value = str(bad)
    messages = click(panel.import_button)
    assert len(messages) == 1 and "ghost.png" in messages[0] and "bad.csv, row 2" in messages[0]
    good = tmp_path / "good.csv"
    with open(good, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "label"], ["img_000.png", "anomaly"], ["img_001.png", "normal"]])
    panel.labels_file.line_edit.value = str(good)
    assert click(panel.import_button) == []
    assert controller.session.labels.current() == {"img_000.png": ANOMALY, "img_001.png": NORMAL}
    assert len(controller.queue) == 14  # the unlabelled ones

    shown = controller.candidate_layer.data.copy()
    panel.normalisation.value = "zscale"  # a live preview: the candidate changes, the session does not
    assert not np.array_equal(controller.candidate_layer.data, shown)
    assert controller.session.config.data.normalisation.method == "auto"
    assert click(panel.apply_normalisation) == []
    assert SessionConfig.from_toml(tmp_path / "session" / "session.toml").data.normalisation.method == "zscale"

    panel.crop.value = 1.0
    whole = controller.candidate_layer.data.shape[:2]
    panel.crop.value = 0.5  # the preview shows the middle half of the 32 px images, framed
    assert whole == (32 + 2 * frame_width(32),) * 2
    assert controller.candidate_layer.data.shape[:2] == (16 + 2 * frame_width(16),) * 2
    assert click(panel.apply_normalisation) == []
    saved = SessionConfig.from_toml(tmp_path / "session" / "session.toml").data.normalisation
    assert (saved.method, saved.crop) == ("zscale", 0.5)


def test_a_layer_becomes_a_source(tmp_path, viewer, panel, widget):
    stack = np.random.default_rng(0).integers(0, 255, (12, 20, 20), dtype=np.uint8)
    viewer.add_image(stack, name="cutouts", metadata={"ids": [f"obj{i}" for i in range(12)]})
    panel.session_dir.line_edit.value = str(tmp_path / "from-layer")
    assert click(panel.from_layer) == []
    assert panel.source.line_edit.value.endswith("layer-images.h5") and panel.reader.value == "hdf5"
    assert click(panel.load_button) == []
    collection = widget.controller.session.collection
    assert len(collection) == 12 and collection.id_of(3) == "obj3"
    np.testing.assert_array_equal(collection.read_one(5)[..., 0], stack[5])
    viewer.add_image(np.zeros((5, 5)), name="flat")
    messages = click(panel.from_layer)
    assert len(messages) == 1 and "expected a stack of images" in messages[0]


def test_the_readme_order_works_a_layer_first_then_the_session(tmp_path, viewer, panel, widget, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    stack = np.random.default_rng(1).integers(0, 255, (6, 20, 20), dtype=np.uint8)
    viewer.add_image(stack, name="FIRST radio galaxies")
    infos = notifications_during(lambda: click(panel.from_layer), severity="info")
    proposed = tmp_path / "home" / "anomalymatch-sessions" / "FIRST-radio-galaxies"
    assert panel.session_dir.line_edit.value == str(proposed) and str(proposed) in infos[0]
    assert click(panel.load_button) == []
    assert widget.controller.session.path == proposed and len(widget.controller.session.collection) == 6


def write_sources(folder) -> dict[str, str]:
    """One small source per reader: reader name -> path."""
    import zarr
    from astropy.io import fits

    from ..conftest import write_pngs

    images = np.random.default_rng(0).integers(0, 255, (6, 16, 16), dtype=np.uint8)
    fits.PrimaryHDU(images.astype(np.float32)).writeto(folder / "cube.fits", overwrite=True)
    with h5py.File(folder / "cube.h5", "w") as handle:
        handle["images"] = images
        handle["ids"] = [f"h{i}".encode() for i in range(6)]
    store = zarr.open_group(str(folder / "cube.zarr"), mode="w", zarr_format=2)
    store.create_array("images", data=images)
    store.create_array("ids", data=np.array([f"z{i}" for i in range(6)]))
    write_pngs(folder / "pngs", images)
    return {"fits": str(folder / "cube.fits"), "hdf5": str(folder / "cube.h5"),
            "zarr": str(folder / "cube.zarr"), "folder": str(folder / "pngs")}


@pytest.mark.parametrize("reader", ["fits", "hdf5", "zarr", "folder"])
def test_each_reader_with_the_other_readers_fields_filled(tmp_path, panel, widget, reader):
    """Choosing a reader clears the fields it does not take; with 'auto' a filled one is named."""
    sources = write_sources(tmp_path)
    fields = {"hdu": "1", "array_name": "images", "ids_name": "ids"}
    takes = {"fits": {"hdu"}, "hdf5": {"array_name", "ids_name"}, "zarr": {"array_name", "ids_name"},
             "folder": {"hdu"}}[reader]
    if reader == "fits":
        fields["hdu"] = "0"
    panel.session_dir.line_edit.value = str(tmp_path / "auto")
    panel.source.line_edit.value = sources[reader]
    for name, value in fields.items():
        getattr(panel, name).value = value
    assert {name for name in fields if getattr(panel, name).enabled} == takes  # the others are greyed
    messages = click(panel.load_button)  # 'auto' with the other readers' fields filled: refused, named
    assert len(messages) == 1 and "does not apply to the" in messages[0] and reader in messages[0]
    assert widget.controller.session is None

    panel.reader.value = reader  # a chosen reader clears the others' fields
    assert {name for name in fields if getattr(panel, name).value} == takes
    panel.session_dir.line_edit.value = str(tmp_path / "chosen")
    assert click(panel.load_button) == []
    assert len(widget.controller.session.collection) == 6


def test_the_engine_names_an_option_a_reader_does_not_take(tmp_path):
    from napari_anomalymatch.core.errors import ConfigError
    from napari_anomalymatch.core.io import open_collection

    sources = write_sources(tmp_path)
    with pytest.raises(ConfigError, match=r"the fits reader takes no option\(s\) \['dataset'\]; it takes \['hdu'\]"):
        open_collection(sources["fits"], dataset="images")


def test_exports_of_the_first_sample_carry_its_ra_and_dec(tmp_path, viewer, panel, widget):
    from astropy.table import Table

    from napari_anomalymatch._napari.sample_data import first_radio_galaxies
    from napari_anomalymatch.core.scoring.store import ScoreManifest, ScoreStore

    pytest.importorskip("firstgalaxydata")
    (data, meta, _), = first_radio_galaxies()
    viewer.add_image(data[:40], name=meta["name"],
                     metadata={name: meta["metadata"][name][:40] for name in ("ids", "ra", "dec")})
    panel.session_dir.line_edit.value = str(tmp_path / "first")
    assert click(panel.from_layer) == [] and click(panel.load_button) == []
    session = widget.controller.session
    n = len(session.collection)
    manifest = ScoreManifest(session.collection.fingerprint(), n, "test", 1, n, "test")
    store = ScoreStore(session.runs.directory(1), manifest)
    store.write_part(0, np.linspace(0, 1, n, dtype=np.float32))
    store.consolidate()
    store.mark_complete({})  # only complete runs are exported
    table = Table.read(widget.controller.export(tmp_path / "ranking.ecsv"))
    by_id = {row["id"]: (row["ra"], row["dec"]) for row in table}
    first_id = meta["metadata"]["ids"][0]
    expected = (meta["metadata"]["ra"][0], meta["metadata"]["dec"][0])
    np.testing.assert_allclose(by_id[first_id], expected)
    assert str(table["ra"].unit) == "deg"


def test_the_reader_fields_are_made_from_the_options_table(panel):
    fields = option_fields()
    assert list(panel.option_fields) == list(fields)
    for field, options in fields.items():
        widget = panel.option_fields[field]
        assert getattr(panel, field) is widget
        assert widget.label == options[0].label
        assert all(option.help in widget.tooltip for option in options)


def test_a_session_whose_data_moved_is_pointed_at_it_again_from_the_panel(tmp_path, panel, widget, blobs):
    import shutil

    folder, _ = blobs
    data = tmp_path / "data"
    shutil.copytree(folder, data)
    panel.session_dir.line_edit.value = str(tmp_path / "session")
    panel.source.line_edit.value = str(data)
    assert click(panel.load_button) == []
    widget.controller.label("a")  # a person's label, which the move must not cost
    widget.controller.close_session()
    moved = data.rename(tmp_path / "moved")
    panel.source.line_edit.value = str(tmp_path / "elsewhere")
    assert "no such file" in " ".join(click(panel.relocate_button))  # a wrong folder: named, nothing changed
    panel.source.line_edit.value = str(moved)
    assert click(panel.relocate_button) == []
    session = widget.controller.session
    assert session.config.data.source == str(moved) and len(session.collection) == 16
    assert "now reads 16 images" in panel.status.value and session.labels.counts()["anomaly"] == 1


def test_the_mosaic_fields_fill_the_mosaic_readers_options(panel, tmp_path):
    panel.reader.value = "mosaic"
    panel.source.line_edit.value = str(tmp_path / "sources.fits")
    panel.mosaic.value = "tiles/*_g.fits; tiles/*_r.fits"
    panel.cutout_size.value = "12arcsec"
    panel.resample.value = "no"
    assert panel.options() == {"mosaic": [str((Path("tiles") / "*_g.fits").absolute()),
                                          str((Path("tiles") / "*_r.fits").absolute())],
                               "cutout_size": "12arcsec", "resample": False}
