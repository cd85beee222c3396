"""What training takes and reports: the images of one cycle, the one precondition (an anomaly
and a normal label), and the progress events a cycle yields (``TrainProgress`` per iteration,
``TrainStage`` for the steps without progress of their own)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..labels import ANOMALY, NORMAL


@dataclass(frozen=True)
class TrainProgress:
    """State after one iteration of a cycle."""

    cycle: int
    iteration: int
    iterations: int
    loss: float
    sup_loss: float
    unsup_loss: float
    mask_ratio: float
    pseudo_anomaly_ratio: float
    seconds_per_iteration: float

    @property
    def fraction_done(self) -> float:
        return self.iteration / self.iterations


def check_trainable(labels: np.ndarray, whose: str, advice: str = "Label some (or import a label file) first",
                    ) -> None:
    """The one precondition of training, wherever its labels come from (a session, a benchmark's
    initial labels, the training data): at least one anomaly and one normal image among ``labels``
    (label codes); ``whose`` labels they are and ``advice`` go into the message.

    Raises
    ------
    ConfigError
        With one class (or no label) only.
    """
    codes = np.asarray(labels)
    anomalies, normal = int((codes == ANOMALY).sum()), int((codes == NORMAL).sum())
    if anomalies == 0 or normal == 0:
        raise ConfigError(f"training needs at least one anomaly and one normal label; {whose} has {anomalies} "
                          f"anomalies and {normal} normal images. {advice}")


@dataclass(frozen=True)
class TrainStage:
    """A step of a cycle with no progress of its own to report (building the model, fitting the
    head before the first iteration or the probe after the last), announced when it starts."""

    cycle: int
    description: str


@dataclass(frozen=True)
class TrainingData:
    """Preprocessed images of one cycle, ``(N, C, S, S)`` in [0, 1]."""

    labelled: torch.Tensor
    labels: torch.Tensor
    unlabelled: torch.Tensor

    def __post_init__(self) -> None:
        labels = set(self.labels.tolist())
        if not labels <= {NORMAL, ANOMALY}:
            raise ConfigError(f"training labels must be 0 (normal) or 1 (anomaly); got {sorted(labels)}")
        check_trainable(self.labels.numpy(), "the training data", "Label some of each, of images that can be read")
        if len(self.labelled) != len(self.labels):
            raise ConfigError(f"{len(self.labelled)} labelled images but {len(self.labels)} labels")


def announce_final_fit(events: Iterator[TrainProgress], cycle: int) -> Iterator[TrainProgress | TrainStage]:
    """``Trainer.run``'s events and, after the last iteration, a ``TrainStage`` for the head's and
    probe's final fit, which runs as the run ends and reports nothing of its own."""
    try:
        for event in events:
            yield event
            if event.iteration == event.iterations:
                yield TrainStage(cycle, "fitting the scoring head to the trained model")
    finally:
        events.close()  # type: ignore[attr-defined]
