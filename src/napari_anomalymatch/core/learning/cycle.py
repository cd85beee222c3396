"""One active-learning cycle: precondition, unlabelled pool, training, scoring, ranking.

``run_cycle`` is the one loop every front end drives: the command line's ``train``, the napari
worker and ``evaluate`` (whose simulated expert labels between cycles).  It takes the parts it
needs (``CycleParts``): where the labels and images come from, the trainer, what keeps a
trained cycle and what scores it.  A session's parts keep the checkpoint and store the scores
on disk (``core.learning.sessionmodel.SessionCycle``); ``evaluate``'s keep everything in memory
(``core.evaluation.protocol``).

It is a generator of the engine's progress events (``LoadProgress``, ``TrainStage``,
``TrainProgress``, then the scorer's own), so a front end can stop it between any two; closing
it during training keeps the iterations done (``CycleParts.keep``), closing it while scoring
keeps what the scorer wrote.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..config import TrainConfig
from ..loading import LoadProgress
from .progress import TrainingData, TrainProgress, TrainStage, announce_final_fit, check_trainable
from .training import Trainer


class CycleParts(Protocol):
    """What a cycle needs from whoever runs it (a session, the evaluation protocol)."""

    whose: str  # whose labels these are, for the precondition's message
    train_config: TrainConfig
    n_images: int

    @property
    def cycles_done(self) -> int:
        """How many cycles were trained before this one."""

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices and label codes (0 normal, 1 anomaly) of the images labelled now."""

    def left_out(self, labelled_idx: np.ndarray) -> np.ndarray:
        """Indices the unlabelled pool must not hold (the labelled ones, images known unusable)."""

    def load(self, labelled_idx: np.ndarray, labels: np.ndarray, pool: np.ndarray,
             ) -> Generator[LoadProgress, None, TrainingData]:
        """The preprocessed images of one cycle (images that cannot be read left out)."""

    def trainer(self, cycle: int) -> Generator[TrainStage, None, Trainer]:
        """The trainer, continuing from the previous cycle (built when first asked)."""

    def keep(self, trainer: Trainer, progress: list[TrainProgress]) -> None:
        """Keep the cycle just trained (or stopped part-way) and its losses."""

    def score(self, trainer: Trainer) -> Generator[Any, None, Any]:
        """Score the images with the trained model and rank them; return the scorer's result."""


@dataclass
class CycleResult:
    """What one cycle did: its iterations' progress and its scoring's result (None: not scored)."""

    cycle: int
    progress: list[TrainProgress] = field(default_factory=list)
    scored: Any = None


def unlabelled_pool(n_images: int, left_out: np.ndarray, wanted: int, seed: int, cycle: int) -> np.ndarray:
    """The unlabelled images cycle ``cycle`` trains on: up to ``wanted`` indices of ``n_images``,
    none of ``left_out``, drawn afresh for each cycle from ``seed`` (so a session and a re-run
    draw alike), in ascending order."""
    rng = np.random.default_rng([seed, cycle])
    draw = rng.choice(n_images, size=min(n_images, wanted + len(left_out)), replace=False)
    return np.sort(draw[~np.isin(draw, left_out)][:wanted])


def run_cycle(parts: CycleParts, iterations: int | None = None, score: bool = True,
              ) -> Generator[Any, None, CycleResult]:
    """Train one cycle and (with ``score``) score and rank the images, yielding progress events.

    Parameters
    ----------
    parts
        The labels, images, trainer and stores of whoever runs the cycle (``CycleParts``).
    iterations
        Training iterations (None: the training settings').
    score
        False: stop after training (and keeping) the cycle.

    Raises
    ------
    ConfigError
        Fewer than one anomaly and one normal label (``check_trainable``, the one precondition).
    """
    labelled_idx, labels = parts.labelled()
    check_trainable(labels, parts.whose)
    cycle = parts.cycles_done + 1
    train = parts.train_config
    pool = unlabelled_pool(parts.n_images, parts.left_out(labelled_idx), train.unlabelled_pool_size,
                           train.seed, cycle)
    data = yield from parts.load(labelled_idx, labels, pool)
    trainer = yield from parts.trainer(cycle)
    result = CycleResult(cycle)
    yield TrainStage(cycle, f"fitting the head to {len(data.labelled)} labelled images")
    yield from _train(parts, trainer, data, iterations, cycle, result.progress)
    if score:
        result.scored = yield from parts.score(trainer)
    return result


def _train(parts: CycleParts, trainer: Trainer, data: TrainingData, iterations: int | None, cycle: int,
           progress: list[TrainProgress]) -> Iterator[TrainProgress | TrainStage]:
    """The trainer's iterations (kept in ``progress``); what was trained is kept however this ends."""
    done_before = trainer.iterations_done
    events = announce_final_fit(trainer.run(data, iterations), cycle)
    try:
        for event in events:
            if isinstance(event, TrainProgress):
                progress.append(event)
            yield event
    finally:
        events.close()  # the trainer's final fit runs now, also when the cycle is stopped
        if trainer.iterations_done > done_before:
            parts.keep(trainer, progress)
