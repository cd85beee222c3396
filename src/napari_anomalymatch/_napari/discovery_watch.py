"""The session's discovery state (curve, estimate of what remains, stop suggestion), kept up to
date in a worker thread.

Each label, cycle or stop-rate change asks for a new state; the Review and Metrics panels only
draw the newest one (``changed``).  The estimate reads every label's history and sorts the
unreviewed scores, which on a survey of 10^6 images costs more than a keystroke may take on the
GUI thread.  Requests that arrive while one is computed are coalesced into a single recomputation.
"""

from __future__ import annotations

from typing import Any, Protocol

from psygnal import Signal

from ..core.review.discovery import DiscoveryState, discovery_state
from ..core.session import Session
from .workers import WorkerSlot, process_events_until


class DiscoveryHost(Protocol):
    """What the watch needs of the dock's controller (``controller.AnomalyMatchController``)."""

    session: Session | None
    stop_rate: int  # suggest stopping below 1 anomaly in this many images
    labels_changed: Any  # psygnal signals
    run_finished: Any
    stop_rate_changed: Any
    session_changed: Any


class DiscoveryWatch:
    """The newest ``DiscoveryState`` of the controller's session (None: no session open)."""

    changed = Signal(object)  # the new DiscoveryState, or None when the session closed

    def __init__(self, controller: DiscoveryHost) -> None:
        self.controller = controller
        self.state: DiscoveryState | None = None
        self.slot = WorkerSlot()
        self._outdated = False
        controller.labels_changed.connect(self.request)
        controller.run_finished.connect(self.request)
        controller.stop_rate_changed.connect(self.request)
        controller.session_changed.connect(self._on_session)

    @property
    def busy(self) -> bool:
        return self.slot.busy

    def request(self, *_: Any) -> None:
        """Compute the state anew (after the one being computed, if any)."""
        session = self.controller.session
        if session is None:
            self.state, self._outdated = None, False
            self.changed.emit(None)
            return
        if self.busy:
            self._outdated = True
            return
        self._start(session)

    def _on_session(self, session: Session | None) -> None:
        if self.state is not None:  # the last session's state is not shown for the new one
            self.state = None
            self.changed.emit(None)
        self.request()

    def wait(self, timeout_ms: int = 60_000) -> None:
        """Process Qt events until no computation is running or asked for."""
        process_events_until(lambda: not self.busy and not self._outdated, timeout_ms,
                             "the discovery estimate was not computed")

    def _start(self, session: Session) -> None:
        self._outdated = False
        connect = {"returned": lambda state: self._on_computed(session, state), "errored": _show_error,
                   "finished": self._on_finished}
        self.slot.start(discovery_state, session, self.controller.stop_rate, connect=connect)

    def _on_computed(self, session: Session, state: DiscoveryState) -> None:
        if session is self.controller.session:  # else: another session opened meanwhile
            self.state = state
            self.changed.emit(state)

    def _on_finished(self) -> None:
        if self._outdated:
            self.request()


def _show_error(error: Exception) -> None:
    from napari.utils.notifications import show_error

    show_error(f"the discovery estimate failed: {error}")
