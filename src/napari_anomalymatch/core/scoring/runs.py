"""The score runs a session folder keeps (``scores/cycle-NNNN/``, one ``ScoreStore`` each): how
far each got, the newest complete scores, the ranking they give and the embeddings they stored.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import FILTERS
from ..errors import ConfigError, IncompleteScoresError, NoEmbeddingsError, NotTrainedError
from ..io.base import ImageCollection
from ..learning.settingsdrift import SettingsChangedWarning, rescoring_notice
from .diversity import EmbeddingLookup
from .orders import get_order, rank
from .store import ScoreManifest, ScoreStore, read_manifest

SCORES_FOLDER = "scores"


@dataclass(frozen=True)
class ScoreRunStatus:
    """How far one score run got."""

    directory: Path
    cycle: int
    n_images: int
    parts_done: int
    n_parts: int
    complete: bool
    method: str = ""  # see ScoreManifest.method


def run_status(directory: Path) -> ScoreRunStatus | None:
    """The status of the run in ``directory``, or None when there is no run there."""
    manifest = read_manifest(directory)
    if manifest is None:
        return None
    store = ScoreStore.existing(directory)
    done = len(store.done_parts())
    return ScoreRunStatus(Path(directory), manifest.cycle, manifest.n_images, done, manifest.n_parts,
                          store.complete and done == manifest.n_parts, manifest.method)


def embedded_run(runs: Iterable[ScoreRunStatus], folder: Path) -> ScoreStore:
    """The newest complete run of ``runs`` (a session's, newest first) that stored embeddings;
    ``folder``: the session's, named when there is none."""
    for status in runs:
        if status.complete:
            store = ScoreStore.existing(status.directory)
            if store.manifest.embeddings:
                return store
    raise NoEmbeddingsError(f"{folder}: no score run stored the images' embeddings yet; run "
                            f"'anomalymatch score {folder}' (after a training cycle) to store them")


def open_scores(directory: str | Path) -> tuple[ScoreManifest, np.ndarray]:
    """The manifest and scores of a finished or partial run."""
    store = ScoreStore.existing(directory)
    return store.manifest, store.scores()


class ScoreRuns:
    """The score runs of the session in ``folder`` whose collection has ``n_images`` images."""

    def __init__(self, folder: Path, n_images: int) -> None:
        self.folder = Path(folder)
        self.n_images = n_images

    def directory(self, cycle: int) -> Path:
        return self.folder / SCORES_FOLDER / f"cycle-{cycle:04d}"

    def statuses(self) -> list[ScoreRunStatus]:
        """Every score run of this collection, newest first, with how far it got."""
        found = []
        for directory in sorted((self.folder / SCORES_FOLDER).glob("cycle-*"), reverse=True):
            status = run_status(directory)
            if status is not None and status.n_images == self.n_images:
                found.append(status)
        return found

    def store(self, cycle: int, manifest: ScoreManifest) -> ScoreStore:
        """Cycle ``cycle``'s run; a finished run made with other preprocessing is replaced, which is said first."""
        directory = self.directory(cycle)
        existing = read_manifest(directory)
        if existing is not None and existing.preprocessing != manifest.preprocessing:
            warnings.warn(rescoring_notice(directory, existing.preprocessing, manifest.preprocessing),
                          SettingsChangedWarning, stacklevel=5)
        return ScoreStore(directory, manifest)

    def scores(self) -> tuple[int, np.ndarray] | None:
        """(cycle, scores) of the newest complete score run, or None before any.

        A run that stopped before its end is never returned; ``notice`` says when a newer run
        than the one returned is incomplete.
        """
        for status in self.statuses():
            if status.complete:
                return status.cycle, open_scores(status.directory)[1]
        return None

    def notice(self) -> str | None:
        """A warning when the newest score run is incomplete (None when it is complete or absent)."""
        runs = self.statuses()
        if not runs or runs[0].complete:
            return None
        newest = runs[0]
        complete = next((r for r in runs if r.complete), None)
        using = (f"the scores of cycle {complete.cycle} (complete) are used instead" if complete
                 else "no complete scores exist yet")
        again = f" --unsupervised --method {newest.method.split(':', 1)[1]}" if newest.method else ""
        return (f"scoring of cycle {newest.cycle} is incomplete ({newest.parts_done} of {newest.n_parts} "
                f"parts); {using}. Run 'anomalymatch score {self.folder}{again}' to finish it")

    def complete_scores(self, cycle: int) -> tuple[int, np.ndarray]:
        """(cycle, scores) of the newest complete run; ``cycle``: the model's, for the message.

        Raises
        ------
        NotTrainedError
            Nothing was scored yet.
        IncompleteScoresError
            The only runs there are incomplete.
        """
        found = self.scores()
        if found is not None:
            return found
        notice = self.notice()
        if notice is not None:
            raise IncompleteScoresError(f"{self.folder}: {notice}")
        if cycle > 0:
            raise NotTrainedError(f"{self.folder}: no scores of the model (cycle {cycle}) are here (the scores "
                                  f"folder is gone or empty); run 'anomalymatch score {self.folder}' to score the "
                                  "collection again")
        raise NotTrainedError(f"{self.folder}: nothing scored yet; run 'anomalymatch train' first")

    def ranking_method(self) -> str:
        """What made the ranking the review shows: "" (a trained model, or none yet) or
        ``unsupervised:<method>`` (``core.scoring.collection.score_without_labels``)."""
        return next((status.method for status in self.statuses() if status.complete), "")

    def embedded_run(self) -> ScoreStore:
        """The newest complete score run that stored the images' embeddings.

        Raises
        ------
        NoEmbeddingsError
            No score run stored embeddings yet.
        """
        return embedded_run(self.statuses(), self.folder)

    def stored_embeddings(self) -> EmbeddingLookup:
        """indices -> the embeddings the newest embedded score run stored (for the ``diverse`` order).

        Raises
        ------
        NoEmbeddingsError
            No score run stored embeddings yet.
        """
        stored = self.embedded_run().embeddings()
        return lambda indices: np.asarray(stored[np.asarray(indices, dtype=np.int64)])

    def ranking(self, collection: ImageCollection, labelled_ids: Iterable[str], order: str = "score",
                which: str = "unlabelled", seed: int = 0) -> np.ndarray:
        """Indices of ``collection`` in review order, by the newest complete scores.

        ``order``: ``score`` (most anomalous first), ``uncertainty`` (closest to 0.5 first),
        ``random`` or ``diverse`` (the top candidates spread over their embeddings:
        ``core.scoring.diversity``); ``which``: ``unlabelled``, ``labelled`` or ``all`` images,
        ``labelled_ids`` being those with a label.  Images without a score come last.
        """
        needs_embeddings = get_order(order).needs_embeddings
        if which not in FILTERS:
            raise ConfigError(f"which must be one of {FILTERS}; got {which!r}")
        n = len(collection)
        found = self.scores()  # complete runs only: see notice
        scores = found[1] if found is not None else np.full(n, np.nan, dtype=np.float32)
        candidates = _filtered(collection, list(labelled_ids), which)
        return rank(scores, candidates, order, seed, self.stored_embeddings() if needs_embeddings else None)


def _filtered(collection: ImageCollection, labelled_ids: list[str], which: str) -> np.ndarray:
    n = len(collection)
    if which == "all":
        return np.arange(n)
    labelled = np.zeros(n, dtype=bool)
    if labelled_ids:
        labelled[collection.indices_of(labelled_ids)] = True
    return np.flatnonzero(labelled if which == "labelled" else ~labelled)
