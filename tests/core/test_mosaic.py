"""Mosaic sources: cutouts of catalogue positions from FITS tiles, on real and written mosaics."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from napari_anomalymatch.core.errors import (
    ConfigError,
    DuplicateIdError,
    EmptyCollectionError,
    SessionError,
    SourceNotFoundError,
)
from napari_anomalymatch.core.io import open_collection
from napari_anomalymatch.core.io.cutting import cutout_grid
from napari_anomalymatch.core.io.detect import DetectConfig, detect_events, saved_detection
from napari_anomalymatch.core.io.mosaic import MosaicCollection, MosaicWarning, open_mosaic
from napari_anomalymatch.core.io.mosaicsettings import channel_recipe, cutout_pixels
from napari_anomalymatch.core.runs import run_to_end

from .mosaics import (
    TILE,
    coded_pixels,
    linear_band,
    positions,
    tile_wcs,
    write_catalogue,
    write_tile,
    write_two_band_mosaic,
)

SIZE = 16


def centre_offsets_px(collection, catalogue_ra, catalogue_dec, scale_arcsec):
    """How far (pixels) each cutout's centre pixel lies from its catalogue position, by its Cutout2D WCS."""
    from astropy.coordinates import angular_separation

    offsets = []
    centre = (collection.size - 1) / 2
    for index in range(len(collection)):
        ra, dec = collection.cutout_wcs(index).pixel_to_world_values(centre, centre)
        separation = angular_separation(*np.radians([ra, dec, catalogue_ra[index], catalogue_dec[index]]))
        offsets.append(np.degrees(separation) * 3600 / scale_arcsec)
    return np.array(offsets)


@pytest.fixture
def mosaic(tmp_path):
    """Two bands of two tiles; sources inside tile 0, inside tile 1, on tile 0's left edge, in no tile."""
    bands = write_two_band_mosaic(tmp_path / "tiles")
    pixel_positions = [(20.3, 30.0, 0), (50.0, 25.6, 1), (2.0, 40.0, 0)]
    ra, dec = positions(pixel_positions)
    ra, dec = np.append(ra, 10.0), np.append(dec, -40.0)  # far from every tile
    catalogue = write_catalogue(tmp_path / "cat.csv", ra, dec, ids=["inner", "right", "edge", "lost"],
                                extra={"size": [1.5, 2.0, 0.5, 3.0]})
    return bands, catalogue, pixel_positions


def test_cutouts_come_from_the_tile_holding_each_position(mosaic):
    bands, catalogue, pixel_positions = mosaic
    with pytest.warns(MosaicWarning, match="1 of 4 positions are left out.*'lost'"):
        collection = open_collection(str(catalogue), mosaic=bands, cutout_size=f"{SIZE}px", channels="1,2,2")
    assert isinstance(collection, MosaicCollection)
    assert collection.ids() == ["inner", "right", "edge"]
    assert collection.outside[0][0] == "lost" and "in no tile of band(s) [1, 2]" in collection.outside[0][3]
    batch = collection.read(np.arange(3), check=False)
    assert batch.shape == (3, SIZE, SIZE, 3)
    for image, (x, y, tile) in zip(batch, pixel_positions):
        code = image[SIZE // 2, SIZE // 2, 0]  # band 1 * 1e6 + tile * 1e5 + y * 100 + x
        assert int(code // 1e5) == 10 + tile
        assert abs(code % 100 - x) <= 1 and abs((code % 1e5) // 100 - y) <= 1
        assert np.all(image[..., 1][np.isfinite(image[..., 1])] // 1e6 == 2)  # channel 2 is band 2
        np.testing.assert_array_equal(image[..., 1], image[..., 2])
    meta = collection.metadata([0, 1, 2])
    assert meta["padded"].tolist() == [False, False, True]
    assert meta["size"].tolist() == [1.5, 2.0, 0.5]
    assert meta["tile"][1].endswith("t1_g.fits")
    edge = batch[2, ..., 0]
    assert np.isnan(edge[:, :5]).all() and np.isfinite(edge[:, 6:]).all()  # padded beyond x = -0.5


def test_each_cutout_centre_maps_back_to_its_position_and_matches_cutout2d(mosaic):
    from astropy.nddata import Cutout2D

    bands, catalogue, pixel_positions = mosaic
    with pytest.warns(MosaicWarning):
        collection = open_mosaic(catalogue, bands[:1], cutout_size=SIZE)
    meta = collection.metadata(np.arange(len(collection)))
    assert centre_offsets_px(collection, meta["ra"], meta["dec"], 0.2).max() < 1.0
    batch = collection.read(np.arange(len(collection)), check=False)
    for image, x, y, (_, _, tile) in zip(batch, meta["x"], meta["y"], pixel_positions):
        reference = Cutout2D(coded_pixels(1, tile), (x, y), SIZE, mode="partial", fill_value=np.nan).data
        np.testing.assert_array_equal(image[..., 0], reference)


def test_a_band_on_another_grid_is_resampled_onto_the_first_bands(mosaic, tmp_path):
    bands, catalogue, _ = mosaic
    wide, wide_wcs = linear_band(tmp_path / "tiles")
    with pytest.warns(MosaicWarning):
        collection = open_mosaic(catalogue, [*bands, wide], cutout_size=SIZE, channels="3,2,1")
    image = collection.read([0])[0]
    assert np.all(image[..., 2] // 1e6 == 1) and np.all(image[..., 1] // 1e6 == 2)  # channel order 3,2,1
    grid = collection.cutout_wcs(0)
    for row, col in [(3, 4), (8, 8), (12, 2)]:
        x, y = wide_wcs.world_to_pixel_values(*grid.pixel_to_world_values(col, row))
        assert image[row, col, 0] == pytest.approx(x + 1000 * y, abs=0.05)  # bilinear on a linear field


def test_another_grid_is_refused_when_resampling_is_off(mosaic, tmp_path):
    bands, catalogue, _ = mosaic
    wide, _ = linear_band(tmp_path / "tiles")
    with pytest.warns(MosaicWarning), pytest.raises(ConfigError, match=r"wide_i.fits \(band 3, 200x120 px\) lies "
                                                                      r"on another pixel grid.*resample=yes"):
        open_mosaic(catalogue, [*bands, wide], cutout_size=SIZE, resample=False)


@pytest.mark.parametrize(("header", "expected"), [
    ({}, "has no WCS.*calibrated"),
    ({"CTYPE1": "LINEAR", "CTYPE2": "LINEAR"}, r"no celestial axes \(CTYPE \['LINEAR', 'LINEAR'\]\).*RA---TAN"),
])
def test_a_tile_without_a_celestial_wcs_is_named(tmp_path, header, expected):
    path = tmp_path / "bare.fits"
    fits.PrimaryHDU(np.zeros(TILE, np.float32), header=fits.Header(header)).writeto(path)
    catalogue = write_catalogue(tmp_path / "cat.csv", np.array([150.0]), np.array([2.0]))
    with pytest.raises(ConfigError, match=f"bare.fits: HDU 0.*{expected}"):
        open_mosaic(catalogue, [str(path)])


def test_bad_catalogues_and_settings_are_named(mosaic, tmp_path):
    bands, catalogue, _ = mosaic
    no_position = tmp_path / "names.csv"
    no_position.write_text("id,flux\na,1\n")
    with pytest.raises(ConfigError, match=r"names.csv: no RA column.*columns found: \['id', 'flux'\]"):
        open_mosaic(no_position, bands)
    twice = write_catalogue(tmp_path / "twice.csv", *positions([(5, 5, 0), (6, 6, 0)]), ids=["a", "a"])
    with pytest.raises(DuplicateIdError, match="twice.csv: ids in column 'id' repeat"):
        open_mosaic(twice, bands)
    far = write_catalogue(tmp_path / "far.csv", np.array([10.0]), np.array([-40.0]))
    with pytest.warns(MosaicWarning), pytest.raises(EmptyCollectionError, match="far.csv: none of its 1 positions"):
        open_mosaic(far, bands)
    with pytest.raises(SourceNotFoundError, match=r"nothing_\*.fits: no FITS tile matches for band 1"):
        open_mosaic(catalogue, [str(tmp_path / "nothing_*.fits")])
    with pytest.raises(ConfigError, match="'9' is not a band; expected band numbers 1..2"):
        channel_recipe("1,9,2", 2)
    with pytest.raises(ConfigError, match="makes 2 channels; the models take 1"):
        channel_recipe("1,2", 2)
    assert channel_recipe("", 1) == [0] and channel_recipe("", 2) == [0, "mean", 1]
    assert cutout_pixels("12arcsec", 0.2, "c") == 60 and cutout_pixels("0.2 arcmin", 0.2, "c") == 60
    with pytest.raises(ConfigError, match="c: cutout size 'big' is neither pixels nor an angle"):
        cutout_pixels("big", 0.2, "c")


def test_cut_chunks_are_kept_and_read_again_without_cutting(mosaic, tmp_path, monkeypatch):
    bands, catalogue, _ = mosaic
    with pytest.warns(MosaicWarning):
        collection = open_mosaic(catalogue, bands, cutout_size=SIZE, cache=str(tmp_path / "cutouts"))
    first = collection.read(np.arange(3), check=False)
    assert len(list((tmp_path / "cutouts").rglob("chunk-*.npy"))) == 1
    with pytest.warns(MosaicWarning):
        again = open_mosaic(catalogue, bands, cutout_size=SIZE, cache=str(tmp_path / "cutouts"))

    def refuse(*_):
        raise AssertionError("cut again")

    monkeypatch.setattr(MosaicCollection, "_cut", refuse)
    np.testing.assert_array_equal(again.read([2, 0], check=False), first[[2, 0]])
    clone = pickle.loads(pickle.dumps(again))  # loader workers and Dask get it without open files
    np.testing.assert_array_equal(clone.read([1], check=False), first[[1]])


def test_a_pickled_mosaic_is_its_files_and_settings_and_refuses_changed_files(mosaic, tmp_path):
    bands, catalogue, _ = mosaic
    pixels = [(10.0 + (k % 60), 8.0 + (k // 60) % 44, k % 2) for k in range(3000)]
    wide = write_catalogue(tmp_path / "wide.csv", *positions(pixels))
    with pytest.warns(MosaicWarning):
        small = open_mosaic(catalogue, bands, cutout_size=SIZE, channels="mean", cache=str(tmp_path / "cutouts"))
    large = open_mosaic(wide, bands, cutout_size=SIZE, channels="mean", cache=str(tmp_path / "cutouts"))
    sent = pickle.dumps(large)
    assert len(large) == 3000 and len(sent) < len(pickle.dumps(small)) + 100  # no catalogue-sized array in it
    clone = pickle.loads(sent)
    assert clone.ids() == large.ids() and clone.cache.folder == large.cache.folder
    np.testing.assert_array_equal(clone.read([5, 2999]), large.read([5, 2999]))
    assert copy.copy(large).sources is large.sources  # the review's own handle shares the arrays

    write_catalogue(wide, *positions(pixels[:-1]))  # one row fewer: every later index would shift
    with pytest.raises(SessionError, match=r"wide.csv: the catalogue or a tile .* changed since"):
        pickle.loads(sent)


def test_real_m13_stars_detected_cut_and_centred(m13_dir, tmp_path):
    events = detect_events(str(m13_dir / "m13.fits"), tmp_path / "found.ecsv", DetectConfig(threshold=5))
    progress = next(events)  # one tile searched, before anything is written
    assert (progress.tile, progress.n_tiles, progress.path) == (1, 1, m13_dir / "m13.fits") and progress.found > 50
    assert not (tmp_path / "found.ecsv").exists()
    catalogue = run_to_end(events)
    assert saved_detection(catalogue) == DetectConfig(threshold=5)  # the settings, from the header alone
    assert saved_detection(tmp_path / "missing.ecsv") is None
    Table({"ra": [250.4], "dec": [36.4]}).write(tmp_path / "given.ecsv")
    assert saved_detection(tmp_path / "given.ecsv") is None  # a catalogue given, not detected
    plain = open_mosaic(catalogue, [str(m13_dir / "m13.fits")], cutout_size="15px")
    assert len(plain) > 50 and not plain.outside
    meta = plain.metadata(np.arange(len(plain)))
    scale = plain.bands[0][0].pixel_scale_arcsec()
    assert centre_offsets_px(plain, meta["ra"], meta["dec"], scale).max() < 1.0
    batch = plain.read(np.arange(len(plain)), check=False)
    inner = ~meta["padded"]
    peaks = np.array([np.unravel_index(np.nanargmax(image[5:10, 5:10, 0]), (5, 5)) for image in batch[inner]])
    assert np.abs(peaks - 2).max() <= 2  # each star's brightest pixel lies near its cutout's centre
    rice = open_mosaic(catalogue, [str(m13_dir / "m13_rice.fits")], cutout_size="15px")
    np.testing.assert_array_equal(rice.read(np.arange(len(rice)), check=False), batch)


def test_cutout_grid_is_astropys_cutout2d_wcs():
    wcs = tile_wcs()
    grid = cutout_grid(type("T", (), {"shape": TILE, "wcs": wcs})(), 30.2, 20.7, SIZE)
    assert grid.shape == (SIZE, SIZE)
    np.testing.assert_allclose(grid.wcs.pixel_to_world_values(*grid.to_cutout_position((30.2, 20.7))),
                               wcs.pixel_to_world_values(30.2, 20.7))


def test_a_tile_written_by_hand_with_bzero_reads_scaled(tmp_path):
    data = (np.arange(TILE[0] * TILE[1]).reshape(TILE) % 1000).astype(np.uint16)
    path = write_tile(tmp_path / "u16.fits", data, tile_wcs())
    catalogue = write_catalogue(tmp_path / "c.csv", *positions([(40.3, 30.2, 0)]))
    image = open_mosaic(catalogue, [str(path)], cutout_size=SIZE).read([0])[0, ..., 0]
    np.testing.assert_array_equal(image, data[23:39, 33:49].astype(np.float32))  # as Cutout2D cuts at 40.3, 30.2
