"""Already known?  Cross-matching a session's images against a catalogue the test writes."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from napari_anomalymatch.core.config import DataConfig, SessionConfig
from napari_anomalymatch.core.errors import ConfigError, EmptyCollectionError, SourceNotFoundError
from napari_anomalymatch.core.review.crossmatch import crossmatch_session, parse_radius, read_crossmatch
from napari_anomalymatch.core.review.export import export_session
from napari_anomalymatch.core.review.queue import ReviewQueue
from napari_anomalymatch.core.session import Session

from ..conftest import blob_images, write_pngs
from .test_review import write_scores

N = 8
IMAGE_RA = 150.0 + 0.1 * np.arange(N)
IMAGE_DEC = 2.0 + 0.05 * np.arange(N)
NO_COORDINATES = 7  # this image's row leaves RA/Dec empty
# catalogue objects: (name, image they lie near, offset in arcsec, position angle in degrees)
OFFSETS = [("lens-A", 0, 1.0, 30.0), ("merger-B", 1, 5.0, 200.0), ("far-C", 3, 60.0, 90.0)]


def write_sky_catalogue(folder):
    """8 PNG images listed in a catalogue source with RA/Dec (the last one without)."""
    images, _ = blob_images(N, size=16)
    write_pngs(folder / "img", images)
    path = folder / "images.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "id", "ra", "dec"])
        for i in range(N):
            ra, dec = ("", "") if i == NO_COORDINATES else (IMAGE_RA[i], IMAGE_DEC[i])
            writer.writerow([f"img/img_{i:03d}.png", f"src{i}", ra, dec])
    return path


@pytest.fixture
def sky_session(tmp_path):
    source = write_sky_catalogue(tmp_path / "data")
    with Session.create(tmp_path / "s", SessionConfig(data=DataConfig(source=str(source)))) as session:
        yield session


def known_table(ra_name: str = "ra", dec_name: str = "dec", name_name: str = "name") -> Table:
    """The catalogue objects at their exact offsets, with a far decoy the match must not pick."""
    rows = []
    for name, image, offset, angle in OFFSETS:
        centre = SkyCoord(IMAGE_RA[image] * u.deg, IMAGE_DEC[image] * u.deg)
        moved = centre.directional_offset_by(angle * u.deg, offset * u.arcsec)
        rows.append((name, moved.ra.deg, moved.dec.deg))
    rows.append(("decoy", 10.0, -40.0))
    names, ra, dec = zip(*rows, strict=True)
    return Table({name_name: list(names), ra_name: list(ra), dec_name: list(dec)})


@pytest.mark.parametrize(("suffix", "columns"), [
    (".fits", ("RAJ2000", "DEJ2000", "MAIN_ID")),
    (".ecsv", ("ra", "dec", "name")),
    (".csv", ("RA_deg", "Dec_deg", "objid")),
    (".xml", ("ra", "dec", "source_id")),
])
def test_match_gives_nearest_name_and_separation(sky_session, tmp_path, suffix, columns):
    catalogue = tmp_path / f"known{suffix}"
    known_table(*columns).write(catalogue, format={".xml": "votable", ".csv": "ascii.csv"}.get(suffix))
    match = crossmatch_session(sky_session, catalogue, "3arcsec")
    assert (match.ra_column, match.dec_column, match.name_column) == columns
    names = match.name_of(np.arange(N))
    assert list(names[[0, 1, 3]]) == ["lens-A", "merger-B", "far-C"]
    np.testing.assert_allclose(match.separation_arcsec[[0, 1, 3]], [1.0, 5.0, 60.0], atol=1e-3)
    assert list(np.flatnonzero(match.known)) == [0]  # 5″ is beyond a 3″ radius
    assert names[NO_COORDINATES] == "" and np.isnan(match.separation_arcsec[NO_COORDINATES])
    assert "1 of 8 images are known" in match.summary()
    assert "1 images have no RA/Dec" in match.summary()
    wider = crossmatch_session(sky_session, catalogue, "0.002deg")  # 7.2″
    assert list(np.flatnonzero(wider.known)) == [0, 1]


def test_the_match_is_kept_in_the_session_for_review_and_export(tmp_path):
    source = write_sky_catalogue(tmp_path / "data")
    catalogue = tmp_path / "known.ecsv"
    known_table().write(catalogue)
    with Session.create(tmp_path / "s", SessionConfig(data=DataConfig(source=str(source)))) as session:
        assert read_crossmatch(session) is None
        crossmatch_session(session, catalogue, "6arcsec")
        write_scores(session, np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], dtype=np.float32))
    with Session.open(tmp_path / "s") as session:  # reopened: the match is read back
        queue = ReviewQueue(session)
        assert queue.current.known == "known: lens-A (1.00″)"
        assert queue.candidate_at(2).known.startswith("not yet known (nearest: ")
        assert queue.candidate_at(NO_COORDINATES).known == "no coordinates to match"
        queue.set_order(known="hide")
        assert [c.image_id for c in map(queue.candidate_at, range(len(queue)))][:2] == ["src2", "src3"]
        assert len(queue) == N - 2
        queue.set_order(known="last")
        order = [queue.candidate_at(p).image_id for p in range(len(queue))]
        assert order == ["src2", "src3", "src4", "src5", "src6", "src7", "src0", "src1"]
        table = Table.read(export_session(session, tmp_path / "ranking.ecsv"))
    rows = {row["id"]: row for row in table}
    assert rows["src0"]["known_name"] == "lens-A" and bool(rows["src0"]["known"])
    assert rows["src1"]["known_separation_arcsec"] == pytest.approx(5.0, abs=1e-3)
    assert not rows["src2"]["known"] and np.isnan(rows["src7"]["known_separation_arcsec"])
    # src2's nearest object lies outside the radius: it matched nothing, so it is named nothing
    assert rows["src2"]["known_name"] is np.ma.masked  # written empty
    assert np.isnan(rows["src2"]["known_separation_arcsec"])
    assert table.meta["crossmatch"]["radius_arcsec"] == pytest.approx(6.0)


def test_hiding_known_objects_needs_a_match(sky_session):
    queue = ReviewQueue(sky_session)
    with pytest.raises(ConfigError, match="no cross-match yet.*anomalymatch crossmatch"):
        queue.set_order(known="hide")
    with pytest.raises(ConfigError, match="must be one of"):
        queue.set_order(known="sometimes")


def test_sexagesimal_positions_are_read(sky_session, tmp_path):
    near = SkyCoord(IMAGE_RA[2] * u.deg, IMAGE_DEC[2] * u.deg).directional_offset_by(0 * u.deg, 2 * u.arcsec)
    catalogue = tmp_path / "known.csv"
    catalogue.write_text("name,RA,DEC\n"
                         f"NGC x,{near.ra.to_string(u.hourangle, sep=':', precision=4)},"
                         f"{near.dec.to_string(sep=':', precision=3, alwayssign=True)}\n")
    match = crossmatch_session(sky_session, catalogue)
    assert match.name_of([2])[0] == "NGC x"
    assert match.separation_arcsec[2] == pytest.approx(2.0, abs=5e-3)


def test_a_catalogue_without_names_names_rows(sky_session, tmp_path):
    catalogue = tmp_path / "known.ecsv"
    table = known_table()
    del table["name"]
    table.write(catalogue)
    match = crossmatch_session(sky_session, catalogue)
    assert match.name_column is None and match.name_of([0])[0] == "row 1"


@pytest.mark.parametrize(("text", "arcsec"), [("3arcsec", 3.0), ("0.001deg", 3.6), ("0.05 arcmin", 3.0)])
def test_radius_with_units(text, arcsec):
    assert parse_radius(text) == pytest.approx(arcsec)


@pytest.mark.parametrize("text", ["3", "3 metre", "-1arcsec", "fast"])
def test_a_bad_radius_is_refused(text):
    with pytest.raises(ConfigError, match=f"radius {text!r}"):
        parse_radius(text)


def test_bad_catalogues_are_named(sky_session, tmp_path):
    with pytest.raises(SourceNotFoundError, match="missing.fits: no such catalogue file"):
        crossmatch_session(sky_session, tmp_path / "missing.fits")
    no_ra = tmp_path / "no_ra.csv"
    no_ra.write_text("name,x,dec\nA,1.0,2.0\n")
    with pytest.raises(ConfigError, match=r"no_ra.csv: no RA column.*columns found: \['name', 'x', 'dec'\]"):
        crossmatch_session(sky_session, no_ra)
    text = tmp_path / "text.csv"
    text.write_text("name,ra,dec\nA,150.0,2.0\nB,north,2.0\n")
    with pytest.raises(ConfigError, match=r"text.csv: row 2 has RA 'north' \('ra'\).*not coordinates"):
        crossmatch_session(sky_session, text)
    wild = tmp_path / "wild.csv"
    wild.write_text("name,ra,dec\nA,150.0,95.0\n")
    with pytest.raises(ConfigError, match="column 'dec' row 1 holds 95.0, not a declination"):
        crossmatch_session(sky_session, wild)
    empty = tmp_path / "empty.csv"
    empty.write_text("name,ra,dec\nA,,\n")
    with pytest.raises(EmptyCollectionError, match="empty.csv: no row has a position"):
        crossmatch_session(sky_session, empty)
    with pytest.raises(ConfigError, match="unknown catalogue format '.txt'"):
        crossmatch_session(sky_session, tmp_path / "known.txt")


def test_images_without_coordinates_are_said(tmp_path, blob_folder):
    folder, _ = blob_folder
    catalogue = tmp_path / "known.ecsv"
    known_table().write(catalogue)
    config = SessionConfig(data=DataConfig(source=str(folder)))
    with Session.create(tmp_path / "s", config) as session, pytest.raises(ConfigError, match="no image has RA/Dec"):
        crossmatch_session(session, catalogue)
