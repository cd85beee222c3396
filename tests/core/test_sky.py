"""Where a candidate lies on the sky: positions from catalogues, FITS WCS and IAU names, in words and links."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from napari_anomalymatch.core.config import DataConfig, SessionConfig, SkyConfig
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.review.export import export_session
from napari_anomalymatch.core.review.queue import ReviewQueue
from napari_anomalymatch.core.review.sky import (
    SKY_VIEWERS,
    SkyPosition,
    position_from_name,
    require_position,
    sky_position,
    sky_url,
)
from napari_anomalymatch.core.session import Session

from ..conftest import blob_images, write_pngs
from .test_crossmatch import IMAGE_DEC, IMAGE_RA, NO_COORDINATES, sky_session  # noqa: F401 - a fixture
from .test_review import write_scores


def test_catalogue_positions_reach_the_candidate(sky_session):  # noqa: F811 - the fixture
    queue = ReviewQueue(sky_session, order="random", which="all")
    for position in range(len(queue)):
        candidate = queue.candidate_at(position)
        if candidate.index == NO_COORDINATES:
            assert candidate.sky is None and "RA" not in candidate.describe()
        else:
            assert candidate.sky == SkyPosition(IMAGE_RA[candidate.index], IMAGE_DEC[candidate.index])
            assert candidate.sky.describe() in candidate.describe()
            assert candidate.sky.sexagesimal() in candidate.caption()


def test_fits_cutouts_give_their_centres_wcs_position(tmp_path):
    folder = tmp_path / "fits"
    folder.mkdir()
    centres = [(210.80225, 54.34894), (83.63308, -5.39111)]
    for i, (ra, dec) in enumerate(centres):
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [ra, dec]
        wcs.wcs.crpix = [8.5, 8.5]  # the centre of 16 pixels (FITS counts from 1)
        wcs.wcs.cdelt = [-0.0002, 0.0002]
        fits.PrimaryHDU(np.random.default_rng(i).random((16, 16)).astype(np.float32),
                        header=wcs.to_header()).writeto(folder / f"cutout_{i}.fits")
    with Session.create(tmp_path / "s", SessionConfig(data=DataConfig(source=str(folder)))) as session:
        for index, (ra, dec) in enumerate(centres):
            found = sky_position(session.collection, index)
            assert found.ra == pytest.approx(ra, abs=1e-6) and found.dec == pytest.approx(dec, abs=1e-6)


@pytest.mark.parametrize(("name", "ra", "dec"), [
    ("J123456.7+123456", 15 * (12 + 34 / 60 + 56.7 / 3600), 12 + 34 / 60 + 56 / 3600),
    ("FIRST_J000102.50-004030.1.png", 15 * (1 / 60 + 2.5 / 3600), -(40 / 60 + 30.1 / 3600)),
    ("SDSS J101011.0+000000", 15 * (10 + 10 / 60 + 11 / 3600), 0.0),
])
def test_iau_names_give_positions(name, ra, dec):
    found = position_from_name(name)
    assert found.ra == pytest.approx(ra) and found.dec == pytest.approx(dec)


@pytest.mark.parametrize("name", ["img_0001.png", "J25", "J250000.0+000000", "J120000.0+950000"])
def test_text_that_is_no_iau_name_gives_no_position(name):
    assert position_from_name(name) is None


def test_iau_named_images_are_placed_and_exported(tmp_path):
    images, _ = blob_images(3, size=16)
    names = ["J100029.6+021404.png", "J000000.0-300000.png", "plain.png"]
    write_pngs(tmp_path / "img", images, names=names)
    with Session.create(tmp_path / "s", SessionConfig(data=DataConfig(source=str(tmp_path / "img")))) as session:
        write_scores(session, np.array([0.9, 0.5, 0.1], dtype=np.float32))
        table = Table.read(export_session(session, tmp_path / "ranked.ecsv"))
    by_id = {row["id"]: row for row in table}
    first = by_id[_id_with(by_id, "J1000")]
    assert first["ra"] == pytest.approx(150.12333, abs=1e-4) and first["dec"] == pytest.approx(2.23444, abs=1e-4)
    assert str(table["ra"].unit) == "deg"
    assert np.isnan(by_id[_id_with(by_id, "plain")]["ra"])


def _id_with(rows, text):
    return next(image_id for image_id in rows if text in image_id)


def test_formats_in_degrees_and_sexagesimal():
    position = SkyPosition(150.123456, 2.234567)
    assert position.degrees() == "150.123456, +2.234567"
    assert position.sexagesimal() == "10:00:29.63 +02:14:04.4"
    assert SkyPosition(0.0, -0.5).sexagesimal() == "00:00:00.00 -00:30:00.0"


@pytest.mark.parametrize("viewer", list(SKY_VIEWERS))
def test_each_viewer_gets_the_position_in_its_url(viewer):
    url = sky_url(SkyPosition(150.123456, -2.5), viewer)
    assert url.startswith("https://") and "150.123456" in url
    assert "-2.500000" in url  # a minus needs no escaping; a plus does (below)
    assert "%2B2.000000" in sky_url(SkyPosition(1.0, 2.0), viewer)


def test_legacy_survey_is_the_default_viewer():
    assert sky_url(SkyPosition(10.0, 20.0)).startswith("https://www.legacysurvey.org/viewer?ra=10.000000&dec=%2B20")


def test_unknown_viewer_and_missing_position_are_named():
    with pytest.raises(ConfigError, match="unknown sky viewer 'google'.*legacy-survey"):
        sky_url(SkyPosition(1.0, 2.0), "google")
    with pytest.raises(ConfigError, match="image 'img_3' has no sky position.*ra/dec columns"):
        require_position(None, "img_3")


def test_sky_settings_are_checked_and_kept(tmp_path):
    with pytest.raises(ConfigError, match=r"sky.viewer must be one of \['legacy-survey', 'esasky', 'aladin'\]"):
        SkyConfig(viewer="google")
    with pytest.raises(ConfigError, match="sky.samp_top must be an integer >= 1; got 0"):
        SkyConfig(samp_top=0)
    config = SessionConfig().with_settings(sky_viewer="aladin", samp_top=50)
    config.to_toml(tmp_path / "session.toml")
    assert SessionConfig.from_toml(tmp_path / "session.toml").sky == SkyConfig(viewer="aladin", samp_top=50)
    assert config.settings("sky_viewer", "samp_top") == {"sky_viewer": "aladin", "samp_top": 50}
