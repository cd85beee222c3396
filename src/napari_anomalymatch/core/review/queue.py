"""Reviewing ranked candidates: the review order, a cursor through it, and labelling.

``ReviewQueue`` holds a snapshot of the session's ranking (``score``: most
anomalous first, ``uncertainty``: closest to the decision boundary first,
``random``, or ``diverse``: the top candidates spread over their embeddings;
restricted to ``unlabelled``, ``labelled`` or ``all`` images; with a cross-match,
known objects shown, hidden or put last: ``KNOWN``; or only the images with one
tag, or only a selection made on the embedding map), or, for "more like this",
the images most similar to one candidate (``toggle_similar``; it stays first).
Labelling an image keeps it in its place, so stepping back and forth stays
predictable; ``refresh`` re-ranks after new scores or another order.  Every
label goes straight to the session's label store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, LabelError, NoEmbeddingsError, UnknownIdError
from ..labels import LABEL_NAMES, UNLABELED, LabelEvent, ReviewPlace, parse_label, parse_tag_edits
from ..scoring.orders import get_order, rank
from ..session import FILTERS, Session
from .crossmatch import CrossMatch, read_crossmatch
from .sky import SkyPosition, sky_position

KEY_LABELS = {"a": "anomaly", "n": "normal", "s": "unsure"}
KNOWN = ("show", "hide", "last")  # what the review does with images the cross-match calls known
SIMILAR_REVIEW_TOP = 2000  # images the "more like this" order lists after its query image
CAPTION_ID_CHARACTERS = 40  # about 450 px of canvas text: the view is that narrow at 1280x800
POSITIONS_KEPT = 4096  # sky positions remembered (a FITS cutout's is read from its header)


@dataclass(frozen=True)
class Candidate:
    """The image at one place of the review order."""

    position: int
    total: int
    index: int
    image_id: str
    score: float
    label: int
    known: str | None = None  # the cross-match's verdict in words; None without a cross-match
    tags: tuple[str, ...] = ()
    sky: SkyPosition | None = None  # where it lies on the sky; None when the collection does not say

    @property
    def rank(self) -> int:
        """1-based place in the review order."""
        return self.position + 1

    def describe(self) -> str:
        """One line for a status bar: rank, id, score and label."""
        line = f"{self.rank}/{self.total}  {self.image_id}  {self._score_text()}  {self._label_name()}"
        if self.sky is not None:
            line += f"  {self.sky.describe()}"
        if self.tags:
            line += f"  {self.tags_text()}"
        return line if self.known is None else f"{line}  {self.known}"

    def tags_text(self) -> str:
        """``tags: arc, lens`` ('' without tags)."""
        return f"tags: {', '.join(self.tags)}" if self.tags else ""

    def caption(self, id_characters: int = CAPTION_ID_CHARACTERS) -> str:
        """Two short lines for a narrow view: rank, score and label, then the id shortened in the middle
        (then the position in hours and degrees, and the tags, when there are any)."""
        text = (f"{self.rank}/{self.total}  {self._score_text()}  {self._label_name()}\n"
                f"{shorten_middle(self.image_id, id_characters)}")
        if self.sky is not None:
            text += f"\n{self.sky.sexagesimal()}"
        return f"{text}\n{shorten_middle(self.tags_text(), id_characters)}" if self.tags else text

    def _score_text(self) -> str:
        return "not scored" if math.isnan(self.score) else f"score {self.score:.4f}"

    def _label_name(self) -> str:
        return LABEL_NAMES[self.label]


def shorten_middle(text: str, characters: int) -> str:
    """``text`` cut to ``characters`` by an ellipsis in the middle (the end of a path says the most)."""
    if len(text) <= characters:
        return text
    head = max(1, (characters - 1) // 3)
    return f"{text[:head]}…{text[len(text) - (characters - 1 - head):]}"


class ReviewQueue:
    """A cursor through ranked candidates of a session.

    Parameters
    ----------
    session
        The session whose images, scores and labels are reviewed.
    order, which
        See ``Session.ranking``.
    seed
        Seed of the ``random`` order.
    advance_on_label
        Move to the next candidate after each label (the fast path for review).
    known
        With a cross-match: ``show`` known objects in their place, ``hide`` them, or put
        them ``last`` (the not yet known first).
    tag
        Only the images with this tag (``""``: every image).
    """

    def __init__(self, session: Session, order: str = "score", which: str = "unlabelled",
                 seed: int = 0, advance_on_label: bool = True, known: str = "show", tag: str = "") -> None:
        _check_order(order, which, known)
        self.session = session
        self.order = order
        self.which = which
        self.known = known
        self.tag = tag
        self.crossmatch: CrossMatch | None = None
        self._tags: dict[str, tuple[str, ...]] = {}
        self._positions: dict[int, SkyPosition | None] = {}
        self.seed = seed
        self.advance_on_label = advance_on_label
        self.scores = np.zeros(0, dtype=np.float32)
        self.scores_cycle: int | None = None
        self.scores_notice: str | None = None  # set when a newer score run is incomplete
        self.ranking = np.zeros(0, dtype=np.int64)
        self.position = 0
        self._labels: dict[str, int] = {}
        self.similar_to: int | None = None  # the image whose look-alikes are listed (None: the ranking)
        self._similar = np.zeros(0, dtype=np.int64)
        self.selection: np.ndarray | None = None  # only these images (a selection on the map); None: all
        self.diverse_fallback = False  # the diverse order is asked for but no run stored embeddings
        self.refresh()

    # -- the order -------------------------------------------------------------------

    def refresh(self, reload_scores: bool = True) -> None:
        """Re-read labels (and scores) and re-rank, staying on the current image if it is still listed."""
        keep = int(self.ranking[self.position]) if len(self.ranking) else None
        n = len(self.session.collection)
        self._labels = dict(self.session.labels.current(include_unsure=True))
        self._tags = self.session.labels.tagged()
        if reload_scores or len(self.scores) != n:
            found = self.session.runs.scores()  # complete runs only
            self.scores_notice = self.session.runs.notice()
            self.scores_cycle, self.scores = found if found else (None, np.full(n, np.nan, np.float32))
            self.crossmatch = read_crossmatch(self.session)
        if self.crossmatch is None:
            self.known = "show"  # the match is gone (or was made for another source)
        candidates = self._candidates(n)
        if self.similar_to is not None:
            self.ranking = self._similar_ranking(candidates)
        else:
            if self.selection is not None:
                candidates = candidates[np.isin(candidates, self.selection)]
            self.ranking = self._known_last(self._rank(candidates))
        listed = np.flatnonzero(self.ranking == keep) if keep is not None else np.zeros(0)
        if listed.size:
            self.position = int(listed[0])
        else:
            self.position = min(self.position, max(len(self.ranking) - 1, 0))

    def _rank(self, candidates: np.ndarray) -> np.ndarray:
        """``candidates`` in the review order; ``diverse`` falls back to ``score`` (said by
        ``describe_order``) while no score run has stored embeddings."""
        order, embeddings_of = self.order, None
        if get_order(order).needs_embeddings:
            try:
                embeddings_of = self.session.runs.stored_embeddings()
            except NoEmbeddingsError:
                order = "score"
        self.diverse_fallback = order != self.order
        return rank(self.scores, candidates, order, self.seed, embeddings_of)

    def set_order(self, order: str | None = None, which: str | None = None, known: str | None = None,
                  tag: str | None = None) -> None:
        """Change the order, the filter, what is done with known objects and/or the tag shown
        (None keeps each; ``tag=""`` shows every image again), then re-rank."""
        order = order or self.order
        which = which or self.which
        known = known or self.known
        _check_order(order, which, known)
        self._check_known(known)
        if get_order(order).needs_embeddings and not get_order(self.order).needs_embeddings:
            self.session.runs.stored_embeddings()  # raises NoEmbeddingsError, saying what to do
        tag = self.tag if tag is None else tag.strip()
        if tag:
            self._check_tag(tag)
        self.order, self.which, self.known, self.tag = order, which, known, tag
        self.refresh(reload_scores=False)

    def toggle_similar(self) -> bool:
        """List the images most like the current candidate (cosine similarity of the stored
        embeddings, ``Session.similar``), it first, or go back to the ranked order; returns
        whether the similarity order is on.  Labelling works as in any order.

        Raises
        ------
        ConfigError
            Nothing is listed to start from.
        NoEmbeddingsError
            No score run stored embeddings yet.
        """
        if self.similar_to is not None:
            self.similar_to, self._similar = None, np.zeros(0, dtype=np.int64)
            self.refresh(reload_scores=False)
            return False
        self.selection = None
        candidate = self.current
        if candidate is None:
            raise ConfigError("no candidate to find look-alikes of: the review list is empty; change the filter")
        found = self.session.similar([candidate.index], top=SIMILAR_REVIEW_TOP)
        self.similar_to, self._similar = candidate.index, found.indices
        self.refresh(reload_scores=False)
        self.position = 0
        return True

    def describe_order(self) -> str:
        """What the list is, for the panel: ``score, unlabelled``, ``look-alikes of ID, all`` or
        ``326 selected on the map by score, all``."""
        if self.similar_to is not None:
            return f"look-alikes of {self.session.collection.id_of(self.similar_to)}, {self.which}"
        order = "diverse (score until a score run stores embeddings)" if self.diverse_fallback else self.order
        if self.selection is not None:
            return f"{len(self.selection):,} selected on the map by {order}, {self.which}"
        return f"{order}, {self.which}"

    def review_selection(self, indices: Sequence[int] | np.ndarray | None) -> int:
        """Review only ``indices`` (a selection on the embedding map), in the current order and
        filter, from its first; None: every image again.  Returns how many are listed."""
        self.similar_to, self._similar = None, np.zeros(0, dtype=np.int64)
        self.selection = None if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
        self.refresh(reload_scores=False)
        self.position = 0
        return len(self.ranking)

    def show_index(self, index: int) -> bool:
        """Put the cursor on image ``index``, widening the list to every image (all labels, no
        selection, tag or look-alikes) when it is not listed; returns whether it was widened."""
        widened = not np.any(self.ranking == index)
        if widened:
            self.similar_to, self._similar, self.selection, self.tag = None, np.zeros(0, np.int64), None, ""
            self.which, self.known = "all", "show"
            self.refresh(reload_scores=False)
        self.position = int(np.flatnonzero(self.ranking == index)[0])
        return widened

    def _similar_ranking(self, candidates: np.ndarray) -> np.ndarray:
        """The query image, then its look-alikes among ``candidates`` (the filter still applies)."""
        alike = self._similar[np.isin(self._similar, candidates)]
        return np.concatenate([[self.similar_to], alike]).astype(np.int64)

    def _check_tag(self, tag: str) -> None:
        in_use = self.session.labels.all_tags()
        if tag not in in_use:
            raise LabelError(f"no image has the tag {tag!r}; tags in use: {', '.join(in_use) or 'none yet'}")

    def _check_known(self, known: str) -> None:
        if known != "show" and self.crossmatch is None:
            raise ConfigError(f"cannot {known} known objects: the session has no cross-match yet; run "
                              f"'anomalymatch crossmatch {self.session.path} CATALOGUE' first")

    def _candidates(self, n: int) -> np.ndarray:
        if self.which == "all" or not self._labels:
            found = np.arange(n) if self.which != "labelled" else np.zeros(0, dtype=np.int64)
        else:
            labelled = np.zeros(n, dtype=bool)
            labelled[self.session.collection.indices_of(list(self._labels))] = True
            found = np.flatnonzero(labelled if self.which == "labelled" else ~labelled)
        if self.known == "hide" and self.crossmatch is not None:
            found = found[~self.crossmatch.known[found]]
        if self.tag:
            tagged = np.zeros(n, dtype=bool)
            with_tag = [image_id for image_id, tags in self._tags.items() if self.tag in tags]
            tagged[self.session.collection.indices_of(with_tag)] = True
            found = found[tagged[found]]
        return found

    def _known_last(self, ranking: np.ndarray) -> np.ndarray:
        if self.known != "last" or self.crossmatch is None:
            return ranking
        return ranking[np.argsort(self.crossmatch.known[ranking], kind="stable")]  # else in rank order

    # -- the cursor ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ranking)

    @property
    def current(self) -> Candidate | None:
        """The candidate under the cursor, or None when nothing is listed."""
        return self.candidate_at(self.position) if len(self.ranking) else None

    def candidate_at(self, position: int) -> Candidate:
        index = int(self.ranking[position])
        image_id = self.session.collection.id_of(index)
        known = self.crossmatch.describe(index) if self.crossmatch is not None else None
        return Candidate(position, len(self.ranking), index, image_id, float(self.scores[index]),
                         self._labels.get(image_id, UNLABELED), known, self._tags.get(image_id, ()),
                         self.sky_position_of(index))

    def sky_position_of(self, index: int) -> SkyPosition | None:
        """Image ``index``'s position on the sky (remembered: the cursor passes the same images often)."""
        if index not in self._positions:
            if len(self._positions) >= POSITIONS_KEPT:
                self._positions.clear()
            self._positions[index] = sky_position(self.session.collection, index)
        return self._positions[index]

    def move(self, step: int) -> bool:
        """Move ``step`` places (clipped to the list); True when the cursor moved."""
        return self.go_to(self.position + step)

    def go_to(self, position: int) -> bool:
        """Move to ``position`` (clipped); True when the cursor moved."""
        target = int(np.clip(position, 0, max(len(self.ranking) - 1, 0)))
        moved = target != self.position
        self.position = target
        return moved

    def position_of(self, text: str) -> int:
        """The 0-based place of a 1-based rank (``"250"``) or of an image id in the review order.

        Raises
        ------
        ConfigError
            For a rank outside the list, or an image that this order/filter does not list.
        UnknownIdError
            For an id the collection does not hold.
        """
        text = str(text).strip()
        if text.isdigit() and not self._is_id(text):
            rank = int(text)
            if not 1 <= rank <= len(self.ranking):
                raise ConfigError(f"rank {rank} is outside the review list (1 to {len(self.ranking)})")
            return rank - 1
        index = self.session.collection.index_of(text)
        listed = np.flatnonzero(self.ranking == index)
        if not listed.size:
            raise ConfigError(f"image {text!r} is not in this list ({self.order}, {self.which}); "
                              "show 'all' to find it")
        return int(listed[0])

    def _is_id(self, text: str) -> bool:
        try:
            self.session.collection.index_of(text)
        except UnknownIdError:
            return False
        return True

    def page(self, size: int) -> tuple[int, np.ndarray]:
        """The first position and the indices of the page of ``size`` holding the cursor."""
        start = (self.position // size) * size
        return start, self.ranking[start:start + size]

    def upcoming(self, count: int) -> np.ndarray:
        """Indices of the next ``count`` candidates after the cursor (for prefetching)."""
        return self.ranking[self.position + 1:self.position + 1 + count]

    # -- labels ----------------------------------------------------------------------

    def label_of(self, index: int) -> int:
        return self._labels.get(self.session.collection.id_of(int(index)), UNLABELED)

    def labels_of(self, indices: Sequence[int] | np.ndarray) -> list[int]:
        return [self.label_of(int(i)) for i in indices]

    def tags_of(self, indices: Sequence[int] | np.ndarray) -> list[tuple[str, ...]]:
        """The tags of each of ``indices`` (for the gallery)."""
        return [self._tags.get(self.session.collection.id_of(int(i)), ()) for i in indices]

    def add_tags(self, tags: str | list[str]) -> list[LabelEvent]:
        """Tag the current candidate (``"lens, merger"``); the cursor stays and the label is untouched."""
        return self._edit_tags(tags, ())

    def remove_tags(self, tags: str | list[str]) -> list[LabelEvent]:
        """Take tags from the current candidate."""
        return self._edit_tags((), tags)

    def edit_tags(self, text: str) -> list[LabelEvent]:
        """Apply a typed tag line to the current candidate: ``"lens, -merger"`` (see ``parse_tag_edits``)."""
        return self._edit_tags(*parse_tag_edits(text))

    def _edit_tags(self, add: str | list[str] | tuple, remove: str | list[str] | tuple) -> list[LabelEvent]:
        candidate = self.current
        if candidate is None:
            raise ConfigError("no candidate to tag: the review list is empty; change the filter")
        events = self.session.edit_tags(candidate.image_id, add, remove)
        self._tags = self.session.labels.tagged()
        return events

    def label(self, label: int | str) -> LabelEvent | None:
        """Label the current candidate (``a``/``n``/``s`` or any label word) and store it at once.

        Returns the stored event (None when the label did not change).  With
        ``advance_on_label`` the cursor then moves to the next candidate.
        """
        candidate = self.current
        if candidate is None:
            raise ConfigError("no candidate to label: the review list is empty; change the filter")
        code = parse_label(KEY_LABELS.get(label, label) if isinstance(label, str) else label)
        event = self.session.label_index(candidate.index, code, review=self._place(candidate))
        self._labels[candidate.image_id] = code
        if self.advance_on_label:
            self.move(1)
        return event

    def _place(self, candidate: Candidate) -> ReviewPlace:
        """Where ``candidate`` stands: its rank, score and the order, qualified when the list is not
        the whole unlabelled ranking (only then are the labels a draw by score, or a random one)."""
        order = "similar" if self.similar_to is not None else "score" if self.diverse_fallback else self.order
        narrowed = [f"which={self.which}"] if self.which != "unlabelled" else []
        narrowed += ["selection"] if self.selection is not None else []
        narrowed += [f"tag={self.tag}"] if self.tag else []
        narrowed += [f"known={self.known}"] if self.known != "show" else []
        return ReviewPlace(candidate.rank, candidate.score, ":".join([order, *narrowed]))

    def undo(self) -> LabelEvent | None:
        """Revert the latest label change and move to that image when it is listed."""
        event = self.session.undo()
        if event is None:
            return None
        self._labels = dict(self.session.labels.current(include_unsure=True))  # an import reverts many
        self._tags = self.session.labels.tagged()
        index = self.session.collection.index_of(event.image_id)
        listed = np.flatnonzero(self.ranking == index)
        if listed.size:
            self.position = int(listed[0])
        return event


def _check_order(order: str, which: str, known: str = "show") -> None:
    get_order(order)
    if which not in FILTERS:
        raise ConfigError(f"review filter must be one of {list(FILTERS)}; got {which!r}")
    if known not in KNOWN:
        raise ConfigError(f"what to do with known objects must be one of {list(KNOWN)}; got {known!r}")
