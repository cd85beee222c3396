"""A session folder's model: its checkpoints (``checkpoints/cycle-NNNN.safetensors``), the trainer
restored from the latest, and a trained cycle the disk refused to save, kept until it is saved.

The session (``core.session``) holds one and hands it, with the collection and labels, to the
cycle (``SessionCycle``, the ``CycleParts`` of ``core.learning.cycle``) and to scoring.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Generator
from pathlib import Path

import numpy as np
import torch

from ..atomic import free_space_text
from ..config import CONFIG_FILE, SessionConfig, TrainConfig
from ..errors import CheckpointError, DiskFullError
from ..io.base import ImageCollection
from ..loading import DecodedImages, LoadProgress
from ..transforms import Normaliser
from .checkpoints import (
    CheckpointInfo,
    checkpoint_bytes,
    cycle_of,
    has_space,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from .history import write_loss_history
from .progress import TrainingData, TrainProgress, TrainStage
from .settingsdrift import SettingsChangedWarning, check_model_name, image_size_notice
from .training import Trainer

CHECKPOINTS_FOLDER = "checkpoints"


class SessionModel:
    """The model of the session in ``folder``, with its ``config``; ``channels`` tells the
    collection's number of channels, asked only when the network is built."""

    def __init__(self, folder: Path, config: SessionConfig, channels: Callable[[], int]) -> None:
        self.folder = Path(folder)
        self.config = config
        self._channels = channels
        self._trainer: Trainer | None = None
        self._unsaved: list[TrainProgress] | None = None  # a trained cycle the disk refused, and its losses
        self.decoded = DecodedImages()  # the last cycle's training images: the next reads only new ones

    def use_config(self, config: SessionConfig) -> None:
        """New settings: a new data source or model starts the model afresh from its checkpoint."""
        rebuild = config.data != self.config.data or config.model != self.config.model
        self.config = config
        if rebuild:
            self._trainer = None
        elif self._trainer is not None:
            self._trainer.set_config(config.train, config.probe)

    def catch_up(self) -> None:
        """Forget a trainer another process has trained beyond: go on from its checkpoint."""
        if self._trainer is not None and self._unsaved is None and self._trainer.cycle != self.cycle:
            self._trainer = None

    def close(self) -> None:
        self.decoded = DecodedImages()

    # -- checkpoints ---------------------------------------------------------------------

    @property
    def cycle(self) -> int:
        """The number of training cycles run so far (that of the latest checkpoint)."""
        latest = self.latest_checkpoint()
        return 0 if latest is None else cycle_of(latest)

    def checkpoint_path(self, cycle: int) -> Path:
        return self.folder / CHECKPOINTS_FOLDER / f"cycle-{cycle:04d}.safetensors"

    def latest_checkpoint(self) -> Path | None:
        found = sorted((self.folder / CHECKPOINTS_FOLDER).glob("cycle-*.safetensors"))
        return found[-1] if found else None

    @property
    def built(self) -> bool:
        """Whether the trainer is built already (else ``trainer`` builds the network)."""
        return self._trainer is not None

    @property
    def trainer(self) -> Trainer:
        """The trainer, restored from the latest checkpoint when there is one."""
        if self._trainer is None:
            latest = self.latest_checkpoint()
            if latest is not None:
                self._check_settings_against(latest)  # before the network is built from the settings
            trainer = Trainer(self.config.model, self.config.train, self._channels(),
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
        check_model_name(self.folder / CONFIG_FILE, self.config, info, checkpoint)
        notice = image_size_notice(self.folder / CONFIG_FILE, self.config, info, checkpoint)
        if notice is not None:
            warnings.warn(notice, SettingsChangedWarning, stacklevel=4)

    def _restore(self, trainer: Trainer, path: Path) -> None:
        try:
            tensors, info = load_checkpoint(path)
        except CheckpointError as err:
            raise CheckpointError(f"{err}; {self._previous_advice(path)}") from err
        expected = (self.config.model.name, self._channels())
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
        found = sorted((self.folder / CHECKPOINTS_FOLDER).glob("cycle-*.safetensors"))
        earlier = [p for p in found if p < damaged]
        if not earlier:
            return f"move it aside (mv {damaged} {damaged}.damaged) to start training afresh"
        return (f"the previous cycle's checkpoint is {earlier[-1]}: move the damaged one aside "
                f"(mv {damaged} {damaged}.damaged) to continue from cycle {cycle_of(earlier[-1])}")

    # -- saving ------------------------------------------------------------------------

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
            write_loss_history(self.folder, trainer.cycle, progress)
        return path

    @property
    def unsaved_cycle(self) -> int | None:
        """The cycle trained in this process whose checkpoint the disk refused (None: all saved)."""
        return None if self._unsaved is None else self.trainer.cycle

    def save_unsaved_first(self) -> None:
        """A cycle the disk refused is saved before anything builds on it (or this raises again)."""
        if self._unsaved is not None:
            self.save_checkpoint()

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
        folder = self.folder / CHECKPOINTS_FOLDER
        needed = checkpoint_bytes(self.trainer.state_dict())
        if has_space(folder, needed) or (elsewhere is not None and has_space(elsewhere, needed)):
            return
        where = folder if elsewhere is None else f"{folder} or {elsewhere}"
        raise DiskFullError(
            f"{folder}: training would end with a checkpoint of about {needed / 1e6:.1f} MB, but the disk "
            f"has {free_space_text(folder)} free{'' if elsewhere is None else f' and {elsewhere} too little'}; "
            f"nothing was trained. Free some space on {where} and run again, or name a folder "
            "with room for the checkpoint (--save-to)")

    def keep_trained_cycle(self, progress: list[TrainProgress], save_to: Path | None,
                           on_full_disk: Callable[[DiskFullError, int], None] | None, poll_s: float) -> None:
        """Save the cycle just trained; on a full disk, to ``save_to`` (then raise), or wait for
        space after telling ``on_full_disk``, or keep it in memory and raise."""
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


class SessionCycle:
    """A session's parts of a cycle (``core.learning.cycle.CycleParts``): its labels, its
    collection's images, its model and checkpoints, and ``score``, which scores and stores the
    ranking (``core.scoring.collection``)."""

    whose = "the session"

    def __init__(self, model: SessionModel, collection: ImageCollection, normaliser: Normaliser,
                 labelled: Callable[[], tuple[np.ndarray, np.ndarray]],
                 score: Callable[[Trainer], Generator],
                 save_to: Path | None = None, on_full_disk: Callable[[DiskFullError, int], None] | None = None,
                 poll_s: float = 10.0) -> None:
        self.model, self.collection, self.normaliser = model, collection, normaliser
        self.labelled, self._score = labelled, score
        self.save_to, self.on_full_disk, self.poll_s = save_to, on_full_disk, poll_s
        self.train_config: TrainConfig = model.config.train
        self.n_images = len(collection)

    @property
    def cycles_done(self) -> int:
        return self.model.cycle

    def left_out(self, labelled_idx: np.ndarray) -> np.ndarray:
        return labelled_idx  # unreadable images are found, and left out, as they are loaded

    def load(self, labelled_idx: np.ndarray, labels: np.ndarray, pool: np.ndarray,
             ) -> Generator[LoadProgress, None, TrainingData]:
        config = self.model.config
        everything = np.concatenate([labelled_idx, pool])
        images, valid = yield from self.model.decoded.load(self.collection, self.normaliser, config.model.image_size,
                                                           everything, num_workers=config.score.num_workers)
        n = len(labelled_idx)
        keep_labelled = torch.from_numpy(valid[:n])
        keep_pool = torch.from_numpy(valid[n:])
        return TrainingData(images[:n][keep_labelled], torch.from_numpy(labels)[keep_labelled],
                            images[n:][keep_pool])

    def trainer(self, cycle: int) -> Generator[TrainStage, None, Trainer]:
        if not self.model.built:
            yield TrainStage(cycle, "building the model")
        self.model.require_checkpoint_space(self.save_to)  # the model's size, known once it is built
        return self.model.trainer

    def keep(self, trainer: Trainer, progress: list[TrainProgress]) -> None:
        self.model.keep_trained_cycle(progress, self.save_to, self.on_full_disk, self.poll_s)

    def score(self, trainer: Trainer) -> Generator:
        return (yield from self._score(trainer))
