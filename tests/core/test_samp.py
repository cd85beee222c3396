"""SAMP against a real hub on localhost (started by the test): the ranking out, a position out, a row back."""

from __future__ import annotations

import time
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest
from astropy.table import Table

from napari_anomalymatch.cli import main
from napari_anomalymatch.core.errors import SampError
from napari_anomalymatch.core.review.samp import SampLink, send_ranking
from napari_anomalymatch.core.review.sky import SkyPosition

from .test_crossmatch import IMAGE_RA, N, sky_session  # noqa: F401 - a fixture
from .test_review import write_scores

SCORES = np.linspace(0.1, 0.9, N).astype(np.float32)  # image 7 is the best, then 6 ...


class Heard:
    """What a link hands on: image ids of selected rows, and problems."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.problems: list[str] = []

    def wait(self, what: list, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while not what and time.monotonic() < deadline:
            time.sleep(0.02)
        return what


@pytest.fixture
def link():
    heard = Heard()
    link = SampLink(heard.rows.append, heard.problems.append)
    link.heard = heard
    yield link
    link.close()


def test_ranking_goes_out_as_a_votable_and_a_selected_row_comes_back(samp_hub, sky_session, link):  # noqa: F811
    write_scores(sky_session, SCORES)
    sent = send_ranking(link, sky_session, top=5)
    assert sent.recipients == ("peer",)
    params = samp_hub.wait_for("table.load.votable")
    assert params["table-id"] == sent.table_id and params["name"] == "anomalymatch ranking"
    table = Table.read(url2pathname(urlparse(params["url"]).path), format="votable")
    assert list(table["id"]) == ["src7", "src6", "src5", "src4", "src3"]
    assert {"rank", "score", "label", "ra", "dec", "tags"} <= set(table.colnames)
    np.testing.assert_allclose(table["ra"][1:], IMAGE_RA[[6, 5, 4, 3]])  # src7 has no position
    samp_hub.select_rows(sent.table_id, [2, 0])
    assert link.heard.wait(link.heard.rows) == ["src5"]  # the first row selected is shown


def test_point_at_sends_the_position(samp_hub, link):
    assert link.point_at(SkyPosition(150.125, -2.5)) == ("peer",)
    params = samp_hub.wait_for("coord.pointAt.sky")
    assert float(params["ra"]) == 150.125 and float(params["dec"]) == -2.5


def test_a_highlight_sent_as_a_call_is_answered_and_heard(samp_hub, sky_session, link):  # noqa: F811
    write_scores(sky_session, SCORES)
    sent = send_ranking(link, sky_session, top=3)
    answer = samp_hub.client.call_and_wait(
        _id_of(samp_hub, "anomalymatch"),
        {"samp.mtype": "table.highlight.row", "samp.params": {"url": sent.url, "row": "1"}}, "10")
    assert answer["samp.status"] == "samp.ok"
    assert link.heard.wait(link.heard.rows) == ["src6"]


def _id_of(peer, name: str) -> str:
    return next(c for c in peer.client.get_registered_clients()
                if peer.client.get_metadata(c).get("samp.name") == name)


@pytest.mark.parametrize(("params", "problem"), [
    ({"table-id": "someone-else", "row-list": ["0"]}, "table 'someone-else', which anomalymatch did not send"),
    ({"row-list": ["3"]}, "received row 3 of 'anomalymatch ranking', which has rows 0 to 1"),
    ({"row-list": ["first"]}, "row 'first' of 'anomalymatch ranking', which is not a row number"),
])
def test_a_selection_naming_no_candidate_becomes_a_message(samp_hub, sky_session, link, params, problem):  # noqa: F811
    write_scores(sky_session, SCORES)
    sent = send_ranking(link, sky_session, top=2)
    samp_hub.client.notify_all({"samp.mtype": "table.select.rowList",
                                "samp.params": {"table-id": sent.table_id, **params}})
    assert problem in link.heard.wait(link.heard.problems)[0]
    assert link.heard.rows == []


def test_an_empty_selection_is_ignored(link):
    link.sent["t"] = type("Sent", (), {"ids": ("a",)})()
    link.receive("table.select.rowList", {"table-id": "t", "row-list": []})
    assert link.heard.rows == [] and link.heard.problems == []


def test_without_a_hub_the_message_says_what_to_start(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{tmp_path / 'no-hub.lock'}")
    link = SampLink(print, print)
    with pytest.raises(SampError, match="no SAMP hub is running: start TOPCAT or Aladin"):
        link.point_at(SkyPosition(1.0, 2.0))
    with pytest.raises(SampError, match="no SAMP hub is running"):
        SampLink(print, print, lockfile=tmp_path / "missing.lock").connect()


def test_a_hub_without_a_table_viewer_is_named(samp_hub, sky_session, link):  # noqa: F811
    write_scores(sky_session, SCORES)
    samp_hub.client.disconnect()  # the only peer goes: nobody loads tables
    with pytest.raises(SampError, match=r"no client of the SAMP hub can load tables \(TOPCAT, Aladin\)"):
        send_ranking(link, sky_session, top=2)


def test_cli_sends_the_top_once(samp_hub, sky_session, capsys):  # noqa: F811
    write_scores(sky_session, SCORES)
    path = sky_session.path
    sky_session.close()
    assert main(["samp", str(path), "--top", "4"]) == 0
    assert "sent the top 4 candidates to peer" in capsys.readouterr().out
    params = samp_hub.wait_for("table.load.votable")
    assert len(Table.read(url2pathname(urlparse(params["url"]).path), format="votable")) == 4


def test_cli_without_a_hub_says_so(tmp_path, sky_session, monkeypatch, capsys):  # noqa: F811
    write_scores(sky_session, SCORES)
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{tmp_path / 'no-hub.lock'}")
    path = sky_session.path
    sky_session.close()
    assert main(["samp", str(path)]) == 2
    assert "error: no SAMP hub is running: start TOPCAT or Aladin" in capsys.readouterr().err
