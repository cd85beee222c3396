"""The Train panel's form: a finished edit reaches the session at once; bad values are notifications."""

from __future__ import annotations

from napari_anomalymatch.core.config import SessionConfig

from .conftest import notifications_during


def test_form_shows_and_changes_the_session_settings(widget, controller):
    form = widget.train_panel.form
    assert form.iterations.value == 2 and form.image_size.value == 32  # the session's tiny settings
    form.iterations.value = 7
    form.confidence_threshold.value = 0.9
    config = SessionConfig.from_toml(controller.session.path / "session.toml")
    assert config.train.iterations == 7 and config.train.confidence_threshold == 0.9
    assert controller.session.config.train.iterations == 7  # what the r key trains with
    assert not form.tta.value
    form.tta.value = True  # radio sources have no up: score every flip and quarter turn
    assert SessionConfig.from_toml(controller.session.path / "session.toml").score.tta
    assert controller.session.config.score.tta and controller.session.config.train.iterations == 7

    def type_model_name(text: str) -> None:
        form.model_name.value = text
        form.model_name.native.editingFinished.emit()  # Enter, or the focus moves on

    messages = notifications_during(lambda: type_model_name(" "))
    assert len(messages) == 1 and "model.name must be a timm model name" in messages[0]
    assert controller.session.config.model.name == "tf_efficientnet_lite0"


def test_rank_without_labels_button_fills_the_review(widget, controller, tmp_path):
    from ..conftest import rare_bar_folder
    from .conftest import tiny_config

    folder, truth = rare_bar_folder(tmp_path / "bars", n=24, anomalies=(5,))
    controller.load(tmp_path / "bars-session", folder, config=tiny_config())
    panel = widget.train_panel
    assert panel.rank_button.enabled  # no trained model yet
    panel.rank_button.clicked.emit()
    controller.wait()
    assert controller.queue.scores_cycle == 0 and controller.current.index == 5  # the odd image first
    assert "unsupervised ranking" in widget.review_panel.candidate.value
    assert "label a few anomalies" in panel.status.value and panel.rank_button.enabled
