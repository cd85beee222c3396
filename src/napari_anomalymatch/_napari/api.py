"""The plugin from a script or notebook: open it on a viewer, load data, train, review.

::

    from napari_anomalymatch import open_plugin

    app = open_plugin()                                  # a new viewer, or open_plugin(viewer)
    app.load("cutouts.h5", session_dir="my-search", image_size=64, iterations=100)
    app.label("a"); app.label("n")                       # the current candidate, then the next
    outcome = app.train_cycle()                          # waits; the viewer stays live
    for _ in range(10):
        print(app.current.describe()); app.next()
    app.export("candidates.csv")

Every method does what the matching key or button does, through the same
controller, so a scripted session and a hand-driven one are interchangeable.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.config import NormalisationConfig
from ..core.discovery.embedding_map import EmbeddingMap
from ..core.errors import AnomalyMatchError
from ..core.evaluation.testset import TestReport
from ..core.review.crossmatch import DEFAULT_RADIUS, CrossMatch
from ..core.review.display import DisplaySettings
from ..core.review.queue import Candidate
from ..core.session import Session

if TYPE_CHECKING:
    import napari

    from .main_widget import AnomalyMatchWidget
    from .mosaic_layer import MosaicView
    from .workers import RunOutcome


class AnomalyMatchApp:
    """The AnomalyMatch plugin of one viewer, driven from Python.

    Parameters
    ----------
    viewer
        The napari viewer.
    widget
        Its AnomalyMatch dock widget (``open_plugin`` makes both).
    """

    def __init__(self, viewer: napari.Viewer, widget: AnomalyMatchWidget) -> None:
        self.viewer = viewer
        self.widget = widget
        self.controller = widget.controller

    # -- data and settings -------------------------------------------------------------

    def load(self, source: str | Path | None = None, session_dir: str | Path = "anomalymatch-session",
             normalisation: str | NormalisationConfig = "auto", reader: str = "auto",
             options: dict[str, Any] | None = None, labels: str | Path | None = None,
             **settings: Any) -> Session:
        """Open ``session_dir`` (or create it for ``source``) and show the first candidate.

        ``settings`` are fields of the model, training or scoring settings,
        e.g. ``image_size=64, iterations=100, batch_size=16``.
        """
        if settings:
            self.configure(**settings)
        if isinstance(normalisation, str):
            normalisation = NormalisationConfig(method=normalisation)
        return self.controller.load(session_dir, source=source, reader=reader, options=options,
                                    normalisation=normalisation, labels=labels)

    def configure(self, **settings: Any) -> None:
        """Change model/training/scoring settings by name (``iterations=50`` ...; see
        ``SessionConfig.with_settings``)."""
        self.controller.update_settings(**settings)

    @property
    def session(self) -> Session | None:
        return self.controller.session

    # -- training ----------------------------------------------------------------------

    def train_cycle(self, wait: bool = True, iterations: int | None = None, score: bool = True):
        """Train one cycle (then score); with ``wait``, return its ``RunOutcome`` when done.

        Raises
        ------
        ConfigError
            Without an anomaly and a normal label.
        AnomalyMatchError
            When the run failed (its message says why).
        """
        worker = self.controller.train_cycle(iterations=iterations, score=score)
        return self._finish(worker) if wait else worker

    def score(self, wait: bool = True):
        """Score the collection with the latest model (resuming a stopped run)."""
        worker = self.controller.score()
        return self._finish(worker) if wait else worker

    def stop(self) -> None:
        """Stop the running cycle after its current iteration (the model is kept)."""
        self.controller.stop()

    def _finish(self, worker: Any) -> RunOutcome:
        outcomes: list[RunOutcome] = []
        self.controller.run_finished.connect(outcomes.append)
        try:
            self.controller.wait()
        finally:
            self.controller.run_finished.disconnect(outcomes.append)
        if not outcomes:
            raise AnomalyMatchError("the run ended without a result; see napari's notifications")
        if outcomes[0].error:
            raise AnomalyMatchError(outcomes[0].error)
        return outcomes[0]

    # -- reviewing ---------------------------------------------------------------------

    @property
    def current(self) -> Candidate | None:
        """The candidate shown now (rank, id, score, label)."""
        return self.controller.current

    def next(self) -> Candidate | None:
        return self.controller.next()

    def previous(self) -> Candidate | None:
        return self.controller.previous()

    def go_to(self, rank: int) -> Candidate | None:
        """Jump to a 1-based rank of the review order."""
        return self.controller.go_to(rank - 1)

    def label(self, label: str | int) -> Candidate | None:
        """Label the current candidate: ``'a'``/``'n'``/``'s'`` or anomaly/normal/unsure."""
        return self.controller.label(label)

    def undo(self) -> Candidate | None:
        return self.controller.undo()

    def order(self, order: str | None = None, which: str | None = None, known: str | None = None) -> None:
        """Review by score/uncertainty/random, among unlabelled/labelled/all images; known objects
        (after ``crossmatch``) show, hide or last."""
        self.controller.set_order(order, which, known)

    def tag(self, text: str) -> Candidate | None:
        """Tag the current candidate (``"lens, merger"``; ``"-lens"`` removes), as the ``t`` key does."""
        return self.controller.edit_tags(text)

    def crossmatch(self, catalogue: str | Path, radius: str = DEFAULT_RADIUS) -> CrossMatch:
        """Match the images against a catalogue of known objects (kept in the session)."""
        return self.controller.crossmatch(catalogue, radius)

    def gallery(self, visible: bool) -> None:
        if self.controller.layers.gallery_visible != visible:
            self.controller.toggle_gallery()

    def saliency(self, visible: bool) -> None:
        """Show or hide the current candidate's saliency map over it (the ``x`` key)."""
        if self.controller.saliency_visible != visible:
            self.controller.toggle_saliency()

    def display(self, **changes: Any) -> DisplaySettings:
        """Change display settings by field name (``stretch='zscale', gamma=0.8`` ...)."""
        self.controller.set_display(self.controller.display.with_changes(**changes))
        return self.controller.display

    def similar(self, on: bool = True) -> Candidate | None:
        """Review the current candidate's look-alikes (the ``f`` key), or the ranking again."""
        if (self.controller.queue.similar_to is not None) != on:
            self.controller.toggle_similar()
        return self.current

    # -- the embedding map ---------------------------------------------------------------

    def compute_map(self, wait: bool = True, sample: int | None = None) -> EmbeddingMap | None:
        """Compute the embedding map (the Map panel's button); with ``wait``, return it when done."""
        maps = self.controller.embedding_map
        maps.compute(sample)
        if wait:
            maps.wait()
        return maps.map

    def select_on_map(self, polygon: Any) -> np.ndarray:
        """Select the mapped images inside ``polygon`` ((V, 2) map coordinates); returns their indices."""
        return self.controller.embedding_map.select(np.asarray(polygon, dtype=np.float64))

    def review_selection(self) -> int:
        """Review only the images selected on the map (the panel's *Review these*)."""
        return self.controller.embedding_map.review_selection()

    def label_selection(self, label: str | int) -> int:
        """Label every image selected on the map in one undoable step."""
        return self.controller.embedding_map.label_selection(label)

    # -- the mosaic --------------------------------------------------------------------

    def show_mosaic(self, path: str | Path | None = None, viewer: napari.Viewer | None = None) -> MosaicView:
        """Show a mosaic tile (default: the session's first) with the candidates on it, in ``viewer`` (default:
        a new one); a click on a point shows that candidate, each review step centres the tile on it.

        Raises
        ------
        ConfigError
            No tile given and the session's images are not cut from a mosaic.
        """
        from .mosaic_layer import open_mosaic_view  # deferred: it loads Qt, which open_plugin loads after timm

        return open_mosaic_view(self.controller, path, viewer)

    # -- results -----------------------------------------------------------------------

    def export(self, path: str | Path, top: int | None = None) -> Path:
        """Write the ranking with every label; the suffix names the format."""
        return self.controller.export(path, top=top)

    def test_report(self, test_set: str | Path | None = None) -> TestReport | None:
        """Metrics and curves on a held-out test set (loaded from ``test_set`` if given)."""
        if test_set is not None:
            self.controller.load_test_set(test_set)
        return self.controller.test_report()

    def screenshot(self, path: str | Path | None = None, canvas_only: bool = True):
        """The viewer as an RGBA array (also saved to ``path`` if given)."""
        return self.viewer.screenshot(path=None if path is None else str(path), canvas_only=canvas_only,
                                      flash=False)

    def close(self) -> None:
        """Stop any run and close the session (the viewer stays open)."""
        self.controller.close()


def open_plugin(viewer: napari.Viewer | None = None, show: bool = True, **load: Any) -> AnomalyMatchApp:
    """Add the AnomalyMatch dock to ``viewer`` (a new one if None); ``load`` arguments open data.

    Returns
    -------
    AnomalyMatchApp
    """
    if viewer is None:
        import importlib

        importlib.import_module("timm")  # the model stack before OpenGL starts (see _napari.compat)
        import napari

        viewer = napari.Viewer(show=show)
    from .main_widget import AnomalyMatchWidget  # deferred: the widgets load napari and Qt, after timm above

    widget = AnomalyMatchWidget(viewer)
    viewer.window.add_dock_widget(widget, name="AnomalyMatch", area="right")
    app = AnomalyMatchApp(viewer, widget)
    if load:
        app.load(**load)
    return app
