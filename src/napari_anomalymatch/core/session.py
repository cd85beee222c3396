"""A session: one folder holding everything of one search for anomalies.

::

    session.toml              the settings (SessionConfig)
    labels.sqlite             every label given, with its history (LabelStore)
    shard-sizes.json          for a sharded source: each shard's size, so it reopens at once
    cutouts/                  for a mosaic source: the cutouts cut so far, in chunks
    checkpoints/cycle-NNNN.safetensors   the model after each training cycle
    scores/cycle-NNNN/        the scores of the whole collection after that cycle
    history/, review.json     loss curves (``learning.history``) and the review's display (``review.state``)
    crossmatch.npz            each image's nearest known object (``review.crossmatch``)

Every write is atomic or transactional, so a session killed at any moment
re-opens with every label already given and continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import free_space_text, remove_stale_temporaries
from .config import (
    AUTO,
    DEFAULT_NOVELTY_METHOD,
    FILTERS,
    DataConfig,
    SessionConfig,
    TrainConfig,
    check_novelty_method,
    resolve_source,
)
from .discovery.embedding_map import MAP_SAMPLE, EmbeddingMap, MapProgress, compute_map, saved_map
from .discovery.search import SearchedSession, SimilarImages, similar_images
from .errors import (
    AnomalyMatchError,
    CheckpointError,
    ConfigError,
    DiskFullError,
    IncompleteScoresError,
    NotTrainedError,
    SessionError,
    SourceNotFoundError,
)
from .io.autocrop import resolve_automatic
from .io.base import ImageCollection
from .io.labelfiles import read_label_file
from .io.registry import find_reader, open_collection
from .labels import LabelEvent, LabelStore, ReviewPlace, parse_label
from .learning.checkpoints import (
    CheckpointInfo,
    checkpoint_bytes,
    has_space,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from .learning.cycle import CycleResult, run_cycle
from .learning.history import write_loss_history
from .learning.models import build_model, choose_device
from .learning.probe import FrozenEmbedder
from .learning.settingsdrift import SettingsChangedWarning, check_model_name, image_size_notice, rescoring_notice
from .learning.progress import TrainingData, TrainProgress, TrainStage, check_trainable
from .learning.training import Trainer
from .loading import DecodedImages, LoadProgress
from .folder.relocation import moved_source_error
from .scoring.cluster import score_on_cluster, scoring_job
from .scoring.diversity import EmbeddingLookup
from .scoring.novelty import EmbedProgress, fit_novelty
from .scoring.orders import get_order, rank
from .scoring.run import (
    ScoreBatch,
    ScoreResult,
    finish_stored_run,
    model_fingerprint,
    prepare_run_scorer,
    score_collection,
    score_parts,
)
from .scoring.store import (
    ScoreManifest,
    ScoreRunStatus,
    ScoreStore,
    embedded_run,
    open_scores,
    read_manifest,
    run_status,
)
from .folder.lock import Holder, SessionLock
from .transforms import Normaliser

CONFIG_FILE = "session.toml"
LABELS_FILE = "labels.sqlite"
CUTOUTS_FOLDER = "cutouts"  # a mosaic source's cutouts, cut once
SHARD_SIZES_FILE = "shard-sizes.json"  # how many images each shard of a sharded source holds


class Session:
    """Labels, models and scores of one collection, kept in ``path``.

    Open one with ``Session.open_or_create`` (what every front end uses),
    ``Session.create`` or ``Session.open``; pass it explicitly to whatever
    needs it (there is no global session).
    """

    def __init__(self, path: Path, config: SessionConfig, read_only: bool = False) -> None:
        self.path = Path(path)
        self.config = config
        self.labels = LabelStore(self.path / LABELS_FILE, read_only=read_only)
        self._collection: ImageCollection | None = None
        self._trainer: Trainer | None = None
        self._lock: SessionLock | None = None  # held while this handle changes the session (``writing``)
        self._unsaved: list[TrainProgress] | None = None  # a trained cycle the disk refused, and its losses
        self._decoded = DecodedImages()  # the last cycle's training images: the next reads only new ones

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, config: SessionConfig, exist_ok: bool = False) -> Session:
        """Make a new session folder (or reuse one with ``exist_ok``, updating its settings).

        The source is opened first: a missing or unreadable source raises
        before anything is written, so a failed attempt leaves no folder behind.
        """
        path = Path(path)
        if (path / CONFIG_FILE).exists() and not exist_ok:
            raise SessionError(f"{path}: a session exists here already; open it, or choose a new folder")
        if not config.data.source:
            raise ConfigError("a session needs a data source (data.source)")
        try:
            config.data.source.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"{os.fsencode(config.data.source)!r}: the data source's name is not valid "
                              "UTF-8, which session.toml needs; rename the folder") from None
        data = config.data
        collection = open_collection(data.source, reader=data.reader, on_error=data.on_error, **data.options)
        config = resolve_automatic(config, collection)
        path.mkdir(parents=True, exist_ok=True)
        config.to_toml(path / CONFIG_FILE)
        session = cls(path, config)
        session._collection = collection
        return session

    @classmethod
    def open(cls, path: str | Path, read_only: bool = False, new_label_store: bool = False) -> Session:
        """Re-open a session folder.

        Parameters
        ----------
        read_only
            Only read (labels, scores): works on a read-only folder or a full disk.
        new_label_store
            Start an empty label store when ``labels.sqlite`` is missing, empty or
            damaged (a damaged one is moved aside, never deleted).

        Raises
        ------
        SessionError
            No session here, its data source is not set, or its label store is
            missing or empty (labels would be lost without a word).
        """
        path = Path(path)
        if not (path / CONFIG_FILE).exists():
            raise SessionError(f"{path}: not a session folder (no {CONFIG_FILE}); create one first "
                               "with 'anomalymatch init'")
        config = SessionConfig.from_toml(path / CONFIG_FILE)
        _check_source(path / CONFIG_FILE, config)
        if new_label_store:
            _move_label_store_aside(path / LABELS_FILE)
        else:
            _check_label_store(path / LABELS_FILE)
        remove_stale_temporaries(path)  # only a dead process's; a read-only folder keeps them
        return cls(path, config, read_only=read_only)

    @classmethod
    def open_or_create(cls, path: str | Path, data: DataConfig | None = None,
                       config: SessionConfig | None = None, labels: str | Path | None = None,
                       reopen: bool = True) -> Session:
        """Open the session in ``path``, or create it for ``data``, and import its first labels.

        The source is opened before this returns, so a bad one fails here. The labels a
        catalogue source carries are imported into a session without label history
        (``import_catalogue_labels``), then the label file ``labels``.

        Parameters
        ----------
        path
            The session folder (``~`` is expanded).
        data
            The data source and how to read it, for a new session (``resolve_source`` makes the
            source absolute); given for an existing session, its source must be the session's.
            None: only open.
        config
            The other settings of a new session (default: ``SessionConfig()``); an existing
            session keeps its own.
        labels
            A CSV/ECSV label file to import.
        reopen
            False refuses a folder that holds a session already (``anomalymatch init``).

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
            session.import_catalogue_labels()
            if labels is not None:
                session.import_labels(labels)
        except (AnomalyMatchError, OSError):
            session.close()
            raise
        return session

    def close(self) -> None:
        self._decoded = DecodedImages()
        self.labels.close()
        if self._collection is not None:
            self._collection.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update_config(self, config: SessionConfig) -> bool:
        """Change the settings; a new data source or model starts the models afresh.

        Returns whether anything changed: settings equal to the session's are not written again.
        """
        if config == self.config:
            return False
        config.to_toml(self.path / CONFIG_FILE)
        self._use_config(config)
        return True

    def _use_config(self, config: SessionConfig) -> None:
        data_changed = config.data != self.config.data
        model_changed = config.model != self.config.model
        self.config = config
        if data_changed:
            self._collection = None
        if data_changed or model_changed:
            self._trainer = None
        elif self._trainer is not None:
            self._trainer.set_config(config.train, config.probe)

    # -- one writer at a time ------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self, command: str, wait: bool = False,
                on_wait: Callable[[Holder | None], None] | None = None) -> Iterator[None]:
        """Hold the session's write lock (``core.folder.lock``) for the block; nested blocks share it.

        Training, scoring and label imports take it themselves; a front end takes it around a
        whole command so that no other writer slips in between its steps.  Once it is held, the
        settings and the model are read again from the folder: another writer may have changed
        them meanwhile.

        Raises
        ------
        SessionBusyError
            Another process holds the lock and ``wait`` is false (the message names it).
        """
        if self._lock is not None:
            yield
            return
        lock = SessionLock(self.path, command)
        lock.acquire(wait, on_wait)
        self._lock = lock
        try:
            self._catch_up()
            yield
        finally:
            self._lock = None
            lock.release()

    def _catch_up(self) -> None:
        """Take in what another writer did while this handle did not hold the lock."""
        config = SessionConfig.from_toml(self.path / CONFIG_FILE)
        if config != self.config:
            self._use_config(config)
        if self._trainer is not None and self._unsaved is None and self._trainer.cycle != self.cycle:
            self._trainer = None  # another process trained since: go on from its checkpoint

    # -- data --------------------------------------------------------------------------

    @property
    def collection(self) -> ImageCollection:
        if self._collection is None:
            data = self.config.data
            _check_source(self.path / CONFIG_FILE, self.config)
            options = dict(data.options)
            try:
                if find_reader(data.source, data.reader).name == "sharded":
                    options.setdefault("size_cache", str(self.path / SHARD_SIZES_FILE))
                if options.get("mosaic"):
                    options.setdefault("cache", str(self.path / CUTOUTS_FOLDER))  # the next cycle reads, not cuts
                self._collection = open_collection(data.source, reader=data.reader,
                                                   on_error=data.on_error, **options)
            except SourceNotFoundError as err:
                raise moved_source_error(err, self.path, data.source) from err
        return self._collection

    @property
    def normaliser(self) -> Normaliser:
        if self.config.data.normalisation.crop == AUTO:  # a session.toml edited by hand
            self.update_config(resolve_automatic(self.config, self.collection))
        return Normaliser(self.config.data.normalisation, self.collection.value_range)

    def display_image(self, index: int) -> np.ndarray:
        """Image ``index`` normalised exactly as the model sees it, at full resolution."""
        return self.normaliser(self.collection.read([index], check=False)[0])  # shown as stored

    # -- labels ------------------------------------------------------------------------

    def label(self, image_id: str, label: int | str, source: str = "user") -> LabelEvent | None:
        """Label one image by id (checked against the collection) and store it at once."""
        self.collection.index_of(image_id)  # raises UnknownIdError naming the source
        return self.labels.set(image_id, label, cycle=self.cycle, source=source)

    def label_index(self, index: int, label: int | str, source: str = "user",
                    review: ReviewPlace | None = None) -> LabelEvent | None:
        """Label image ``index``; ``review``: where it stood in the review it was labelled in."""
        return self.labels.set(self.collection.id_of(int(index)), label, cycle=self.cycle, source=source,
                               review=review)

    def undo(self) -> LabelEvent | None:
        """Revert the latest label or tag action."""
        return self.labels.undo()

    def add_tags(self, image_id: str, tags: str | list[str], source: str = "user") -> list[LabelEvent]:
        """Tag one image by id (checked against the collection); its label stays as it is."""
        return self.edit_tags(image_id, add=tags, source=source)

    def remove_tags(self, image_id: str, tags: str | list[str], source: str = "user") -> list[LabelEvent]:
        """Take tags from one image by id; returns the events of the tags it had."""
        return self.edit_tags(image_id, remove=tags, source=source)

    def edit_tags(self, image_id: str, add: str | list[str] = (), remove: str | list[str] = (),
                  source: str = "user") -> list[LabelEvent]:
        """Add and remove tags of one image in one step (one undo reverts it)."""
        self.collection.index_of(image_id)  # raises UnknownIdError naming the source
        return self.labels.edit_tags(image_id, add, remove, cycle=self.cycle, source=source)

    def import_labels(self, path: str | Path, source: str = "import") -> int:
        """Import labels from a CSV/ECSV with ``id`` (or ``path``) and ``label`` columns.

        Every id is checked before anything is stored: an unknown id stops the
        import (naming the file and row) unless the data's ``on_error`` is
        ``skip``.  Returns the number of labels that changed.
        """
        with self.writing("anomalymatch label import"):
            pairs = read_label_file(Path(path), self.collection, skip_unknown=self.config.data.on_error == "skip")
            return len(self.labels.set_many(pairs, cycle=self.cycle, source=source))

    def import_catalogue_labels(self) -> int:
        """Store the labels a catalogue source carries, into a session with no label history only.

        Reopening a session never brings back a catalogue label that was changed or undone
        since.  Returns the number of labels stored.
        """
        labels = getattr(self.collection, "labels", None)
        if not labels or self.labels.history():
            return 0
        return len(self.labels.set_many(labels.items(), source="catalogue"))

    def check_trainable(self) -> None:
        """Raise ``ConfigError`` unless the session has at least one anomaly and one normal label."""
        check_trainable(np.array(list(self.labels.current().values())), "the session")

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices and labels (0 normal, 1 anomaly) of every labelled image."""
        current = self.labels.current()
        if not current:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        ids = list(current)
        return self.collection.indices_of(ids), np.array([current[i] for i in ids], dtype=np.int64)

    # -- models ------------------------------------------------------------------------

    @property
    def cycle(self) -> int:
        """The number of training cycles run so far (that of the latest checkpoint)."""
        latest = self.latest_checkpoint()
        return 0 if latest is None else _cycle_of(latest)

    def checkpoint_path(self, cycle: int) -> Path:
        return self.path / "checkpoints" / f"cycle-{cycle:04d}.safetensors"

    def latest_checkpoint(self) -> Path | None:
        found = sorted((self.path / "checkpoints").glob("cycle-*.safetensors"))
        return found[-1] if found else None

    @property
    def trainer(self) -> Trainer:
        """The trainer, restored from the latest checkpoint when there is one."""
        if self._trainer is None:
            latest = self.latest_checkpoint()
            if latest is not None:
                self._check_settings_against(latest)  # before the network is built from the settings
            trainer = Trainer(self.config.model, self.config.train, self.collection.shape[2],
                              probe_config=self.config.probe)
            if latest is not None:
                self._restore(trainer, latest)
            self._trainer = trainer
        return self._trainer

    def _check_settings_against(self, checkpoint: Path) -> None:
        """Refuse a model the checkpoint cannot load into; say what another image size changes."""
        try:
            info = read_checkpoint_info(checkpoint)
        except CheckpointError as err:
            raise CheckpointError(f"{err}; {self._previous_advice(checkpoint)}") from err
        check_model_name(self.path / CONFIG_FILE, self.config, info, checkpoint)
        notice = image_size_notice(self.path / CONFIG_FILE, self.config, info, checkpoint)
        if notice is not None:
            warnings.warn(notice, SettingsChangedWarning, stacklevel=3)

    def _restore(self, trainer: Trainer, path: Path) -> None:
        try:
            tensors, info = load_checkpoint(path)
        except CheckpointError as err:
            raise CheckpointError(f"{err}; {self._previous_advice(path)}") from err
        expected = (self.config.model.name, self.collection.shape[2])
        if (info.model_name, info.in_chans) != expected:
            raise CheckpointError(
                f"{path}: made for {info.model_name} on {info.in_chans}-channel images, but the "
                f"session uses {expected[0]} on {expected[1]}-channel images; start a new session"
            )
        try:
            trainer.load_state_dict(tensors, info.cycle, info.iterations_done)
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"{path}: its tensors do not fit the session's model "
                                  f"{expected[0]} ({str(err).splitlines()[0]}); "
                                  f"{self._previous_advice(path)}") from err

    def _previous_advice(self, damaged: Path) -> str:
        """What to do about an unusable latest checkpoint: continue from the one before."""
        earlier = [p for p in sorted((self.path / "checkpoints").glob("cycle-*.safetensors")) if p < damaged]
        if not earlier:
            return f"move it aside (mv {damaged} {damaged}.damaged) to start training afresh"
        return (f"the previous cycle's checkpoint is {earlier[-1]}: move the damaged one aside "
                f"(mv {damaged} {damaged}.damaged) to continue from cycle {_cycle_of(earlier[-1])}")

    def save_checkpoint(self, folder: Path | None = None) -> Path:
        """Save the model as its cycle's checkpoint, in the session (or in ``folder``).

        A cycle whose save the disk refused stays in memory (``unsaved_cycle``) until a save of
        it into the session succeeds; its loss history is written with it.

        Raises
        ------
        DiskFullError, ReadOnlyError
        """
        trainer = self.trainer
        info = CheckpointInfo(cycle=trainer.cycle, iterations_done=trainer.iterations_done,
                              model_name=self.config.model.name, in_chans=trainer.in_chans,
                              image_size=self.config.model.image_size,
                              weights_source=trainer.weights_source)
        target = self.checkpoint_path(trainer.cycle)
        path = save_checkpoint(target if folder is None else Path(folder) / target.name, trainer.state_dict(), info)
        if folder is None and self._unsaved is not None:
            progress, self._unsaved = self._unsaved, None
            write_loss_history(self.path, trainer.cycle, progress)
        return path

    @property
    def unsaved_cycle(self) -> int | None:
        """The cycle trained in this process whose checkpoint the disk refused (None: all saved)."""
        return None if self._unsaved is None else self.trainer.cycle

    def save_when_space(self, poll_s: float = 10.0) -> Generator[str, None, Path]:
        """Save the unsaved cycle into the session as soon as its disk has room; yields, at each
        try that failed, why (the free and needed space), then returns the checkpoint's path."""
        while True:
            try:
                return self.save_checkpoint()
            except DiskFullError as err:
                yield str(err)
                time.sleep(poll_s)

    def require_checkpoint_space(self, elsewhere: Path | None = None) -> None:
        """Refuse before training when the checkpoint it ends with would not fit on the disk.

        ``elsewhere``: a folder that takes the checkpoint should the session's disk be full.

        Raises
        ------
        DiskFullError
            Saying how much the checkpoint needs and how much is free.
        """
        folder = self.path / "checkpoints"
        needed = checkpoint_bytes(self.trainer.state_dict())
        if has_space(folder, needed) or (elsewhere is not None and has_space(elsewhere, needed)):
            return
        where = folder if elsewhere is None else f"{folder} or {elsewhere}"
        raise DiskFullError(
            f"{folder}: training would end with a checkpoint of about {needed / 1e6:.1f} MB, but the disk "
            f"has {free_space_text(folder)} free{'' if elsewhere is None else f' and {elsewhere} too little'}; "
            f"nothing was trained. Free some space on {where} and run again, or name a folder "
            "with room for the checkpoint (--save-to)")

    # -- training ----------------------------------------------------------------------

    def run_cycle(self, iterations: int | None = None, score: bool = True, save_to: Path | None = None,
                  on_full_disk: Callable[[DiskFullError, int], None] | None = None, poll_s: float = 10.0,
                  ) -> Generator[Any, None, CycleResult]:
        """Run one cycle (``core.learning.cycle.run_cycle``): train, keep the checkpoint, and with
        ``score`` score the collection and store its ranking; yields loading progress, the stages
        without progress of their own (``TrainStage``), each iteration's ``TrainProgress`` and the
        scoring's ``ScoreBatch``es; the first event comes at once.

        The model continues from the previous cycle.  Stopping early (closing the generator)
        still saves a usable checkpoint of the iterations done, and a stopped scoring run keeps
        its parts.  The session's write lock is held throughout, and the disk must have room for
        the checkpoint (or ``save_to`` must) before training starts.  A save the disk refuses
        anyway goes to ``save_to``, which then raises; else, with ``on_full_disk``, that is told
        why and which cycle waits, and the save is tried again every ``poll_s`` seconds until it succeeds; else the
        cycle is kept in memory (``unsaved_cycle``) and this raises.

        Raises
        ------
        SessionBusyError, DiskFullError, ConfigError
        """
        with self.writing("anomalymatch training"):
            self._save_unsaved_first()
            parts = _SessionCycle(self, save_to, on_full_disk, poll_s)
            return (yield from run_cycle(parts, iterations, score))

    def train(self, iterations: int | None = None, save_to: Path | None = None,
              ) -> Generator[LoadProgress | TrainStage | TrainProgress, None, CycleResult]:
        """Run one training cycle without scoring (``run_cycle`` with ``score=False``)."""
        return (yield from self.run_cycle(iterations, score=False, save_to=save_to))

    def _keep_trained_cycle(self, progress: list[TrainProgress], save_to: Path | None,
                            on_full_disk: Callable[[DiskFullError, int], None] | None, poll_s: float) -> None:
        self._unsaved = progress
        try:
            self.save_checkpoint()
        except DiskFullError as err:
            cycle = self.trainer.cycle
            full = DiskFullError(
                f"{err}. The cycle just trained (cycle {cycle}, {self.trainer.iterations_done} "
                "iterations in all) is kept in memory and saved first thing by the next training or "
                "scoring run of this session here; the command line waits for space, or saves it to "
                "the folder named by --save-to")
            if save_to is not None:
                path = self.save_checkpoint(save_to)
                raise DiskFullError(f"{full}\ncycle {cycle} was saved to {path} instead; to go on from it, "
                                    f"free some space and move it to {self.checkpoint_path(cycle)}") from err
            if on_full_disk is None:
                raise full from err
            on_full_disk(full, cycle)
            for _ in self.save_when_space(poll_s):
                pass  # still full: said once above

    def _save_unsaved_first(self) -> None:
        """A cycle the disk refused is saved before anything builds on it (or this raises again)."""
        if self._unsaved is not None:
            self.save_checkpoint()

    def _load_training_data(self, labelled_idx: np.ndarray, labels: np.ndarray, pool: np.ndarray,
                            ) -> Generator[LoadProgress, None, TrainingData]:
        size = self.config.model.image_size
        everything = np.concatenate([labelled_idx, pool])
        images, valid = yield from self._decoded.load(self.collection, self.normaliser, size, everything,
                                                      num_workers=self.config.score.num_workers)
        n = len(labelled_idx)
        keep_labelled = torch.from_numpy(valid[:n])
        keep_pool = torch.from_numpy(valid[n:])
        return TrainingData(images[:n][keep_labelled], torch.from_numpy(labels)[keep_labelled],
                            images[n:][keep_pool])

    # -- scoring -----------------------------------------------------------------------

    def score_directory(self, cycle: int) -> Path:
        return self.path / "scores" / f"cycle-{cycle:04d}"

    def score(self, cluster: Any | None = None) -> Generator[ScoreBatch, None, ScoreResult]:
        """Score the whole collection with the latest model, resuming a stopped run.

        Parameters
        ----------
        cluster
            A ``distributed.DaskCluster`` (see ``core.scoring.cluster.connect``) to
            spread the shards over; None scores here.

        The run's folder gets one part file per shard (or per ``part_size``
        images), ``scores.npy`` and, with pyarrow, ``scores.parquet`` and ``top.parquet``.
        """
        with self.writing("anomalymatch scoring"):
            self._save_unsaved_first()
            return (yield from self._score(cluster))

    def _score(self, cluster: Any | None) -> Generator[ScoreBatch, None, ScoreResult]:
        if self.cycle == 0:
            raise NotTrainedError(f"{self.path}: no model yet; run a training cycle before scoring, or "
                                  f"'anomalymatch score {self.path} --unsupervised' for a first ranking "
                                  "without labels")
        trainer = self.trainer
        model = trainer.scoring_model
        model_hash = model_fingerprint(model)
        manifest = self._score_manifest(model_hash, embeddings=True)
        store = self._score_store(self.score_directory(trainer.cycle), manifest)
        if cluster is None:
            return (yield from score_collection(model, self.collection, self.normaliser,
                                                self.config.model.image_size, self.config.score,
                                                trainer.device, store=store))
        n_todo = sum(len(part) for part in store.remaining_parts())
        # chosen (or read back) here, once, so every worker and every resume scores alike
        path = prepare_run_scorer(model, self.collection, self.normaliser, self.config.model.image_size,
                                  self.config.score, trainer.device, store, len(self.collection)).path
        config = dataclasses.replace(self.config, score=path.forced(self.config.score))
        job = scoring_job(model, model_hash, config, trainer.in_chans, n_todo, embeddings=True)
        n_scored, rate = yield from score_on_cluster(cluster, job, self.collection, self.normaliser, store)
        return finish_stored_run(store, self.config.score.top_k, model_hash, n_scored, rate,
                                 tables_for=self.collection)

    def _score_store(self, directory: Path, manifest: ScoreManifest) -> ScoreStore:
        """The run's store; a finished run made with other preprocessing is replaced, which is said first."""
        existing = read_manifest(directory)
        if existing is not None and existing.preprocessing != manifest.preprocessing:
            warnings.warn(rescoring_notice(directory, existing.preprocessing, manifest.preprocessing),
                          SettingsChangedWarning, stacklevel=4)
        return ScoreStore(directory, manifest)

    def score_unsupervised(self, method: str = DEFAULT_NOVELTY_METHOD
                           ) -> Generator[EmbedProgress | ScoreBatch, None, ScoreResult]:
        """A first ranking with zero labels: every image scored by how unusual its pretrained
        embedding is (``core.scoring.novelty``: ``knn`` or ``isolation-forest``).

        The ranking is stored as cycle 0's scores, marked unsupervised, so the review and the
        export read it as a trained ranking; the first training cycle's scores replace it.
        Yields the reference sample's ``EmbedProgress`` then a ``ScoreBatch`` per batch;
        a stopped run resumes.

        The session's write lock is held throughout.

        Raises
        ------
        ConfigError
            An unknown ``method``.
        SessionError
            The session has a trained model already (its ranking is the one reviewed).
        """
        with self.writing("anomalymatch scoring"):
            return (yield from self._score_unsupervised(method))

    def _score_unsupervised(self, method: str) -> Generator[EmbedProgress | ScoreBatch, None, ScoreResult]:
        check_novelty_method(method)
        if self.cycle > 0:
            raise SessionError(f"{self.path}: the session has a trained model (cycle {self.cycle}) whose "
                               "ranking the review shows; the unsupervised ranking is for a start "
                               "without labels: run 'anomalymatch score' for the model's ranking")
        probe, channels = self.config.probe, self.collection.shape[2]
        with torch.random.fork_rng(devices=[]):  # the new head's random weights leave the caller's RNG alone
            network = build_model(self.config.model, channels).model
        embedder = FrozenEmbedder(network, probe.size, probe.layers, probe.uses_morphology(channels))
        device = choose_device(self.config.model.device)
        embedder.to(device)
        key = f"unsupervised:{method}"
        fingerprint = model_fingerprint(embedder)
        store = self._score_store(self.score_directory(0), self._score_manifest(
            f"{method}-{fingerprint}", cycle=0, method=key, embeddings=True))
        size, score = self.config.model.image_size, self.config.score
        scorer = yield from fit_novelty(embedder, self.collection, self.normaliser, size, method, device,
                                        self.config.train.seed, score.num_workers)
        store.record_inference(key)
        n_scored, rate = yield from score_parts(scorer, self.collection, self.normaliser, size, score,
                                                store.remaining_parts(), store.write_part,
                                                len(self.collection))
        return finish_stored_run(store, score.top_k, store.manifest.model_hash, n_scored, rate,
                                 tables_for=self.collection)

    def ranking_method(self) -> str:
        """What made the ranking the review shows: "" (a trained model, or none yet) or
        ``unsupervised:<method>`` (``score_unsupervised``)."""
        return next((status.method for status in self.score_runs() if status.complete), "")

    def similar(self, queries: list[int | str | Path], top: int = 100) -> SimilarImages:
        """The ``top`` images most like ``queries`` (indices, image ids or image files), by cosine
        similarity of the embeddings the latest score run stored (see ``core.discovery.search``).

        Raises
        ------
        NoEmbeddingsError, UnknownIdError, ShapeMismatchError
        """
        searched = SearchedSession(self.path, self.collection, self.normaliser, self.config.model.image_size,
                                   self.cycle, lambda: (self.trainer.scoring_model, self.trainer.device),
                                   self.score_runs())
        return similar_images(searched, queries, top)

    def compute_map(self, sample: int | None = None, seed: int = 0) -> Generator[MapProgress, None, EmbeddingMap]:
        """Compute the 2-D embedding map of the latest embedded score run (UMAP of up to
        ``sample`` images: every labelled one and a random sample of the rest) and save it with
        the run; yields ``MapProgress`` (see ``core.discovery.embedding_map``).

        Raises
        ------
        NoEmbeddingsError, ConfigError
        """
        return (yield from compute_map(self.score_runs(), self.path, len(self.collection), self._labelled_indices,
                                       MAP_SAMPLE if sample is None else sample, seed))

    def embedding_map(self) -> EmbeddingMap | None:
        """The saved map of the latest embedded score run, or None until ``compute_map`` made one."""
        return saved_map(self.score_runs(), self.path)

    def label_indices(self, indices: Iterable[int], label: int | str, source: str = "selection") -> list[LabelEvent]:
        """Give many images one label in one step (a map selection, say); one ``undo`` reverts them all."""
        ids = self.collection.ids()
        pairs = [(ids[int(i)], label) for i in indices]
        return self.labels.set_many(pairs, cycle=self.cycle, source=source)

    def _score_manifest(self, model_hash: str, cycle: int | None = None, method: str = "",
                        embeddings: bool = False) -> ScoreManifest:
        collection = self.collection
        shard_table = getattr(collection, "shard_table", None)
        return ScoreManifest(
            collection=collection.fingerprint(), n_images=len(collection), model_hash=model_hash,
            cycle=self.trainer.cycle if cycle is None else cycle, part_size=self.config.score.part_size,
            preprocessing=self._preprocessing_key(),
            shards=shard_table() if shard_table is not None else (), method=method, embeddings=embeddings)

    def _preprocessing_key(self) -> str:
        return repr((self.config.data.normalisation, self.config.model.image_size,
                     self.config.score.tta))

    def scores(self) -> tuple[int, np.ndarray] | None:
        """(cycle, scores) of the newest complete score run, or None before any.

        A run that stopped before its end is never returned; ``score_notice``
        says when a newer run than the one returned is incomplete.
        """
        for status in self.score_runs():
            if status.complete:
                return status.cycle, open_scores(status.directory)[1]
        return None

    def score_runs(self) -> list[ScoreRunStatus]:
        """Every score run of this collection, newest first, with how far it got."""
        found = []
        for directory in sorted((self.path / "scores").glob("cycle-*"), reverse=True):
            status = run_status(directory)
            if status is not None and status.n_images == len(self.collection):
                found.append(status)
        return found

    def score_notice(self) -> str | None:
        """A warning when the newest score run is incomplete (None when it is complete or absent)."""
        runs = self.score_runs()
        if not runs or runs[0].complete:
            return None
        newest = runs[0]
        complete = next((r for r in runs if r.complete), None)
        using = (f"the scores of cycle {complete.cycle} (complete) are used instead" if complete
                 else "no complete scores exist yet")
        again = f" --unsupervised --method {newest.method.split(':', 1)[1]}" if newest.method else ""
        return (f"scoring of cycle {newest.cycle} is incomplete ({newest.parts_done} of {newest.n_parts} "
                f"parts); {using}. Run 'anomalymatch score {self.path}{again}' to finish it")

    def complete_scores(self) -> tuple[int, np.ndarray]:
        """(cycle, scores) of the newest complete run.

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
        notice = self.score_notice()
        if notice is not None:
            raise IncompleteScoresError(f"{self.path}: {notice}")
        if self.cycle > 0:
            raise NotTrainedError(f"{self.path}: no scores of the model (cycle {self.cycle}) are here (the scores "
                                  f"folder is gone or empty); run 'anomalymatch score {self.path}' to score the "
                                  "collection again")
        raise NotTrainedError(f"{self.path}: nothing scored yet; run 'anomalymatch train' first")

    def ranking(self, order: str = "score", which: str = "unlabelled", seed: int = 0) -> np.ndarray:
        """Collection indices in review order.

        ``order``: ``score`` (most anomalous first), ``uncertainty`` (closest
        to 0.5 first), ``random`` or ``diverse`` (the top candidates spread over
        their embeddings: ``core.scoring.diversity``); ``which``: ``unlabelled``,
        ``labelled`` or ``all`` images.  Images without a score come last.
        """
        needs_embeddings = get_order(order).needs_embeddings
        if which not in FILTERS:
            raise ConfigError(f"which must be one of {FILTERS}; got {which!r}")
        n = len(self.collection)
        found = self.scores()  # complete runs only: see score_notice
        scores = found[1] if found is not None else np.full(n, np.nan, dtype=np.float32)
        candidates = self._filtered(which, n)
        return rank(scores, candidates, order, seed, self.stored_embeddings() if needs_embeddings else None)

    def stored_embeddings(self) -> EmbeddingLookup:
        """indices -> the embeddings the newest embedded score run stored (for the ``diverse`` order).

        Raises
        ------
        NoEmbeddingsError
            No score run stored embeddings yet.
        """
        stored = self.embedded_run().embeddings()
        return lambda indices: np.asarray(stored[np.asarray(indices, dtype=np.int64)])

    def embedded_run(self) -> ScoreStore:
        """The newest complete score run that stored the images' embeddings.

        Raises
        ------
        NoEmbeddingsError
            No score run stored embeddings yet.
        """
        return embedded_run(self.score_runs(), self.path)

    def _labelled_indices(self) -> np.ndarray:
        """Collection indices of every image with a label (unsure included)."""
        return self.collection.indices_of(list(self.labels.current(include_unsure=True)))

    def _filtered(self, which: str, n: int) -> np.ndarray:
        if which == "all":
            return np.arange(n)
        labelled = np.zeros(n, dtype=bool)
        ids = list(self.labels.current(include_unsure=True))
        if ids:
            labelled[self.collection.indices_of(ids)] = True
        return np.flatnonzero(labelled if which == "labelled" else ~labelled)



class _SessionCycle:
    """A session's parts of a cycle (``core.learning.cycle.CycleParts``): its labels, its
    collection's images, its trainer, its checkpoints and its score runs."""

    whose = "the session"

    def __init__(self, session: Session, save_to: Path | None,
                 on_full_disk: Callable[[DiskFullError, int], None] | None, poll_s: float) -> None:
        self.session = session
        self.save_to, self.on_full_disk, self.poll_s = save_to, on_full_disk, poll_s
        self.train_config = session.config.train
        self.n_images = len(session.collection)

    @property
    def cycles_done(self) -> int:
        return self.session.cycle

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        return self.session.labelled()

    def left_out(self, labelled_idx: np.ndarray) -> np.ndarray:
        return labelled_idx  # unreadable images are found, and left out, as they are loaded

    def load(self, labelled_idx: np.ndarray, labels: np.ndarray, pool: np.ndarray,
             ) -> Generator[LoadProgress, None, TrainingData]:
        return (yield from self.session._load_training_data(labelled_idx, labels, pool))

    def trainer(self, cycle: int) -> Generator[TrainStage, None, Trainer]:
        if self.session._trainer is None:
            yield TrainStage(cycle, "building the model")
        self.session.require_checkpoint_space(self.save_to)  # the model's size, known once it is built
        return self.session.trainer

    def keep(self, trainer: Trainer, progress: list[TrainProgress]) -> None:
        self.session._keep_trained_cycle(progress, self.save_to, self.on_full_disk, self.poll_s)

    def score(self, trainer: Trainer) -> Generator[ScoreBatch, None, ScoreResult]:
        return (yield from self.session._score(None))


def saved_state(path: str | Path) -> str:
    """What a session folder holds now, in words: its latest checkpoint and its newest score run.

    Read from the files alone (the collection is not opened), for a message
    after an interruption that must claim no more than was kept.
    """
    path = Path(path)
    found = sorted((path / "checkpoints").glob("cycle-*.safetensors"))
    said = []
    if found:
        try:
            info = read_checkpoint_info(found[-1])
            said.append(f"the latest checkpoint is {found[-1]} (cycle {info.cycle}, "
                        f"{info.iterations_done} iterations in all)")
        except CheckpointError as err:
            said.append(f"the latest checkpoint cannot be read: {err}")
    else:
        said.append("no checkpoint has been saved")
    runs = sorted((path / "scores").glob("cycle-*"))
    status = run_status(runs[-1]) if runs else None
    if status is not None:
        state = "complete" if status.complete else f"{status.parts_done} of {status.n_parts} parts kept"
        said.append(f"the scores of cycle {status.cycle}: {state}")
    return "; ".join(said)


def _check_source(config_file: Path, config: SessionConfig) -> None:
    if not config.data.source:
        raise ConfigError(f"{config_file}: data.source is missing or empty; a session needs its data "
                          "source: set source = \"/path/to/images\" under [data], or create the session "
                          "again with 'anomalymatch init'")


def _check_label_store(path: Path) -> None:
    """Refuse a missing or empty label store: every session is created with one."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return
    what = "is missing" if size is None else "is empty (0 bytes)"
    raise SessionError(
        f"{path}: the session's label store {what}, so every label given would be lost; restore it "
        "from a backup, or start a new store from an export or label file with "
        f"'anomalymatch label {path.parent} FILE.csv --new-store'")


def _move_label_store_aside(path: Path) -> None:
    """Keep a damaged or empty store under another name (labels are never deleted)."""
    if not path.exists():
        return
    aside = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.old")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))


def _cycle_of(path: Path) -> int:
    match = re.search(r"cycle-(\d+)", path.name)
    if match is None:
        raise CheckpointError(f"{path}: checkpoint name does not say its cycle")
    return int(match.group(1))


__all__ = ["Session", "TrainConfig", "parse_label", "read_checkpoint_info"]
