"""Talking to TOPCAT and Aladin over SAMP: send the ranking, point at a candidate, hear row selections.

``SampLink`` registers with a running SAMP hub (TOPCAT and Aladin each start
one) and sends the ranking as a VOTable (``table.load.votable``) and positions
(``coord.pointAt.sky``).  When a row of a table it sent is selected or
highlighted over there (``table.select.rowList``, ``table.highlight.row``) it
calls ``on_row`` with that row's image id; a received row it cannot name goes
to ``on_problem`` as a message.  Both are called in the SAMP client's own
thread: a GUI hands them to its own thread.  No Qt here.

The VOTable is written to the system's temporary folder and left there: a hub
client reads it after the message, possibly after the sender has exited.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
import warnings
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SampError
from .export import session_table
from .sky import SkyPosition

CLIENT_NAME = "anomalymatch"
TABLE_NAME = "anomalymatch ranking"
LOAD_VOTABLE = "table.load.votable"
POINT_AT = "coord.pointAt.sky"
SELECT_ROWS = "table.select.rowList"
HIGHLIGHT_ROW = "table.highlight.row"
NO_HUB = ("no SAMP hub is running: start TOPCAT or Aladin (each starts one), or a hub "
          "('python -m astropy.samp.hub_script'), then try again")


@dataclass(frozen=True)
class SentTable:
    """A table sent to the hub: its id, where it was written and the image id of each row."""

    table_id: str
    url: str
    ids: tuple[str, ...]
    recipients: tuple[str, ...]  # the names of the clients it went to


def samp_module() -> Any:
    """pyvo's SAMP when installed, else astropy's (deprecated in astropy 8, the same interface)."""
    try:
        from pyvo import samp
    except ImportError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from astropy import samp
    return samp


class SampLink:
    """One registration with a SAMP hub (see the module docstring).

    Parameters
    ----------
    on_row
        Called with the image id of a row selected or highlighted in a table this link sent.
    on_problem
        Called with a message when a received selection names no image.
    lockfile
        The hub's lockfile; None: the hub ``SAMP_HUB`` names, else the user's standard one.
    """

    def __init__(self, on_row: Callable[[str], None], on_problem: Callable[[str], None],
                 lockfile: str | Path | None = None) -> None:
        self.on_row = on_row
        self.on_problem = on_problem
        self.lockfile = lockfile
        self.sent: dict[str, SentTable] = {}  # by table id and by url
        self._client: Any = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    def connect(self) -> None:
        """Register with the hub (once) and listen for row selections.

        Raises
        ------
        SampError
            When no hub is running.
        """
        if self.connected:
            return
        samp = samp_module()
        client = samp.SAMPIntegratedClient(name=CLIENT_NAME, description="AnomalyMatch candidate review",
                                           addr="127.0.0.1")
        try:
            params = samp.lockfile_helpers.read_lockfile(str(self.lockfile)) if self.lockfile else None
            client.connect(hub_params=params)
        except (samp.SAMPHubError, OSError) as err:
            raise SampError(f"{NO_HUB} ({err})") from None
        for mtype in (SELECT_ROWS, HIGHLIGHT_ROW):
            client.bind_receive_notification(mtype, self._on_notification)
            client.bind_receive_call(mtype, self._on_call)
        self._client = client

    def close(self) -> None:
        """Unregister from the hub (a hub that went away first is fine)."""
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            samp = samp_module()
            with contextlib.suppress(samp.SAMPProxyError, samp.SAMPHubError, OSError, xmlrpc.client.Error):
                client.disconnect()  # the hub may have gone first: the link is closed either way

    def send_table(self, table: Any, ids: list[str], name: str = TABLE_NAME) -> SentTable:
        """Send ``table`` (an astropy ``Table`` whose rows are the images ``ids``) as a VOTable.

        Raises
        ------
        SampError
            Without a hub, or when no client there loads tables (start TOPCAT or Aladin).
        """
        self.connect()
        table_id = f"anomalymatch-{uuid.uuid4().hex[:8]}"
        path = Path(tempfile.gettempdir()) / "anomalymatch-samp" / f"{table_id}.vot"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.write(path, format="votable", overwrite=True)
        sent = SentTable(table_id, path.as_uri(), tuple(ids), self._notify(LOAD_VOTABLE, {
            "url": path.as_uri(), "table-id": table_id, "name": name}, "load tables (TOPCAT, Aladin)"))
        self.sent[table_id] = self.sent[sent.url] = sent
        return sent

    def point_at(self, position: SkyPosition) -> tuple[str, ...]:
        """Ask the hub's sky viewers to look at ``position``; returns the names of those asked.

        Raises
        ------
        SampError
            Without a hub, or when no client there points at positions (start Aladin).
        """
        self.connect()
        return self._notify(POINT_AT, {"ra": repr(position.ra), "dec": repr(position.dec)},
                            "point at positions (Aladin, TOPCAT's sky plots)")

    def _notify(self, mtype: str, params: dict[str, str], who: str) -> tuple[str, ...]:
        samp = samp_module()
        try:
            recipients = self._client.notify_all({"samp.mtype": mtype, "samp.params": params})
            names = tuple(self._client.get_metadata(r).get("samp.name", r) for r in recipients)
        except (samp.SAMPProxyError, samp.SAMPHubError, OSError, xmlrpc.client.Error) as err:
            self.close()
            raise SampError(f"the SAMP hub went away ({err}); {NO_HUB}") from None
        if not names:
            raise SampError(f"no client of the SAMP hub can {who}: start one and try again")
        return names

    def _on_notification(self, private_key: str, sender_id: str, mtype: str, params: dict,
                         extra: dict) -> None:
        self.receive(mtype, params)

    def _on_call(self, private_key: str, sender_id: str, msg_id: str, mtype: str, params: dict,
                 extra: dict) -> None:
        self.receive(mtype, params)
        self._client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

    def receive(self, mtype: str, params: dict) -> None:
        """Hand a received selection to ``on_row``, or what is wrong with it to ``on_problem``."""
        try:
            image_id = self.row_id(mtype, params)
        except SampError as err:
            self.on_problem(str(err))
            return
        if image_id is not None:
            self.on_row(image_id)

    def row_id(self, mtype: str, params: dict) -> str | None:
        """The image id of the (first) row a selection names; None for an empty selection.

        Raises
        ------
        SampError
            For a table this link did not send, or a row it does not hold.
        """
        sent = self.sent.get(params.get("table-id", "")) or self.sent.get(params.get("url", ""))
        if sent is None:
            raise SampError(f"received a row selection of table {params.get('table-id') or params.get('url')!r}, "
                            f"which anomalymatch did not send; select rows of '{TABLE_NAME}' (send it again "
                            "if the review was restarted)")
        rows = params.get("row-list", []) if mtype == SELECT_ROWS else [params.get("row", "")]
        if not rows:
            return None
        try:
            row = int(rows[0])
        except (TypeError, ValueError):
            raise SampError(f"received row {rows[0]!r} of '{TABLE_NAME}', which is not a row number") from None
        if not 0 <= row < len(sent.ids):
            raise SampError(f"received row {row} of '{TABLE_NAME}', which has rows 0 to {len(sent.ids) - 1}")
        return sent.ids[row]


def send_ranking(link: SampLink, session: Any, top: int) -> SentTable:
    """Send the ``top`` best candidates of ``session`` (id, score, label, RA/Dec, tags, ...) over ``link``.

    Raises
    ------
    NotTrainedError, IncompleteScoresError
        Without complete scores (see ``export.session_table``).
    SampError
        Without a hub, or without a client there that loads tables.
    """
    table = session_table(session, top=top)
    return link.send_table(table, [str(i) for i in table["id"]])
