"""The Review panel: the current candidate, order and filter, label buttons, export, the keys.

The keys (bound on the viewer while a session is open) do the same as the
buttons; both call the controller, which writes every label to the session
store at once.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, PushButton
from qtpy.QtWidgets import QTabWidget

from ..core.config import SKY_VIEWER_NAMES
from ..core.errors import ConfigError
from ..core.labels import LABEL_NAMES
from ..core.review.crossmatch import DEFAULT_RADIUS
from ..core.review.queue import KNOWN
from ..core.scoring.orders import order_names
from ..core.session import FILTERS
from .compact import compact_combo_boxes, compact_file_edit, pack_to_top, status_label
from .data_widget import text_of
from .keys import REVIEW_KEYS
from .notifications import notify_errors

if TYPE_CHECKING:
    from ..core.review.discovery import DiscoveryState
    from ..core.review.queue import Candidate
    from .controller import AnomalyMatchController

ANY_TAG = "(any)"
KEY_NAMES = {"Right": "→", "Left": "←", "PageDown": "PgDn", "PageUp": "PgUp", "Backspace": "⌫"}


class ReviewWidget(Container):
    """Step through ranked candidates and label them."""

    def __init__(self, controller: AnomalyMatchController) -> None:
        super().__init__(labels=False)
        self.controller = controller
        self.candidate = status_label("no session open")
        self.counts = status_label()
        self.hovered = status_label()  # the gallery tile under the pointer, with its RA/Dec
        # shown only when the next reviews are no longer worth it (the rate, the estimate: Metrics panel),
        # so the labelling actions stay in view at 1280 x 800 until then
        self.stop = status_label()
        self.stop.visible = False
        self.order = ComboBox(choices=list(order_names()), value="score", label="Order")
        self.which = ComboBox(choices=list(FILTERS), value="unlabelled", label="Show")
        self.tag = ComboBox(choices=[ANY_TAG], value=ANY_TAG, label="Tag",
                            tooltip="only the images with this tag (tag the candidate with t)")
        self.known = ComboBox(choices=list(KNOWN), value="show", label="Known objects",
                              tooltip="after a cross-match: show the known ones, hide them, or put them last")
        self.catalogue = compact_file_edit(FileEdit(mode="r", label="Known catalogue",
                                                    filter="*.fits *.fit *.ecsv *.csv *.xml *.vot *.parquet"))
        self.radius = LineEdit(value=DEFAULT_RADIUS, label="Radius", tooltip="with its unit: 3arcsec, 0.001deg")
        self.match_button = PushButton(text="Cross-match")
        self.sky_viewer = ComboBox(choices=list(SKY_VIEWER_NAMES), value=controller.config.sky.viewer,
                                   label="Sky viewer", tooltip="where Sky (o) opens the candidate in the browser")
        self.samp_button = PushButton(text="Send to SAMP", tooltip=(
            "send the top candidates to TOPCAT/Aladin; then Aladin follows the review, and a row "
            "selected there is shown here"))
        self.advance = CheckBox(value=True, text="Next candidate after each label")
        self.keep_place = CheckBox(value=False, text="Stay on this image after new scores",
                                   tooltip="otherwise the review starts again at rank 1 of the new ranking")
        self.go_to = LineEdit(label="Go to rank or id", tooltip="a rank (1 is the top) or an image id; Enter jumps")
        self.go_button = PushButton(text="Go")
        self.go_to.native.setPlaceholderText("go to rank (1 = top) or image id")
        buttons = {
            "first": ("⇤ First (Home)", lambda: controller.go_to(0)),
            "last": ("Last (End) ⇥", lambda: controller.go_to_last()),
            "previous": ("← Previous", lambda: controller.previous()),
            "next": ("Next →", lambda: controller.next()),
            "anomaly": ("Anomaly (a)", lambda: controller.label("a")),
            "normal": ("Normal (n)", lambda: controller.label("n")),
            "unsure": ("Skip / unsure (s)", lambda: controller.label("s")),
            "undo": ("Undo (z)", lambda: controller.undo()),
            "tag": ("Tag… (t)", lambda: controller.open_tag_entry()),
            "gallery": ("Gallery (g)", lambda: controller.toggle_gallery()),
            "saliency": ("Saliency (x)", lambda: controller.toggle_saliency()),
            "sky": ("Sky (o)", lambda: controller.open_sky()),
            "retrain": ("Retrain (r)", lambda: controller.train_cycle()),
            "similar": ("More like this (f)", lambda: controller.toggle_similar()),
        }
        self.buttons = {}
        for name, (text, action) in buttons.items():
            button = PushButton(text=text)
            button.changed.connect(notify_errors(lambda *_, act=action: act()))
            self.buttons[name] = button
        self.export_file = compact_file_edit(FileEdit(mode="w", filter="*.csv *.ecsv *.fits *.xml *.parquet",
                                                      label="Export to"))
        self.export_button = PushButton(text="Export labels and scores")
        self.keys_help = Label(value=keys_table())
        rows = [("first", "last"), ("previous", "next"), ("anomaly", "normal"), ("unsure", "undo"),
                ("tag", "gallery"), ("saliency", "retrain"), ("similar",)]
        self.extend([self.candidate, self.counts, self.stop, self.hovered,
                     *[row(*[self.buttons[name] for name in names]) for names in rows]])
        # the labelling actions always in view; the rest in sections (at 1280 x 800 nothing scrolls)
        self._sections = {title: tight(Container(widgets=items, labels=False)) for title, items in {
            "Order": [tight(Container(widgets=[self.order, self.which, self.tag], labels=True)),
                      self.advance, self.keep_place, row(self.go_to, self.go_button)],
            "Export": [tight(Container(widgets=[self.export_file], labels=True)), self.export_button],
            "Known, sky": [tight(Container(widgets=[self.known, self.catalogue, self.radius, self.sky_viewer],
                                            labels=True)),
                            row(self.match_button, self.buttons["sky"], self.samp_button)],
            "Keys": [self.keys_help],
        }.items()}
        self.sections = QTabWidget()
        for title, section in self._sections.items():
            pack_to_top(section)
            self.sections.addTab(section.native, title)
        self.native.layout().addWidget(self.sections)
        for section in (self, *self._sections.values()):
            compact_combo_boxes(section)
        self.order.changed.connect(notify_errors(self._on_order_changed))
        self.which.changed.connect(notify_errors(self._on_order_changed))
        self.known.changed.connect(notify_errors(self._on_order_changed))
        self.tag.changed.connect(notify_errors(self._on_order_changed))
        self.match_button.changed.connect(notify_errors(self._on_crossmatch))
        self.sky_viewer.changed.connect(notify_errors(self._on_sky_viewer_changed))
        self.samp_button.changed.connect(notify_errors(self._on_send_to_samp))
        self.advance.changed.connect(self._on_advance_changed)
        self.keep_place.changed.connect(self._on_keep_place_changed)
        self.go_button.changed.connect(notify_errors(self._on_go_to))
        self.go_to.native.returnPressed.connect(notify_errors(self._on_go_to))
        self.export_button.changed.connect(notify_errors(self._on_export))
        controller.candidate_changed.connect(self._on_candidate_changed)
        controller.tile_hovered.connect(self._on_tile_hovered)
        controller.labels_changed.connect(self._show_counts)
        controller.discovery_watch.changed.connect(self._show_stop)
        controller.session_changed.connect(self._on_session_changed)

    def _on_order_changed(self, *_: Any) -> None:
        if self.controller.session is not None:
            tag = "" if self.tag.value == ANY_TAG else self.tag.value
            try:
                self.controller.set_order(self.order.value, self.which.value, self.known.value, tag)
            finally:  # a refused choice (diverse before any embeddings, say) shows the order kept
                self._show_order(self.controller.queue)

    def _show_stop(self, state: DiscoveryState | None) -> None:
        """The stop suggestion of the core, or why there is none yet."""
        if state is None:
            self.stop.value, self.stop.visible = "", False
            return
        advised = state.stop is not None and state.stop.stop
        self.stop.value = (f"<b>{escape(state.stop.text)}</b>" if advised
                           else escape(state.stop.text) if state.stop is not None
                           else f"Stop suggestion: not yet ({escape(state.not_estimated or '')})")
        self.stop.visible = advised

    def _on_advance_changed(self, value: bool) -> None:
        if self.controller.queue is not None:
            self.controller.queue.advance_on_label = bool(value)

    def _on_keep_place_changed(self, value: bool) -> None:
        self.controller.keep_place = bool(value)

    def _on_go_to(self, *_: Any) -> None:
        text = self.go_to.value.strip()
        if not text:
            raise ConfigError("type a rank (1 is the top) or an image id to go to")
        self.controller.find(text)

    def _on_export(self, *_: Any) -> None:
        path = text_of(self.export_file)
        if not path:
            raise ConfigError("choose a file to export to (.csv, .ecsv, .fits, .xml or .parquet)")
        written = self.controller.export(path)
        from napari.utils.notifications import show_info

        show_info(f"ranking written to {written}")

    def _on_crossmatch(self, *_: Any) -> None:
        path = text_of(self.catalogue)
        if not path:
            raise ConfigError("choose a catalogue of known objects (FITS, ECSV, CSV, VOTable) with RA/Dec columns")
        match = self.controller.crossmatch(path, self.radius.value)
        from napari.utils.notifications import show_info

        show_info(match.summary())

    def _on_sky_viewer_changed(self, viewer: str) -> None:
        self.controller.set_sky_viewer(viewer)

    def _on_send_to_samp(self, *_: Any) -> None:
        sent = self.controller.send_to_samp()
        from napari.utils.notifications import show_info

        show_info(f"sent the top {len(sent.ids)} candidates to {', '.join(sent.recipients)}")

    def _on_candidate_changed(self, candidate: Candidate | None) -> None:
        if candidate is None:
            self.candidate.value = "no candidates in this list"
            return
        queue = self.controller.queue
        self._show_order(queue)
        if queue.scores_cycle is None:
            scored = "not scored yet"
        elif queue.scores_cycle == 0:  # only the ranking without labels is stored before cycle 1
            scored = "unsupervised ranking: label a few anomalies, then train"
        else:
            scored = f"scores of cycle {queue.scores_cycle}"
        score = "no score yet" if math.isnan(candidate.score) else f"score {candidate.score:.4f}"
        if queue.scores_notice:
            scored += f"; <b>{queue.scores_notice}</b>"
        extra = f"<br>{escape(candidate.sky.describe())}" if candidate.sky is not None else ""
        extra += f"<br>{escape(candidate.known)}" if candidate.known is not None else ""
        if candidate.tags:
            extra += f"<br>{escape(candidate.tags_text())}"
        self.candidate.value = (f"<b>{candidate.rank} / {candidate.total}</b> ({escape(queue.describe_order())}; "
                                f"{scored})<br>{candidate.image_id}<br>{score} · {LABEL_NAMES[candidate.label]}"
                                f"{extra}")

    def _on_tile_hovered(self, candidate: Any) -> None:
        self.hovered.value = "" if candidate is None else f"pointer: {escape(candidate.describe())}"

    def _on_session_changed(self, session: Any) -> None:
        self._show_stop(self.controller.discovery_watch.state)
        if session is None:
            self.candidate.value = "no session open"
            return
        queue = self.controller.queue
        self._show_order(queue)
        queue.advance_on_label = bool(self.advance.value)
        with self.sky_viewer.changed.blocked():
            self.sky_viewer.value = session.config.sky.viewer
        self._show_counts()

    def _show_order(self, queue: Any) -> None:
        """Show the queue's order and filter (they may have been set from a script)."""
        self._show_tags_in_use(queue)
        for widget, value in ((self.order, queue.order), (self.which, queue.which), (self.known, queue.known),
                              (self.tag, queue.tag or ANY_TAG)):
            if widget.value != value:
                with widget.changed.blocked():
                    widget.value = value

    def _show_tags_in_use(self, queue: Any) -> None:
        """Offer every tag in use (and the one shown, even if no image has it any more)."""
        tags = [ANY_TAG, *self.controller.session.labels.all_tags()]
        if queue.tag and queue.tag not in tags:
            tags.append(queue.tag)
        if list(self.tag.choices) != tags:
            with self.tag.changed.blocked():
                self.tag.choices = tags

    def _show_counts(self, *_: Any) -> None:
        session = self.controller.session
        if session is not None:
            counts = session.labels.counts()
            self.counts.value = "labelled: " + ", ".join(f"{n} {name}" for name, n in counts.items())


def tight(container: Container) -> Container:
    """A container without margins: a panel of nested rows spends no height on them."""
    container.margins = (0, 0, 0, 0)
    return container


def row(*widgets: Any) -> Container:
    """Widgets side by side, without margins."""
    return tight(Container(widgets=list(widgets), layout="horizontal", labels=False))


def keys_table() -> str:
    """The review keys as a small HTML table."""
    rows = "".join(f"<tr><td><b>{KEY_NAMES.get(key, key)}</b></td><td>{what}</td></tr>"
                   for key, (what, _, _) in REVIEW_KEYS.items())
    return f"<table>{rows}<tr><td><b>click</b></td><td>a gallery tile jumps to it</td></tr></table>"
