"""The discovery curve of a session, what is left to find and when to stop reviewing.

The curve comes from the label store's history: every image in the order it was first labelled
(across cycles), counted as found when its label now is ``anomaly`` (a label corrected later
counts as it is now; an undone one not at all). The estimate of what remains calibrates the
newest scores on the labels given in a ranked review (``remaining``), and the stop suggestion
compares the expected yield of the next reviews with the rate the user asks for.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import disk_errors
from ..errors import ConfigError, UnknownIdError
from ..labels import ANOMALY, NORMAL, UNLABELED, LabelEvent, LabelStore
from .remaining import HORIZONS, LEVEL, CalibrationLabels, RemainingEstimate, estimate_remaining

if TYPE_CHECKING:
    from ..session import Session

CALIBRATING_ORDERS = ("score", "uncertainty")  # chosen by score alone: the labels calibrate the scores
AUDIT_ORDERS = ("random",)  # a random draw of the unreviewed images
STOP_PER_IMAGES = 200  # stop when the next reviews are expected to yield fewer than 1 in this many
RECENT = 200  # "the last RECENT reviewed yielded k"


@dataclass(frozen=True)
class DiscoveryCurve:
    """Images labelled (in the order first labelled) and anomalies among them, one row per image."""

    image_ids: list[str]
    labels: np.ndarray  # the label each image has now
    cycles: np.ndarray  # the cycle it was first labelled in
    times: np.ndarray
    sources: list[str]
    ranks: np.ndarray  # its rank in the review when labelled (-1: labelled outside a ranked review)
    orders: list[str]  # the review order then ('' outside a ranked review)

    @property
    def reviewed(self) -> np.ndarray:
        return np.arange(1, len(self.image_ids) + 1)

    @property
    def found(self) -> np.ndarray:
        return np.cumsum(self.labels == ANOMALY)

    def recent_yield(self, count: int = RECENT) -> tuple[int, int]:
        """(anomalies, images) among the last ``count`` images labelled."""
        tail = self.labels[-count:]
        return int((tail == ANOMALY).sum()), len(tail)

    def describe(self) -> str:
        if not self.image_ids:
            return "nothing labelled yet"
        found, images = self.recent_yield()
        return (f"{int(self.found[-1])} anomalies found in {len(self.image_ids)} images labelled; "
                f"the last {images} yielded {found}")

    def write_csv(self, path: str | Path) -> Path:
        """The curve as CSV: one row per labelled image, in the order labelled."""
        path = Path(path)
        with disk_errors(path), open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["reviewed", "found", "image_id", "label", "cycle", "time", "source", "rank", "order"])
            for row in zip(self.reviewed, self.found, self.image_ids, self.labels, self.cycles, self.times,
                           self.sources, self.ranks, self.orders):
                writer.writerow([*row[:3], _label_word(int(row[3])), *row[4:7], row[7] if row[7] > 0 else "",
                                 row[8]])
        return path


def discovery_curve(store: LabelStore) -> DiscoveryCurve:
    """The discovery curve of the labels in ``store``: every image labelled now (normal, anomaly
    or unsure), at the moment it was first labelled."""
    current = store.current(include_unsure=True)
    first: dict[str, LabelEvent] = {}
    for event in store.history():
        if event.tag is None and event.source != "undo" and event.image_id in current:
            first.setdefault(event.image_id, event)
    events = sorted(first.values(), key=lambda e: e.seq)
    return DiscoveryCurve(
        [e.image_id for e in events], np.array([current[e.image_id] for e in events], dtype=np.int64),
        np.array([e.cycle for e in events], dtype=np.int64), np.array([e.time for e in events]),
        [e.source for e in events], np.array([e.review.rank if e.review else -1 for e in events], dtype=np.int64),
        [e.review.order if e.review else "" for e in events])


def calibration_labels(store: LabelStore, index_of: Callable[[str], int], scores: np.ndarray) -> CalibrationLabels:
    """The labels of ``store`` sorted by how they were chosen (``remaining.CalibrationLabels``):
    in a score-like review order, with the score at labelling; in random order; any other way,
    with the current score (``scores[index_of(image_id)]``). Labels are taken as they are now."""
    current = store.current()
    latest: dict[str, LabelEvent] = {}
    for event in store.history():
        if event.tag is None and event.review is not None:
            latest[event.image_id] = event  # the newest review of an image says how it was met
    kinds: dict[str, tuple[list[float], list[float]]] = {"reviewed": ([], []), "audit": ([], []), "other": ([], [])}
    for image_id, label in current.items():
        event = latest.get(image_id)
        order = event.review.order if event else ""
        kind = "reviewed" if order in CALIBRATING_ORDERS else "audit" if order in AUDIT_ORDERS else "other"
        score = event.review.score if event and kind != "other" else scores[index_of(image_id)]
        if np.isfinite(score):
            kinds[kind][0].append(float(score))
            kinds[kind][1].append(float(label == ANOMALY))
    arrays = {kind: (np.array(s, dtype=np.float64), np.array(y)) for kind, (s, y) in kinds.items()}
    return CalibrationLabels(*arrays["reviewed"], *arrays["audit"], *arrays["other"])


def session_estimate(session: Session, horizons: tuple[int, ...] = HORIZONS,
                     level: float = LEVEL) -> RemainingEstimate:
    """The anomalies expected among the session's unlabelled images, from its newest scores.

    Raises
    ------
    ConfigError
        Nothing scored yet, or too few labels to calibrate on.
    """
    found = session.runs.scores()
    if found is None:
        raise ConfigError(f"{session.path}: nothing scored yet, so nothing can be estimated; train a cycle")
    scores = found[1]
    collection = session.collection  # its id lookup is built once and kept: no pass over 10^6 ids per call
    labelled = np.zeros(len(scores), dtype=bool)
    labelled[_indices_present(collection, session.labels.current(include_unsure=True))] = True
    labels = calibration_labels(session.labels, collection.index_of, scores)
    return estimate_remaining(scores[~labelled], labels, horizons, level)


def _indices_present(collection, image_ids) -> list[int]:
    """The indices of those of ``image_ids`` the collection holds (a label can outlive its image)."""
    found = []
    for image_id in image_ids:
        try:
            found.append(collection.index_of(image_id))
        except UnknownIdError:
            continue
    return found


@dataclass(frozen=True)
class StopSuggestion:
    """Whether the next reviews are still worth it, in words."""

    stop: bool
    text: str


def stop_suggestion(estimate: RemainingEstimate, per_images: int = STOP_PER_IMAGES,
                    horizon: int | None = None) -> StopSuggestion:
    """Suggest stopping when the next ``horizon`` reviews (default: the largest estimated) hold
    fewer than 1 anomaly in ``per_images`` even at the top of the estimate's interval: the estimate
    can be far too low (``benchmarks/remaining.py``), and stopping early loses what a search is for.

    Raises
    ------
    ConfigError
        ``per_images`` below 1, or a ``horizon`` the estimate does not hold.
    """
    if per_images < 1:
        raise ConfigError(f"the stop rate is 1 anomaly in N images with N >= 1; got N = {per_images}")
    horizon = max(estimate.next) if horizon is None else horizon
    if horizon not in estimate.next:
        raise ConfigError(f"no estimate for the next {horizon} images; estimated: {sorted(estimate.next)}")
    expected = estimate.next[horizon]
    limit = expected.n_images / per_images
    if expected.n_images == 0:
        return StopSuggestion(True, "every image is reviewed")
    said = f"the next {expected.n_images} are expected to hold {expected.describe()} anomalies"
    if expected.high < limit:
        return StopSuggestion(True, f"Consider stopping: {said}, fewer than 1 in {per_images} "
                                    f"even at the top of the interval")
    return StopSuggestion(False, f"Worth going on: {said} (stop when even the interval's top is "
                                 f"below 1 in {per_images})")


def _label_word(label: int) -> str:
    return {ANOMALY: "anomaly", NORMAL: "normal", UNLABELED: ""}.get(label, "unsure")


@dataclass(frozen=True)
class DiscoveryState:
    """What a panel shows of a session's search: the curve, the estimate and the suggestion."""

    curve: DiscoveryCurve
    estimate: RemainingEstimate | None
    stop: StopSuggestion | None
    not_estimated: str | None  # why there is no estimate (None: there is one)

    def describe(self) -> str:
        said = self.curve.describe()
        if self.estimate is None:
            return f"{said}. What remains is not estimated: {self.not_estimated}"
        return f"{said}. {self.estimate.describe()}"


def discovery_state(session: Session, per_images: int = STOP_PER_IMAGES) -> DiscoveryState:
    """The discovery curve, the estimate of what remains and the stop suggestion of ``session``
    (no estimate, and why, before scores or enough labels)."""
    curve = discovery_curve(session.labels)
    try:
        estimate = session_estimate(session)
    except ConfigError as err:
        return DiscoveryState(curve, None, None, str(err))
    return DiscoveryState(curve, estimate, stop_suggestion(estimate, per_images), None)
