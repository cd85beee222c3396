"""A scripted session: open the plugin on a viewer, load, label, train, step, export."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_anomalymatch import open_plugin
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.labels import ANOMALY, NORMAL

from ..conftest import TINY_TRAINING


def test_scripted_session(tmp_path, viewer, blobs):
    folder, truth = blobs
    app = open_plugin(viewer)
    try:
        session = app.load(folder, session_dir=tmp_path / "scripted", image_size=32, num_workers=0,
                           batch_size=TINY_TRAINING["batch_size"], iterations=TINY_TRAINING["iterations"],
                           unlabelled_ratio=1, unlabelled_pool_size=16, part_size=16)
        assert session.config.model.image_size == 32 and session.config.score.num_workers == 0
        with pytest.raises(ConfigError, match="at least one anomaly and one normal"):
            app.train_cycle()
        assert app.current.rank == 1 and app.current.index == 0  # truth: every 4th image is a ring
        app.label("a")
        app.label("normal")
        assert session.labels.current() == {"img_000.png": ANOMALY, "img_001.png": NORMAL}
        outcome = app.train_cycle()
        assert outcome.score_result is not None and outcome.score_result.n_scored == 16
        app.go_to(1)
        scores = [app.current.score]
        for _ in range(4):
            scores.append(app.next().score)
        assert scores == sorted(scores, reverse=True) and app.current.rank == 5
        app.order("uncertainty")
        assert abs(app.current.score - 0.5) <= abs(app.next().score - 0.5)
        shown = app.display(gamma=0.7)
        assert shown.gamma == 0.7 and app.widget.display_panel.gamma.value == 0.7  # the panel follows
        shot = app.screenshot(tmp_path / "shot.png")
        assert (tmp_path / "shot.png").exists() and shot[..., :3].std() > 5
        path = app.export(tmp_path / "ranking.csv")
        with open(path) as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 16 and {r["label"] for r in rows} == {"anomaly", "normal", "unlabelled"}
        app.configure(probe_views="flip")  # the probe's flat names reach its section, and the trainer
        assert session.config.probe.views == "flip" and session.trainer.probe_config.views == "flip"
        assert 'views = "flip"' in (tmp_path / "scripted" / "session.toml").read_text()
        with pytest.raises(ConfigError, match="unknown setting 'iteration'"):
            app.configure(iteration=3)
        with pytest.raises(ConfigError, match=r"\['crop'\] are data settings"):
            app.configure(crop=0.5)  # chosen when the session is created, or in the Data panel
    finally:
        app.close()
    assert np.isfinite(outcome.score_result.scores).all()
