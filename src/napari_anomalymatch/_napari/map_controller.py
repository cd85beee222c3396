"""The embedding map in the viewer: computing it in a worker thread, and what a click, hover or
selection on it does to the review.

``MapController`` belongs to one ``AnomalyMatchController``.  It loads the session's saved map,
computes a new one on request and after every cycle that scored (``auto_update``), and turns map
positions into review actions; ``map_widget.MapWidget`` only draws what it holds.  UMAP costs
seconds to minutes of CPU: a map is computed only while the Map panel is shown (a cycle that
scores while it is hidden leaves the map to be made when it is shown) and never while a training
or scoring run goes; no run starts while a map is computed (``AnomalyMatchController._start``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from psygnal import Signal

from ..core.discovery.embedding_map import EmbeddingMap, MapProgress
from ..core.discovery.map_figure import MapColouring, map_colouring
from ..core.errors import AnomalyMatchError, ConfigError, NoEmbeddingsError, SessionError
from ..core.labels import LABEL_NAMES, parse_label
from ..core.review.queue import ReviewQueue
from ..core.session import Session
from .workers import WorkerSlot

if TYPE_CHECKING:
    from .workers import RunOutcome


class MapHost(Protocol):
    """What the map needs of the dock's controller (``controller.AnomalyMatchController``)."""

    session: Session | None
    session_changed: Any  # a psygnal signal: the session opened (None: closed)
    run_finished: Any  # a psygnal signal: a cycle's RunOutcome

    def require_session(self) -> Session: ...

    def require_queue(self) -> ReviewQueue: ...


class MapController:
    """The current session's embedding map and the selection made on it."""

    changed = Signal(object)  # the EmbeddingMap shown (None: none yet)
    progress = Signal(object)  # MapProgress of a computation
    busy_changed = Signal(bool)
    selection_changed = Signal(object)  # collection indices selected on the map

    def __init__(self, controller: MapHost) -> None:
        self.controller = controller
        self.map: EmbeddingMap | None = None
        self.selected = np.zeros(0, dtype=np.int64)
        self.auto_update = True  # compute a new map after each cycle that stored embeddings ...
        self.shown = False  # ... while the Map panel is shown; else
        self.outdated = False  # ... when it is shown next
        self.error: str | None = None  # why the last computation failed
        self.slot = WorkerSlot(self.busy_changed.emit)
        controller.session_changed.connect(self._on_session)
        controller.run_finished.connect(self._on_run_finished)
        controller.busy_changed.connect(self._on_run_busy)

    @property
    def busy(self) -> bool:
        return self.slot.busy

    # -- computing ------------------------------------------------------------------

    def compute(self, sample: int | None = None):
        """Compute the map of the latest embedded score run in a worker thread; returns the worker.

        Raises
        ------
        SessionError
            Without a session, while a map is being computed, or while training or scoring runs.
        NoEmbeddingsError
            Before a score run stored embeddings.
        """
        session = self.controller.require_session()
        if self.busy:
            raise SessionError("the map is being computed; wait for it to finish")
        if self.controller.busy:
            raise SessionError("training or scoring runs: the map is computed when it has finished")
        session.runs.embedded_run()  # raises NoEmbeddingsError here, where the caller hears of it
        self.error, self.outdated = None, False
        connect = {"yielded": self.progress.emit, "returned": self._on_computed}
        return self.slot.start(_map_events, session, sample, connect=connect)

    def wait(self, timeout_ms: int = 300_000) -> None:
        """Process Qt events until the computation has finished."""
        self.slot.wait(timeout_ms, "the map was not computed")

    def _on_computed(self, result: EmbeddingMap | str) -> None:
        if isinstance(result, str):
            from napari.utils.notifications import show_error

            self.error = result
            show_error(result)
            return
        self._show(result)

    def _on_session(self, session: Session | None) -> None:
        found = None
        if session is not None:
            try:
                found = session.embedding_map()
            except SessionError as err:  # a damaged map file: said, and the panel offers a new one
                self.error = str(err)
        self._show(found)

    def set_shown(self, shown: bool) -> None:
        """The Map panel was shown or hidden: a map the last cycle left to make is made now."""
        self.shown = shown
        if shown and self.outdated:
            self._update()

    def _on_run_finished(self, outcome: RunOutcome) -> None:
        """After new scores: the newest embedded run's saved map, or (``auto_update``) a new one."""
        session = self.controller.session
        if outcome.score_result is None or session is None or self.busy:
            return
        try:
            saved = session.embedding_map()
        except SessionError:
            saved = None
        if saved is not None or not self.auto_update:
            self._show(saved if saved is not None else self.map)
            return
        self.outdated = True
        if self.shown:
            self._update()

    def _on_run_busy(self, busy: bool) -> None:
        if not busy and self.shown and self.outdated:
            self._update()

    def _update(self) -> None:
        """Compute the map the latest scores call for, unless a run or a map is going."""
        if self.busy or self.controller.busy or self.controller.session is None:
            return  # the run's end, or the panel's next showing, asks again
        with contextlib.suppress(NoEmbeddingsError):  # no run stored embeddings: nothing to map
            self.compute()

    def _show(self, found: EmbeddingMap | None) -> None:
        self.map = found
        self.select_indices(np.zeros(0, dtype=np.int64))
        self.changed.emit(found)

    # -- what the map shows ---------------------------------------------------------

    def colouring(self, by: str) -> MapColouring:
        session = self.controller.require_session()
        return map_colouring(session.runs, session.labels, session.collection, self._require_map(), by)

    def describe(self) -> str:
        """What the panel says about the map (or why there is none)."""
        if self.map is not None:
            return self.map.describe()
        if self.error:
            return self.error
        return "no map yet: score the collection, then press Compute map"

    def image_at(self, point: tuple[float, float], radius: float) -> int | None:
        """The collection index of the image drawn nearest ``point`` within ``radius`` (map units)."""
        return self.map.nearest(point, radius) if self.map is not None else None

    def describe_image(self, index: int) -> str:
        """``id  score 0.9731  anomaly`` for the pointer line."""
        queue = self.controller.require_queue()
        score = float(queue.scores[index]) if index < len(queue.scores) else math.nan
        score_text = "not scored" if math.isnan(score) else f"score {score:.4f}"
        return f"{queue.session.collection.id_of(index)}  {score_text}  {LABEL_NAMES[queue.label_of(index)]}"

    # -- acting on it ---------------------------------------------------------------

    def show_image(self, index: int) -> None:
        """Show image ``index`` in the review (a click on the map)."""
        self.controller.show_index(index)

    def select(self, polygon: np.ndarray) -> np.ndarray:
        """Select the images inside ``polygon`` (a lasso, in map units); returns their indices."""
        return self.select_indices(self._require_map().inside(polygon))

    def select_indices(self, indices: np.ndarray) -> np.ndarray:
        self.selected = np.asarray(indices, dtype=np.int64)
        self.selection_changed.emit(self.selected)
        return self.selected

    def review_selection(self) -> int:
        """Review only the selected images (the current order and filter); returns how many are listed."""
        if not len(self.selected):
            raise ConfigError("nothing is selected: draw around some points of the map first")
        return self.controller.review_selection(self.selected)

    def review_everything(self) -> None:
        """Review every image again, as before the selection."""
        self.controller.review_selection(None)

    def label_selection(self, label: int | str) -> int:
        """Give every selected image ``label`` in one step (one undo reverts it); returns how many changed."""
        if not len(self.selected):
            raise ConfigError("nothing is selected: draw around some points of the map first")
        return self.controller.label_indices(self.selected, parse_label(label))

    def _require_map(self) -> EmbeddingMap:
        if self.map is None:
            raise ConfigError(self.describe())
        return self.map


def _map_events(session: Session, sample: int | None) -> Generator[MapProgress, None, EmbeddingMap | str]:
    """``Session.compute_map`` for a worker thread: an error the user can fix comes back as its message."""
    try:
        return (yield from session.compute_map(sample))
    except AnomalyMatchError as err:
        return str(err)
