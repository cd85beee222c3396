"""A session: one folder (``core.folder`` lists its files) holding everything of one search for
anomalies, and the handle that opens it.  Every write is atomic or transactional, so a session
killed at any moment re-opens with every label already given and continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .config import AUTO, CONFIG_FILE, DEFAULT_NOVELTY_METHOD, FILTERS, DataConfig, SessionConfig, resolve_source
from .discovery.embedding_map import MAP_SAMPLE, EmbeddingMap, MapProgress, compute_map, saved_map
from .discovery.search import SearchedSession, SimilarImages, similar_images
from .errors import AnomalyMatchError, DiskFullError, SessionError
from .folder.lock import Holder, Writer
from .folder.opening import open_source, read_settings, write_new_settings
from .folder.saved import saved_state
from .io.autocrop import resolve_automatic
from .io.base import ImageCollection
from .io.labelfiles import import_catalogue_labels, labelled_images, read_label_file
from .labels import LABELS_FILE, LabelEvent, LabelStore, ReviewPlace
from .learning.cycle import CycleResult, run_cycle
from .learning.progress import TrainProgress, TrainStage, check_trainable
from .learning.sessionmodel import SessionCycle, SessionModel
from .learning.training import Trainer
from .loading import LoadProgress
from .scoring.collection import score_with_model, score_without_labels
from .scoring.novelty import EmbedProgress
from .scoring.run import ScoreBatch, ScoreResult
from .scoring.runs import ScoreRuns
from .transforms import Normaliser


class Session:
    """A handle on one session folder: its settings, label store, collection, model (checkpoints
    and trainer: ``core.learning.sessionmodel``) and score runs (``core.scoring.runs``).  The verbs
    live in those wings; the ones here take the write lock or hand them the session's parts.

    Open one with ``open_or_create`` (what every front end uses), ``create`` or ``open``, and pass
    it explicitly to whatever needs it (there is no global session).
    """

    def __init__(self, path: Path, config: SessionConfig, read_only: bool = False) -> None:
        self.path = Path(path)
        self.config = config
        self.labels = LabelStore(self.path / LABELS_FILE, read_only=read_only)
        self.model = SessionModel(self.path, config, lambda: self.collection.shape[2])
        self._collection: ImageCollection | None = None
        self._writer = Writer(self.path)  # holds the write lock while this handle changes the session

    @classmethod
    def create(cls, path: str | Path, config: SessionConfig, exist_ok: bool = False) -> Session:
        """Make a new session folder (or reuse one with ``exist_ok``, updating its settings); a bad
        source raises before anything is written (``core.folder.opening.write_new_settings``)."""
        config, collection = write_new_settings(Path(path), config, exist_ok)
        session = cls(Path(path), config)
        session._collection = collection
        return session

    @classmethod
    def open(cls, path: str | Path, read_only: bool = False, new_label_store: bool = False) -> Session:
        """Re-open a session folder; ``read_only``: only read (labels, scores), as on a read-only
        folder or a full disk; ``new_label_store``: start an empty label store when ``labels.sqlite``
        is missing, empty or damaged (moved aside, never deleted).  Raises ``SessionError`` when no
        session is here, its source is not set, or its label store is missing or empty."""
        return cls(Path(path), read_settings(Path(path), new_label_store), read_only=read_only)

    @classmethod
    def open_or_create(cls, path: str | Path, data: DataConfig | None = None,
                       config: SessionConfig | None = None, labels: str | Path | None = None,
                       reopen: bool = True) -> Session:
        """Open the session in ``path`` (``~`` expanded), or create it for ``data``, and import its
        first labels: a catalogue source's into a session without label history, then the CSV/ECSV
        file ``labels``.  The source is opened before this returns, so a bad one fails here.

        ``data``: the source and how to read it (made absolute by ``resolve_source``), for a new
        session; for an existing one it must be the session's own (None: only open).  ``config``:
        a new session's other settings (default ``SessionConfig()``).  ``reopen=False`` refuses a
        folder that holds a session already (``anomalymatch init``).

        Raises
        ------
        SessionError
            No session in ``path`` and no data source; a session of another source; with
            ``reopen=False``, a session exists already.
        AnomalyMatchError, OSError
            A bad source or label file; the session is closed again (a new one stays created).
        """
        path = Path(path).expanduser()
        if data is not None:
            data = dataclasses.replace(data, source=resolve_source(data.source))
        if reopen and (path / CONFIG_FILE).exists():
            session = cls.open(path)
            if data is not None and data.source != session.config.data.source:
                session.close()
                raise SessionError(f"{path}: this session reviews {session.config.data.source}, not "
                                   f"{data.source}; choose an empty folder for a new session")
        elif data is not None:
            session = cls.create(path, (config or SessionConfig()).replace(data=data))
        else:
            raise SessionError(f"{path}: not a session folder yet; choose a data source to create one")
        try:
            _ = session.collection  # an existing session's source may be gone: say so now
            import_catalogue_labels(session.labels, session.collection)
            if labels is not None:
                session.import_labels(labels)
        except (AnomalyMatchError, OSError):
            session.close()
            raise
        return session

    def close(self) -> None:
        self.model.close()
        self.labels.close()
        if self._collection is not None:
            self._collection.close()
        self._writer.release()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update_config(self, config: SessionConfig) -> bool:
        """Change the settings (a new data source or model starts the model afresh); False when
        they equal the session's, which are then not written again."""
        if config == self.config:
            return False
        config.to_toml(self.path / CONFIG_FILE)
        self._use_config(config)
        return True

    def _use_config(self, config: SessionConfig) -> None:
        if config.data != self.config.data:
            self._collection = None
        self.config = config
        self.model.use_config(config)

    def writing(self, command: str, wait: bool = False, on_wait: Callable[[Holder | None], None] | None = None,
                ) -> contextlib.AbstractContextManager[None]:
        """Hold the session's write lock (``core.folder.lock``) for the block; nested blocks share it.

        Training, scoring and label imports take it themselves; a front end takes it around a whole
        command so that no other writer slips in between its steps.  Once taken, the settings and the
        model are read again (another writer may have changed them).  Raises ``SessionBusyError``
        when another process holds it and ``wait`` is false.
        """
        return self._writer.hold(command, wait, on_wait, on_taken=self._catch_up)

    def _catch_up(self) -> None:
        config = SessionConfig.from_toml(self.path / CONFIG_FILE)  # another writer's settings
        if config != self.config:
            self._use_config(config)
        self.model.catch_up()

    # -- the parts -----------------------------------------------------------------------

    @property
    def collection(self) -> ImageCollection:
        if self._collection is None:
            self._collection = open_source(self.path, self.config)
        return self._collection

    @property
    def normaliser(self) -> Normaliser:
        if self.config.data.normalisation.crop == AUTO:  # a session.toml edited by hand
            self.update_config(resolve_automatic(self.config, self.collection))
        return Normaliser(self.config.data.normalisation, self.collection.value_range)

    @property
    def runs(self) -> ScoreRuns:
        """The score runs of this collection (``core.scoring.runs``)."""
        return ScoreRuns(self.path, len(self.collection))

    @property
    def cycle(self) -> int:
        """The number of training cycles run so far (that of the latest checkpoint)."""
        return self.model.cycle

    @property
    def trainer(self) -> Trainer:
        """The trainer, restored from the latest checkpoint when there is one."""
        return self.model.trainer

    def display_image(self, index: int) -> np.ndarray:
        """Image ``index`` normalised exactly as the model sees it, at full resolution."""
        return self.normaliser(self.collection.read([index], check=False)[0])  # shown as stored

    # -- labels: by id (checked against the collection) or by index, stored at once --------------

    def label(self, image_id: str, label: int | str, source: str = "user") -> LabelEvent | None:
        self.collection.index_of(image_id)  # raises UnknownIdError naming the source
        return self.labels.set(image_id, label, cycle=self.cycle, source=source)

    def label_index(self, index: int, label: int | str, source: str = "user",
                    review: ReviewPlace | None = None) -> LabelEvent | None:
        """``review``: where the image stood in the review it was labelled in."""
        return self.labels.set(self.collection.id_of(int(index)), label, cycle=self.cycle, source=source,
                               review=review)

    def label_indices(self, indices: Iterable[int], label: int | str, source: str = "selection") -> list[LabelEvent]:
        """Give many images one label in one step (a map selection, say); one ``undo`` reverts them all."""
        ids = self.collection.ids()
        return self.labels.set_many([(ids[int(i)], label) for i in indices], cycle=self.cycle, source=source)

    def undo(self) -> LabelEvent | None:  # the latest label or tag action
        return self.labels.undo()

    def edit_tags(self, image_id: str, add: str | list[str] = (), remove: str | list[str] = (),
                  source: str = "user") -> list[LabelEvent]:
        """Add and remove tags of one image in one step (one undo reverts it); its label stays."""
        self.collection.index_of(image_id)  # raises UnknownIdError naming the source
        return self.labels.edit_tags(image_id, add, remove, cycle=self.cycle, source=source)

    def import_labels(self, path: str | Path, source: str = "import") -> int:
        """Import a CSV/ECSV label file (``core.io.labelfiles``: an unknown id stops the import unless
        the data's ``on_error`` is ``skip``); returns the number of labels that changed."""
        with self.writing("anomalymatch label import"):
            pairs = read_label_file(Path(path), self.collection, skip_unknown=self.config.data.on_error == "skip")
            return len(self.labels.set_many(pairs, cycle=self.cycle, source=source))

    def check_trainable(self) -> None:
        """Raise ``ConfigError`` unless the session has at least one anomaly and one normal label."""
        check_trainable(np.array(list(self.labels.current().values())), "the session")

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices and labels (0 normal, 1 anomaly) of every labelled image."""
        return labelled_images(self.labels, self.collection)

    def run_cycle(self, iterations: int | None = None, score: bool = True, save_to: Path | None = None,
                  on_full_disk: Callable[[DiskFullError, int], None] | None = None, poll_s: float = 10.0,
                  ) -> Generator[Any, None, CycleResult]:
        """Run one cycle (``core.learning.cycle.run_cycle`` on ``SessionCycle``): train, keep the
        checkpoint (a stopped cycle too; for a full disk see ``SessionModel.keep_trained_cycle``)
        and, with ``score``, score and rank; yields progress, the first event at once.

        Raises ``SessionBusyError``, ``DiskFullError`` or ``ConfigError``.
        """
        with self.writing("anomalymatch training"):
            self.model.save_unsaved_first()
            parts = SessionCycle(self.model, self.collection, self.normaliser, self.labelled,
                                 lambda trainer: self._score(None), save_to, on_full_disk, poll_s)
            return (yield from run_cycle(parts, iterations, score))

    def train(self, iterations: int | None = None, save_to: Path | None = None,
              ) -> Generator[LoadProgress | TrainStage | TrainProgress, None, CycleResult]:
        """Run one training cycle without scoring (``run_cycle`` with ``score=False``)."""
        return (yield from self.run_cycle(iterations, score=False, save_to=save_to))

    def score(self, cluster: Any | None = None) -> Generator[ScoreBatch, None, ScoreResult]:
        """Score the whole collection with the latest model, resuming a stopped run
        (``core.scoring.collection.score_with_model``; ``cluster``: a Dask cluster, None scores here)."""
        with self.writing("anomalymatch scoring"):
            self.model.save_unsaved_first()
            return (yield from self._score(cluster))

    def _score(self, cluster: Any | None) -> Generator[ScoreBatch, None, ScoreResult]:
        return (yield from score_with_model(self.model, self.runs, self.collection, self.normaliser,
                                            self.config, cluster))

    def score_unsupervised(self, method: str = DEFAULT_NOVELTY_METHOD
                           ) -> Generator[EmbedProgress | ScoreBatch, None, ScoreResult]:
        """A first ranking with zero labels, stored as cycle 0's scores
        (``core.scoring.collection.score_without_labels``)."""
        with self.writing("anomalymatch scoring"):
            return (yield from score_without_labels(self.runs, self.collection, self.normaliser, self.config,
                                                    method, self.cycle))

    def ranking(self, order: str = "score", which: str = "unlabelled", seed: int = 0) -> np.ndarray:
        """Collection indices in review order (``ScoreRuns.ranking``)."""
        return self.runs.ranking(self.collection, self.labels.current(include_unsure=True), order, which, seed)

    def similar(self, queries: list[int | str | Path], top: int = 100) -> SimilarImages:
        """The ``top`` images most like ``queries`` (``core.discovery.search.similar_images``)."""
        searched = SearchedSession(self.path, self.collection, self.normaliser, self.config.model.image_size,
                                   self.cycle, lambda: (self.trainer.scoring_model, self.trainer.device),
                                   self.runs.statuses())
        return similar_images(searched, queries, top)

    def compute_map(self, sample: int | None = None, seed: int = 0) -> Generator[MapProgress, None, EmbeddingMap]:
        """Compute and save the 2-D embedding map (``core.discovery.embedding_map.compute_map``)."""
        def labelled() -> np.ndarray:  # every image with a label, unsure included
            return self.collection.indices_of(list(self.labels.current(include_unsure=True)))

        return (yield from compute_map(self.runs.statuses(), self.path, len(self.collection), labelled,
                                       MAP_SAMPLE if sample is None else sample, seed))

    def embedding_map(self) -> EmbeddingMap | None:
        """The saved map of the latest embedded score run, or None until ``compute_map`` made one."""
        return saved_map(self.runs.statuses(), self.path)


__all__ = ["CONFIG_FILE", "FILTERS", "LABELS_FILE", "Session", "saved_state"]
