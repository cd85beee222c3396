"""A held-out test set: reading it and measuring the ranking with curves."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_anomalymatch.core.errors import LabelError, UnknownIdError
from napari_anomalymatch.core.evaluation.testset import evaluate_test_set, read_test_set
from napari_anomalymatch.core.io import open_collection


@pytest.fixture
def collection(blob_folder):
    return open_collection(blob_folder[0])


def write_table(path, header, rows):
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_reads_is_anomaly_by_path_and_measures_only_held_out_images(tmp_path, collection, blob_folder):
    folder, truth = blob_folder
    rows = [[f"blobs/{collection.id_of(i)}", int(truth[i])] for i in range(len(collection))]
    test = read_test_set(write_table(tmp_path / "truth.csv", ["path", "is_anomaly"], rows), collection)
    assert len(test.indices) == 40 and test.is_anomaly.sum() == 8
    perfect = truth.astype(np.float32) * 0.8 + 0.1
    report = evaluate_test_set(perfect, test, training_indices=np.array([0, 1]))
    assert report.metrics["auroc"] == pytest.approx(1.0) and report.metrics["auprc"] == pytest.approx(1.0)
    assert (report.n_evaluated, report.n_left_out) == (38, 2)
    assert report.fpr[0] == 0 and report.tpr[-1] == 1
    assert report.anomaly_counts.sum() == 7 and report.normal_counts.sum() == 31
    upper = report.bins[:-1] >= 0.5
    assert report.anomaly_counts[upper].sum() == 7 and report.normal_counts[~upper].sum() == 31
    reversed_report = evaluate_test_set(1 - perfect, test)
    assert reversed_report.metrics["auroc"] == pytest.approx(0.0)


def test_bad_test_sets_are_refused_with_the_reason(tmp_path, collection):
    one_class = write_table(tmp_path / "one.csv", ["id", "label"], [[collection.id_of(0), "normal"]])
    with pytest.raises(LabelError, match="holds 0 anomalies and 1 normal"):
        read_test_set(one_class, collection)
    unknown = write_table(tmp_path / "unknown.csv", ["id", "truth"], [["ghost.png", 1]])
    with pytest.raises(UnknownIdError, match=r"unknown\.csv, row 2: .*'ghost\.png'"):
        read_test_set(unknown, collection)
    no_truth = write_table(tmp_path / "none.csv", ["id", "score"], [[collection.id_of(0), 1]])
    with pytest.raises(LabelError, match=r"no label column \(one of \['is_anomaly'"):
        read_test_set(no_truth, collection)
    two = write_table(tmp_path / "two.csv", ["id", "label"], [[collection.id_of(0), "anomaly"],
                                                             [collection.id_of(1), "normal"]])
    test = read_test_set(two, collection)
    with pytest.raises(LabelError, match="only one class"):
        evaluate_test_set(np.zeros(40), test, training_indices=np.array([0]))


def test_a_manifest_and_a_stack_carry_their_own_truth(tmp_path, blob_manifest, collection):
    from napari_anomalymatch.core.evaluation.testset import SOURCE_TRUTH, source_test_set
    from napari_anomalymatch.core.io.hdf5 import write_hdf5_stack

    manifest = open_collection(blob_manifest)
    test = read_test_set(SOURCE_TRUTH, manifest)  # the name a session's review state keeps
    assert test.source == SOURCE_TRUTH and len(test.indices) == 80 and test.is_anomaly.sum() == 16
    np.testing.assert_array_equal(test.is_anomaly, np.arange(80) % 5 == 0)  # blob_images' rings

    truth = np.arange(6) % 3 == 0
    stack = write_hdf5_stack(tmp_path / "stack.h5", np.zeros((6, 8, 8), np.uint8), columns={"is_anomaly": truth})
    np.testing.assert_array_equal(source_test_set(open_collection(stack)).is_anomaly, truth)

    with pytest.raises(LabelError, match=r"blobs: the source carries no is_anomaly column \(its columns: \['path'\]\)"):
        source_test_set(collection)
