"""Sample data (real FIRST radio galaxies) and the ranking writer."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_anomalymatch._napari.sample_data import first_radio_galaxies
from napari_anomalymatch._napari.writer import write_ranking
from napari_anomalymatch.core.errors import ConfigError, NotTrainedError


def test_first_sample_is_a_real_stack_with_its_truth():
    pytest.importorskip("firstgalaxydata")
    (data, meta, kind), = first_radio_galaxies()
    assert kind == "image" and data.shape == (300, 300, 300) and data.dtype == np.uint8
    assert data.max() == 255 and 0.001 < (data > 0).mean() < 0.5  # bright sources on a dark sky
    truth = meta["metadata"]["is_anomaly"]
    assert truth.sum() == 15 and len(set(meta["metadata"]["ids"])) == 300
    assert set(meta["metadata"]["galaxy_class"]) == {"FRI", "FRII", "Compact", "Bent"}


def test_writer_saves_the_session_behind_a_review_layer(tmp_path, viewer, controller):
    meta = {"name": "AnomalyMatch candidate", "metadata": controller.candidate_layer.metadata}
    with pytest.raises(NotTrainedError, match="nothing scored yet"):
        write_ranking(str(tmp_path / "r.csv"), None, meta)
    from napari_anomalymatch.core.scoring.store import ScoreManifest, ScoreStore

    session = controller.session
    scores = np.linspace(0, 1, 16, dtype=np.float32)
    manifest = ScoreManifest(session.collection.fingerprint(), 16, "test", 1, 16, "test")
    store = ScoreStore(session.runs.directory(1), manifest)
    store.write_part(0, scores)
    store.consolidate()  # a finished run: only those are ranked
    store.mark_complete({})
    controller.refresh()
    controller.go_to(0)
    controller.label("a")
    written = write_ranking(str(tmp_path / "ranking.csv"), None, meta)
    with open(written[0]) as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["id"] == "img_015.png" and rows[0]["label"] == "anomaly"
    viewer.layers.selection = {controller.candidate_layer}  # File > Save Selected Layers
    saved = viewer.layers.save(str(tmp_path / "saved.ecsv"), selected=True, plugin="napari-anomalymatch")
    assert saved == [str(tmp_path / "saved.ecsv")]
    assert "img_015.png" in (tmp_path / "saved.ecsv").read_text()
    with pytest.raises(ConfigError, match="not an AnomalyMatch review layer"):
        write_ranking(str(tmp_path / "x.csv"), None, {"name": "cells", "metadata": {}})
