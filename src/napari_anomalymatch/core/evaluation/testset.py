"""A held-out labelled test set and how well the current scores rank it.

A test set is a CSV/ECSV file with an ``id`` (or ``path``) column and a truth
column (``is_anomaly``, ``truth`` or ``label``), or the ``is_anomaly`` column the
data source carries itself (a benchmark manifest's, the FIRST sample's:
``SOURCE_TRUTH``); its labels are never used for training.  ``evaluate_test_set``
measures the ranking of the test images that were not labelled for training:
AUROC, AUPRC, the ROC and precision-recall curves and the score histograms of
both classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LabelError
from ..io.base import ImageCollection
from ..io.labelfiles import read_label_file
from ..labels import ANOMALY, NORMAL, parse_label
from .metrics import ranking_metrics

TRUTH_COLUMNS = ("is_anomaly", "truth", "label", "labels", "class")
SOURCE_TRUTH = "(the source's own is_anomaly column)"  # read_test_set's name for it
HISTOGRAM_BINS = np.linspace(0.0, 1.0, 41)


@dataclass(frozen=True)
class TestSet:
    """Collection indices of the test images and whether each is an anomaly."""

    __test__ = False  # not a pytest test class

    source: str
    indices: np.ndarray
    is_anomaly: np.ndarray


@dataclass(frozen=True)
class TestReport:
    """The ranking quality on a test set, with curves for plotting."""

    __test__ = False

    metrics: dict[str, float]
    fpr: np.ndarray
    tpr: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    bins: np.ndarray
    normal_counts: np.ndarray
    anomaly_counts: np.ndarray
    n_evaluated: int
    n_left_out: int


def read_test_set(path: str | Path, collection: ImageCollection) -> TestSet:
    """Read a test set; every id must be in ``collection`` and both classes present.

    Raises
    ------
    UnknownIdError, LabelError, SourceNotFoundError, CorruptFileError
    """
    if str(path) == SOURCE_TRUTH:
        return source_test_set(collection)
    path = Path(path)
    pairs = [(i, label) for i, label in read_label_file(path, collection, label_columns=TRUTH_COLUMNS)
             if label in (ANOMALY, NORMAL)]
    truth = np.array([label == ANOMALY for _, label in pairs], dtype=bool)
    _check_both_classes(str(path), truth)
    indices = collection.indices_of([i for i, _ in pairs])
    return TestSet(str(path), indices, truth)


def source_test_set(collection: ImageCollection) -> TestSet:
    """Every image of ``collection`` with the truth its source carries (an ``is_anomaly`` column).

    Raises
    ------
    LabelError
        When the source has no such column (naming the columns it has), or it holds one class only.
    """
    columns = collection.metadata(np.arange(len(collection)))
    if "is_anomaly" not in columns:
        raise LabelError(f"{collection.source}: the source carries no is_anomaly column (its columns: "
                         f"{sorted(columns) or 'none'}); load a test-set file instead")
    where = f"{collection.source}, is_anomaly"
    truth = np.array([parse_label(value.item() if hasattr(value, "item") else value, where) == ANOMALY
                      for value in columns["is_anomaly"]], dtype=bool)
    _check_both_classes(collection.source, truth)
    return TestSet(SOURCE_TRUTH, np.arange(len(collection)), truth)


def _check_both_classes(where: str, truth: np.ndarray) -> None:
    if truth.all() or not truth.any():
        raise LabelError(
            f"{where}: a test set needs anomalies and normal images; it holds {int(truth.sum())} "
            f"anomalies and {int((~truth).sum())} normal images")


def evaluate_test_set(scores: np.ndarray, test: TestSet,
                      training_indices: np.ndarray | None = None) -> TestReport:
    """How well ``scores`` rank the test images not in ``training_indices``.

    Raises
    ------
    LabelError
        When the images left after removing the training images hold only one class.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    keep = np.ones(len(test.indices), dtype=bool)
    if training_indices is not None and len(training_indices):
        keep &= ~np.isin(test.indices, training_indices)
    truth = test.is_anomaly[keep]
    values = np.asarray(scores, dtype=np.float64)[test.indices[keep]]
    if truth.all() or not truth.any():
        raise LabelError(
            f"{test.source}: after leaving out the {int((~keep).sum())} images labelled for "
            "training, the test set holds only one class; add test images of both classes")
    filled = np.where(np.isfinite(values), values, -1.0)  # unscored images rank last
    fpr, tpr, _ = roc_curve(truth, filled)
    precision, recall, _ = precision_recall_curve(truth, filled)
    finite = np.isfinite(values)
    return TestReport(
        metrics=ranking_metrics(values, truth), fpr=fpr, tpr=tpr, recall=recall, precision=precision,
        bins=HISTOGRAM_BINS,
        normal_counts=np.histogram(values[finite & ~truth], HISTOGRAM_BINS)[0],
        anomaly_counts=np.histogram(values[finite & truth], HISTOGRAM_BINS)[0],
        n_evaluated=int(keep.sum()), n_left_out=int((~keep).sum()))
