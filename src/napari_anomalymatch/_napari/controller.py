"""One controller per viewer: it owns the session, the review state and the workers.

Widgets, key bindings and the scripted API call its methods; it calls the
engine and tells listeners what changed through psygnal signals.  Methods
raise the engine's errors; widgets and keys show them as notifications
(``notifications.notify_errors``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from ..core.config import (
    DEFAULT_NOVELTY_METHOD,
    DataConfig,
    NormalisationConfig,
    SessionConfig,
    check_novelty_method,
    setting_names,
)
from ..core.errors import AnomalyMatchError, ConfigError, SampError, SessionError
from ..core.evaluation.testset import SOURCE_TRUTH, TestReport, TestSet, evaluate_test_set, read_test_set
from ..core.folder.relocation import Relocation, relocate
from ..core.io.detect import DetectConfig, mosaic_data
from ..core.io.labelfiles import count_changes, read_label_file
from ..core.learning.history import read_loss_history
from ..core.review.crossmatch import DEFAULT_RADIUS, CrossMatch, crossmatch_session
from ..core.review.discovery import STOP_PER_IMAGES, DiscoveryState, discovery_state
from ..core.review.display import DisplayRenderer, DisplaySettings
from ..core.review.export import export_session
from ..core.review.queue import Candidate, ReviewQueue
from ..core.review.saliency import saliency_maps
from ..core.review.samp import SampLink, SentTable, send_ranking
from ..core.review.sky import require_position, sky_url
from ..core.review.state import ReviewState, read_review_state, write_review_state
from ..core.session import Session
from ..core.transforms import Normaliser
from .compat import avoid_triton_llvm_clash
from .detection import SourceDetection
from .discovery_watch import DiscoveryWatch
from .keys import ReviewKeys
from .map_controller import MapController
from .notifications import notify_errors
from .review_layers import CANDIDATE_LAYER, ReviewLayers
from .workers import CycleRunner, RunOutcome, main_thread_runner

if TYPE_CHECKING:
    import napari

# The sections ``configure`` changes; the data settings are chosen when a session is created.
CONFIGURABLE_SECTIONS = ("model", "train", "probe", "score", "sky")


class AnomalyMatchController:
    """The plugin's state for one viewer (see the module docstring)."""

    session_changed = Signal(object)
    candidate_changed = Signal(object)
    tile_hovered = Signal(object)  # the gallery tile's Candidate under the pointer (None: none)
    labels_changed = Signal()
    busy_changed = Signal(bool)
    progress = Signal(object)
    run_finished = Signal(object)
    display_changed = Signal(object)
    test_set_changed = Signal(object)
    stop_rate_changed = Signal(int)

    def __init__(self, viewer: napari.Viewer) -> None:
        avoid_triton_llvm_clash()
        self.viewer = viewer
        self.session: Session | None = None
        self.queue: ReviewQueue | None = None
        self._hovered_index: int | None = None  # the gallery tile last said to be under the pointer
        self.layers = ReviewLayers(viewer)
        self.keys = ReviewKeys(viewer, self)
        self.display = DisplaySettings()
        self.defaults = SessionConfig()
        self.test_set: TestSet | None = None
        self.keep_place = False  # after new scores: stay on the current image (else rank 1)
        self.stop_rate = STOP_PER_IMAGES  # suggest stopping below 1 anomaly in this many images
        self._tag_entry: Any = None  # made when first opened (it needs the viewer's window)
        self._preview: NormalisationConfig | None = None
        self.saliency_visible = False
        self._saliency: OrderedDict[int, Any] = OrderedDict()  # index -> map, of _saliency_cycle's model
        self._saliency_cycle: int | None = None
        self.samp: SampLink | None = None  # made by send_to_samp; while connected the review follows on the sky
        self._main_thread = main_thread_runner()
        self.runner = CycleRunner(self.progress.emit, self._on_outcome, self._on_busy)
        self.embedding_map = MapController(self)
        self.discovery_watch = DiscoveryWatch(self)  # what the Review and Metrics panels show of it
        self.detection = SourceDetection()  # the Data panel's: a catalogue for a new mosaic session

    # -- sessions ----------------------------------------------------------------------

    def load(self, session_dir: str | Path, source: str | Path | None = None, reader: str = "auto",
             options: dict[str, Any] | None = None, normalisation: NormalisationConfig | None = None,
             config: SessionConfig | None = None, labels: str | Path | None = None,
             detect: DetectConfig | None = None) -> Session:
        """Open the session in ``session_dir``, or create it for ``source``, and start reviewing.

        With mosaic tiles in ``options``, ``source`` is the catalogue of positions to cut; with ``detect``
        instead, the sources found on the first band (``core.io.detect.mosaic_data``, as ``init --detect``).

        Raises
        ------
        SessionError, ConfigError, SourceNotFoundError, UnsupportedSourceError, ...
            Whatever the engine raises for a bad folder, source or label file.
        """
        self._refuse_while_busy("open another session")
        if self.detection.busy:  # it writes into a folder that must not hold a session yet
            raise SessionError("sources are being detected; open or create a session when that has finished")
        config = config or self.defaults
        data = None
        if source or (options or {}).get("mosaic"):
            data = DataConfig(source=str(source or ""), reader=reader, options=dict(options or {}),
                              normalisation=normalisation or config.data.normalisation)
            data = mosaic_data(Path(session_dir), data, detect)
        session = Session.open_or_create(session_dir, data=data, config=config,
                                         labels=labels or None)
        self._set_session(session)
        return session

    def relocate(self, session_dir: str | Path, source: str | Path) -> Relocation:
        """Point the session in ``session_dir`` at its moved data, ``source``, once its ids are
        checked (``anomalymatch relocate``), and open it.

        Raises
        ------
        SessionError
            The ids differ, or another process is changing the session; nothing changed.
        """
        self._refuse_while_busy("relocate a session")
        session = Session.open(session_dir)
        try:
            with session.writing("napari relocate"):
                moved = relocate(session, source)
        except BaseException:
            session.close()
            raise
        self._set_session(session)
        return moved

    def _set_session(self, session: Session) -> None:
        self.close_session()
        self.session = session
        self.queue = ReviewQueue(session, seed=session.config.train.seed)
        self._restore_review_state(session)
        self._attach_layers()
        self.keys.bind()
        self.show()
        self.viewer.reset_view()
        self.session_changed.emit(session)
        self.display_changed.emit(self.display)
        self.test_set_changed.emit(self.test_set)
        self.keys.focus_canvas()  # not a control of a hidden panel, where a key would change a setting

    def _restore_review_state(self, session: Session) -> None:
        """The session's own display and test set (a new session: the defaults, not the last one's)."""
        from napari.utils.notifications import show_warning

        state = read_review_state(session.path)
        self._restore_place(state)
        self.display, self.test_set, self._preview = state.display, None, None
        try:
            DisplayRenderer(self.display, session.normaliser, session.collection.shape[2])
        except ConfigError:
            self.display = DisplaySettings()
        if state.test_set is not None:
            try:
                self.test_set = read_test_set(state.test_set, session.collection)
            except (AnomalyMatchError, OSError) as err:
                show_warning(f"the session's test set is not loaded again: {err}")

    def _restore_place(self, state: ReviewState) -> None:
        """Back to the order, filter and image of the last visit (rank 1 where they no longer apply)."""
        try:
            if state.order or state.which:
                self.queue.set_order(state.order, state.which)
            if state.image_id:
                self.queue.go_to(self.queue.position_of(state.image_id))
        except AnomalyMatchError:
            pass  # an order refused now, or the image labelled since: the list starts at rank 1

    def _save_place(self) -> None:
        """Keep where the review is for the next visit; a folder that cannot take it is said, not raised:
        closing must go on."""
        try:
            self._save_review_state()
        except (AnomalyMatchError, OSError) as err:
            _warn(f"the review's place is not kept for the next visit: {err}")

    def _save_review_state(self) -> None:
        if self.session is not None:
            test_set = self.test_set.source if self.test_set is not None else None
            if test_set is not None and test_set != SOURCE_TRUTH:
                test_set = str(Path(test_set).absolute())
            current = self.current
            write_review_state(self.session.path, ReviewState(
                self.display, test_set, current.image_id if current is not None else None,
                self.queue.order, self.queue.which))

    def loss_history(self) -> list:
        """Every training iteration's losses stored in the session, oldest first."""
        return read_loss_history(self.require_session().path)

    def _attach_layers(self) -> None:
        """Give the layers their own handle on the collection (the workers use the session's)."""
        session = self.require_session()
        display_collection = copy.copy(session.collection)
        self.layers.attach(display_collection, self._renderer(), {"session": str(session.path)})

    def close_session(self) -> None:
        """Stop any run, remove the review layers and close the session."""
        if self.session is None:
            return
        try:
            self.stop(wait=True)
            self.embedding_map.wait()  # UMAP cannot be interrupted; its result belongs to this session
            self.discovery_watch.wait()  # it reads the label store about to be closed
            self._save_place()
            if self._tag_entry is not None:
                self._tag_entry.hide()
            self.keys.unbind()
            self.layers.remove()
            self.close_samp()
        finally:  # whatever went wrong above, the labels are checkpointed into labels.sqlite
            self.session.close()
            self.session, self.queue = None, None
        self.saliency_visible = False
        self._saliency.clear()
        self.session_changed.emit(None)

    close = close_session

    def configure(self, **sections: Any) -> SessionConfig:
        """Change settings (``model=``, ``train=``, ``probe=``, ``score=`` sections) of the session and of new ones.

        A new model name or image size starts the model afresh at the next cycle.
        """
        unknown = sorted(set(sections) - set(CONFIGURABLE_SECTIONS))
        if unknown:
            raise ConfigError(f"configure takes model=, train=, probe=, score= and sky= sections; got {unknown}")
        self.defaults = self.defaults.replace(**sections)
        if self.session is not None and self.session.config.replace(**sections) != self.session.config:
            self._refuse_while_busy("change the settings")
            self.session.update_config(self.session.config.replace(**sections))
            self.session_changed.emit(self.session)
        return self.config

    def update_settings(self, **settings: Any) -> SessionConfig:
        """Change model, training and scoring settings by flat name (``iterations=50``, ``image_size=64``).

        The names are ``SessionConfig.with_settings``'s; data settings are chosen when a session
        is created (``load``) or in the Data panel.
        """
        data = sorted(set(settings) & set(setting_names("data")))
        if data:  # even when the value is the session's: it cannot be changed here
            raise ConfigError(f"{data} are data settings: choose them when the session is created "
                              "(load(normalisation=, reader=, options=) or the Data panel)")
        config = self.config.with_settings(**settings)
        return self.configure(**{name: getattr(config, name) for name in CONFIGURABLE_SECTIONS})

    @property
    def config(self) -> SessionConfig:
        """The open session's settings, or those a new session gets."""
        return self.session.config if self.session is not None else self.defaults

    def preview_import(self, path: str | Path) -> tuple[int, int]:
        """How many labels importing ``path`` would change, and how many of those it would replace."""
        session = self.require_session()
        pairs = read_label_file(Path(path), session.collection, skip_unknown=session.config.data.on_error == "skip")
        return count_changes(pairs, session.labels.current(include_unsure=True))

    def import_labels(self, path: str | Path) -> int:
        """Import a label file into the session; returns the number of labels changed."""
        changed = self.require_session().import_labels(path)
        self.queue.refresh(reload_scores=False)
        self.show()
        self.labels_changed.emit()
        return changed

    # -- reviewing ---------------------------------------------------------------------

    @property
    def current(self) -> Candidate | None:
        return self.queue.current if self.queue is not None else None

    def show(self) -> None:
        """Draw the current candidate and gallery; render the next ones while idle."""
        if self.queue is None:
            return
        self.layers.show(self.queue)
        if self.saliency_visible:
            self._show_saliency()
        self.keys.bind_layers(self.layers.review_layers())
        self.candidate_changed.emit(self.queue.current)
        self._follow_on_sky()
        self._schedule_prefetch()

    def _schedule_prefetch(self) -> None:
        from qtpy.QtCore import QTimer

        QTimer.singleShot(1, self._prefetch_one)

    def _prefetch_one(self) -> None:
        """Render one image ahead (the next candidates, then the next gallery page) per idle moment."""
        if self.queue is None:
            return
        size = self.layers.grid.size
        start, _ = self.queue.page(size)
        next_page = self.queue.ranking[start + size:start + 2 * size]
        if self.layers.prefetch(self.queue.upcoming(PREFETCH)) or (
                self.layers.gallery_visible and self.layers.prefetch_tile(next_page)) or (
                self.saliency_visible and self._prefetch_saliency()):
            self._schedule_prefetch()

    def move(self, step: int) -> Candidate | None:
        """Move ``step`` candidates forward (negative: back)."""
        if self.require_queue().move(step):
            self.show()
        return self.current

    def next(self) -> Candidate | None:
        return self.move(1)

    def previous(self) -> Candidate | None:
        return self.move(-1)

    def go_to(self, position: int) -> Candidate | None:
        """Jump to a 0-based place of the review order."""
        if self.require_queue().go_to(position):
            self.show()
        return self.current

    def go_to_last(self) -> Candidate | None:
        """Jump to the last place of the review order."""
        return self.go_to(len(self.require_queue()) - 1)

    def move_page(self, pages: int) -> Candidate | None:
        """Move ``pages`` gallery pages forward (negative: back)."""
        return self.move(pages * self.layers.grid.size)

    def find(self, text: str) -> Candidate | None:
        """Jump to a 1-based rank (``"250"``) or an image id of the review order."""
        if self.require_queue().go_to(self.queue.position_of(text)):
            self.show()
        return self.current

    def label(self, label: int | str) -> Candidate | None:
        """Label the current candidate (``a``, ``n``, ``s`` or a label word); stored at once."""
        self.require_queue().label(label)
        self.show()
        self.labels_changed.emit()
        return self.current

    def edit_tags(self, text: str) -> Candidate | None:
        """Tag the current candidate (``"lens, merger"``; ``-lens`` removes); its label stays."""
        self.require_queue().edit_tags(text)
        self.show()
        self.labels_changed.emit()
        return self.current

    def open_tag_entry(self) -> None:
        """Open the tag entry over the canvas for the current candidate (the ``t`` key)."""
        if self.require_queue().current is None:
            raise ConfigError("no candidate to tag: the review list is empty; change the filter")
        qt_viewer = self.viewer.window._qt_viewer
        if self._tag_entry is None:
            from .tag_entry import TagEntry  # deferred: the controller loads no Qt until the entry is opened

            self._tag_entry = TagEntry(qt_viewer, notify_errors(self.edit_tags), self.keys.focus_canvas)
            self._tag_entry.destroyed.connect(self._forget_tag_entry)  # napari deletes it with its viewer
        self._tag_entry.open(list(self.session.labels.all_tags()), qt_viewer.canvas.native)

    def _forget_tag_entry(self, *_: Any) -> None:
        self._tag_entry = None

    def undo(self) -> Candidate | None:
        """Revert the latest label or tag action and go back to that image."""
        if self.require_queue().undo() is not None:
            self.show()
            self.labels_changed.emit()
        return self.current

    def set_order(self, order: str | None = None, which: str | None = None, known: str | None = None,
                  tag: str | None = None) -> None:
        """Review by ``score``, ``uncertainty`` or ``random``; ``unlabelled``, ``labelled`` or ``all``;
        known objects (of the cross-match) ``show``n, ``hide``den or ``last``; only images with ``tag``
        (``""``: all)."""
        self.require_queue().set_order(order, which, known, tag)
        self.show()

    def crossmatch(self, catalogue: str | Path, radius: str = DEFAULT_RADIUS) -> CrossMatch:
        """Match the images against a catalogue of known objects; the review then shows each verdict."""
        match = crossmatch_session(self.require_session(), catalogue, radius)
        self.refresh()
        return match

    def refresh(self) -> None:
        """Re-read labels and scores and re-rank (keeps the current image)."""
        self.require_queue().refresh()
        self.show()

    def toggle_similar(self) -> bool:
        """Review the images most like the current one (it first), or the ranking again; returns
        whether the similarity order is on (see ``ReviewQueue.toggle_similar``)."""
        similar = self.require_queue().toggle_similar()
        self.show()
        return similar

    def show_index(self, index: int) -> Candidate | None:
        """Show image ``index`` (a point clicked on the map), listing every image if it is not listed."""
        if self.require_queue().show_index(index):
            _warn("the review now lists every image (all labels), so that the image chosen on the map is in it")
        self.show()
        return self.current

    def review_selection(self, indices) -> int:
        """Review only ``indices`` (a selection on the map), from its first; None: every image again."""
        listed = self.require_queue().review_selection(indices)
        self.show()
        return listed

    def label_indices(self, indices, label: int | str) -> int:
        """Label many images in one step (``undo`` reverts them together); returns how many changed."""
        events = self.require_session().label_indices(indices, label)
        self.queue.refresh(reload_scores=False)
        self.show()
        self.labels_changed.emit()
        return len(events)

    def toggle_gallery(self) -> bool:
        """Show or hide the gallery; returns whether it is shown."""
        self.layers.set_gallery_visible(not self.layers.gallery_visible, self.queue)
        return self.layers.gallery_visible

    def click(self, world_position: tuple[float, ...]) -> Candidate | None:
        """Jump to the gallery tile at a world position (no-op elsewhere)."""
        position = self._gallery_position(world_position)
        return None if position is None else self.go_to(position)

    def tile_at(self, world_position: tuple[float, ...]) -> Candidate | None:
        """The candidate of the gallery tile at a world position (None elsewhere): what hovering
        over a tile shows in the status bar, its position on the sky included."""
        position = self._gallery_position(world_position)
        return None if position is None else self.queue.candidate_at(position)

    def hover(self, world_position: tuple[float, ...]) -> Candidate | None:
        """Say which gallery tile the pointer is over (``tile_hovered``) when that changes."""
        candidate = self.tile_at(world_position)
        index = None if candidate is None else candidate.index
        if index != self._hovered_index:
            self._hovered_index = index
            self.tile_hovered.emit(candidate)
        return candidate

    def _gallery_position(self, world_position: tuple[float, ...]) -> int | None:
        slot = self.layers.slot_at(world_position)
        if slot is None or self.queue is None:
            return None
        start, shown = self.queue.page(self.layers.grid.size)
        return start + slot if slot < len(shown) else None

    def toggle_saliency(self) -> bool:
        """Show or hide the current candidate's saliency map over it; returns whether it is shown.

        Raises
        ------
        NotTrainedError
            Before the first training cycle (there is no score to explain).
        SessionError
            While training or scoring runs (the model is changing).
        """
        self.require_queue()
        if not self.saliency_visible:
            self._refuse_while_busy("show the saliency map")
            self.saliency_visible = True
            try:
                self._show_saliency()
            except AnomalyMatchError:
                self.saliency_visible = False
                raise
        else:
            self.saliency_visible = False
            self.layers.hide_saliency()
        return self.saliency_visible

    def _show_saliency(self) -> None:
        """Draw the current candidate's map (none while a run changes the model)."""
        candidate = self.current
        if candidate is None or self.busy:
            self.layers.hide_saliency()
            return
        self.layers.show_saliency(self._saliency_of(candidate.index))
        self.keys.bind_layers(self.layers.review_layers())  # a new layer: its own x would orient planes

    def _saliency_of(self, index: int):
        """The map of image ``index`` by the latest model (kept until a new model or normalisation)."""
        session = self.require_session()
        if self._saliency_cycle != session.cycle:
            self._saliency.clear()
            self._saliency_cycle = session.cycle
        if index not in self._saliency:
            self._saliency[index] = saliency_maps(session, [index])[0]
            while len(self._saliency) > SALIENCY_CACHE:
                self._saliency.popitem(last=False)
        return self._saliency[index]

    def _prefetch_saliency(self) -> bool:
        """Make the map of the first upcoming candidate without one; False when all have one."""
        if self.busy:
            return False
        for index in self.queue.upcoming(PREFETCH):
            if int(index) not in self._saliency or self._saliency_cycle != self.session.cycle:
                self._saliency_of(int(index))
                return True
        return False

    # -- the sky -----------------------------------------------------------------------

    def open_sky(self) -> str:
        """Open the current candidate's position in the web sky viewer of the settings (the ``o`` key);
        returns the address opened.

        Raises
        ------
        ConfigError
            When the candidate's collection gives no RA/Dec (the message says where one comes from).
        """
        import webbrowser

        candidate = self._require_candidate("open on the sky")
        url = sky_url(require_position(candidate.sky, candidate.image_id), self.config.sky.viewer)
        webbrowser.open(url)
        return url

    def set_sky_viewer(self, viewer: str) -> None:
        """Open candidates in ``viewer`` (``SKY_VIEWER_NAMES``) from now on; kept in the session's settings."""
        sky = dataclasses.replace(self.config.sky, viewer=viewer)
        self.defaults = self.defaults.replace(sky=sky)
        if self.session is not None:  # not a training setting: allowed while a run goes
            self.session.update_config(self.session.config.replace(sky=sky))

    def send_to_samp(self, top: int | None = None) -> SentTable:
        """Send the ``top`` best candidates (the settings' ``samp_top``) to TOPCAT/Aladin over SAMP.

        From then on the review points the hub's sky viewers at each candidate shown, and a row
        selected there is shown here.

        Raises
        ------
        SampError
            Without a SAMP hub, or without a client there that loads tables.
        NotTrainedError, IncompleteScoresError
            Without complete scores.
        """
        session = self.require_session()
        if self.samp is None:
            run = self._main_thread.run
            self.samp = SampLink(on_row=lambda image_id: run(lambda: self._on_samp_row(image_id)),
                                 on_problem=lambda message: run(lambda: _warn(message)))
        sent = send_ranking(self.samp, session, top or self.config.sky.samp_top)
        self._follow_on_sky()
        return sent

    def close_samp(self) -> None:
        """Leave the SAMP hub (the review stops following on the sky)."""
        if self.samp is not None:
            self.samp.close()
            self.samp = None

    def _follow_on_sky(self) -> None:
        """Point the hub's sky viewers at the candidate shown, while connected; a hub gone is said once."""
        candidate = self.current
        if self.samp is None or not self.samp.connected or candidate is None or candidate.sky is None:
            return
        try:
            self.samp.point_at(candidate.sky)
        except SampError as err:
            if not self.samp.connected:  # the hub went away: stop following
                self.samp = None
                _warn(f"stopped following on the sky: {err}")
            # else no client points at positions now (Aladin closed): nothing to follow with

    def _on_samp_row(self, image_id: str) -> None:
        """A row selected in TOPCAT/Aladin: show that candidate (in the GUI thread)."""
        notify_errors(self.find)(image_id)

    # -- display -----------------------------------------------------------------------

    def set_display(self, settings: DisplaySettings) -> None:
        """Draw with new display settings (never changes what the model sees)."""
        self.display = settings
        if self.session is not None:
            self.layers.set_renderer(self._renderer())
            self.show()
            self._save_review_state()
        self.display_changed.emit(settings)

    def preview_normalisation(self, normalisation: NormalisationConfig | None) -> None:
        """Show the candidates with another normalisation until it is applied or cleared."""
        self._preview = normalisation
        self.set_display(self.display)

    def apply_normalisation(self, normalisation: NormalisationConfig) -> None:
        """Make ``normalisation`` the session's (what the model sees from the next cycle on)."""
        self._refuse_while_busy("change the normalisation")
        session = self.require_session()
        session.update_config(session.config.replace(
            data=dataclasses.replace(session.config.data, normalisation=normalisation)))
        self._preview = None
        self._saliency.clear()  # the model sees the images otherwise now
        self._attach_layers()
        self.show()
        self.session_changed.emit(session)

    def _renderer(self) -> DisplayRenderer:
        session = self.require_session()
        normaliser = session.normaliser
        if self._preview is not None:
            normaliser = Normaliser(self._preview, normaliser.value_range)
        return DisplayRenderer(self.display, normaliser, session.collection.shape[2])

    # -- training and scoring ----------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def train_cycle(self, iterations: int | None = None, score: bool = True):
        """Start a training cycle (then scoring) in a worker thread; returns the worker.

        Raises
        ------
        ConfigError
            Without at least one anomaly and one normal label.
        """
        self.require_session().check_trainable()  # here, not in the worker: the caller hears of it
        return self._start(train=True, score=score, iterations=iterations)

    def score(self):
        """Score the collection with the latest model in a worker thread; returns the worker."""
        return self._start(train=False, score=True)

    def score_unsupervised(self, method: str = DEFAULT_NOVELTY_METHOD):
        """Rank the collection without labels (``Session.score_unsupervised``) in a worker thread."""
        check_novelty_method(method)
        return self._start(train=False, score=True, unsupervised=method)

    def _start(self, train: bool, score: bool, iterations: int | None = None, unsupervised: str | None = None):
        session = self.require_session()
        self._refuse_while_busy("start another run")
        if self.embedding_map.busy:  # UMAP cannot be stopped; the two would share the CPU
            raise SessionError("the embedding map is being computed; start the run when it is done")
        avoid_triton_llvm_clash()  # before the worker imports the model stack
        self.layers.hide_saliency()  # the model changes: the map comes back by the new one
        return self.runner.start(session, train=train, score=score, iterations=iterations,
                                 unsupervised=unsupervised)

    def stop(self, wait: bool = False) -> None:
        """Ask the running worker to stop after its current iteration or batch."""
        self.runner.stop()
        if wait:
            self.wait()

    def wait(self, timeout_ms: int = 600_000) -> None:
        """Process Qt events until the running worker has finished."""
        self.runner.wait(timeout_ms)

    def _on_outcome(self, outcome: RunOutcome) -> None:
        from napari.utils.notifications import show_error, show_info

        if outcome.error:
            show_error(outcome.error)
        elif outcome.stopped:
            show_info(f"stopped; the model of cycle {self.session.cycle} is saved")
        if outcome.score_result is not None and self.queue is not None:
            self.queue.refresh(reload_scores=True)
            if not self.keep_place:
                self.queue.go_to(0)  # the new ranking's top is what the user wants to see next
            self.show()
        self.run_finished.emit(outcome)

    def _on_busy(self, busy: bool) -> None:
        if not busy and self.saliency_visible and self.queue is not None:
            self._show_saliency()  # hidden during the run; now by the new model
        self.busy_changed.emit(busy)

    # -- results -----------------------------------------------------------------------

    def export(self, path: str | Path, top: int | None = None) -> Path:
        """Write the ranking with every label (csv, ecsv, fits, xml/vot, parquet)."""
        return export_session(self.require_session(), path, top=top)

    def set_stop_rate(self, images_per_anomaly: int) -> None:
        """Suggest stopping below 1 anomaly in ``images_per_anomaly`` of the next images."""
        self.stop_rate = int(images_per_anomaly)
        self.stop_rate_changed.emit(self.stop_rate)

    def discovery(self) -> DiscoveryState:
        """The session's discovery curve, the estimate of what remains and the stop suggestion
        at the rate the Review panel sets (``stop_rate``: 1 anomaly in that many images)."""
        return discovery_state(self.require_session(), self.stop_rate)

    def load_test_set(self, path: str | Path) -> TestSet:
        """Read a held-out test set (id or path, and is_anomaly/label columns)."""
        self.test_set = read_test_set(path, self.require_session().collection)
        self._save_review_state()
        self.test_set_changed.emit(self.test_set)
        return self.test_set

    def use_source_truth(self) -> TestSet:
        """Measure on the truth the data source carries: a manifest's or the FIRST sample's is_anomaly."""
        return self.load_test_set(SOURCE_TRUTH)

    def test_report(self) -> TestReport | None:
        """The test set's metrics and curves for the current scores, or None without both."""
        if self.test_set is None or self.queue is None or self.queue.scores_cycle is None:
            return None
        training, _ = self.require_session().labelled()
        return evaluate_test_set(self.queue.scores, self.test_set, training)

    # -- helpers -----------------------------------------------------------------------

    def require_session(self) -> Session:
        if self.session is None:
            raise SessionError("no session open: choose a session folder and a data source first")
        return self.session

    def require_queue(self) -> ReviewQueue:
        self.require_session()
        return self.queue

    def _require_candidate(self, action: str) -> Candidate:
        candidate = self.require_queue().current
        if candidate is None:
            raise ConfigError(f"no candidate to {action}: the review list is empty; change the filter")
        return candidate

    def _refuse_while_busy(self, action: str) -> None:
        if self.busy:
            raise SessionError(f"cannot {action} while training or scoring runs; press Stop first")

    @property
    def candidate_layer(self):
        """The layer showing the current candidate (None before a session is open)."""
        found = [layer for layer in self.viewer.layers if layer.name == CANDIDATE_LAYER]
        return found[0] if found else None


def _warn(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


PREFETCH = 6
SALIENCY_CACHE = 256  # maps kept: 4 MiB at 64 px
