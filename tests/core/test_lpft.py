"""The lpft head: the FixMatch network whose head starts as the linear probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_anomalymatch.core.config import ModelConfig, ProbeConfig, ScoreConfig, TrainConfig
from napari_anomalymatch.core.errors import CheckpointError
from napari_anomalymatch.core.learning.fixmatch import FixMatchBatch, fixmatch_step
from napari_anomalymatch.core.learning.lpft import ProbedNetwork
from napari_anomalymatch.core.learning.training import Trainer, TrainingData
from napari_anomalymatch.core.scoring.run import score_components

from ..conftest import blob_images

CPU = torch.device("cpu")
TINY = TrainConfig(iterations=6, batch_size=4, unlabelled_ratio=2, seed=3)  # the default head: lpft


def _blobs(n: int = 60) -> tuple[torch.Tensor, np.ndarray, TrainingData]:
    images, truth = blob_images(n, size=32, seed=4)
    images = torch.from_numpy(images[:, None].astype(np.float32) / 255)
    labelled = np.concatenate([np.flatnonzero(truth)[:3], np.flatnonzero(~truth)[:6]])
    data = TrainingData(images[labelled], torch.from_numpy(truth[labelled].astype(np.int64)), images)
    return images, truth, data


def _scores(trainer: Trainer, images: torch.Tensor) -> dict[str, np.ndarray]:
    return score_components(trainer.scoring_model, images, ScoreConfig(), CPU, which=("lpft", "probe"))


def _after(iterations: int, config: TrainConfig = TINY) -> tuple[Trainer, torch.Tensor, np.ndarray]:
    """A trainer stopped after ``iterations`` FixMatch iterations of its first cycle (0: right after the
    head was fitted as a probe)."""
    images, truth, data = _blobs()
    trainer = Trainer(ModelConfig(image_size=32), config, in_chans=1, device=CPU)
    run = trainer.run(data, iterations=max(iterations, 1))
    if iterations == 0:
        trainer._fit_head(trainer.model, *trainer._to_device(data), draw=3)  # what run() does first
        trainer.refit_probe(data.labelled, data.labels, data.unlabelled)
    else:
        for _ in run:
            pass
    return trainer, images, truth


@pytest.fixture(scope="module")
def untrained():
    return _after(0)


@pytest.fixture(scope="module")
def trained():
    return _after(TINY.iterations)


def test_the_lpft_head_trains_a_probe_initialised_network(trained):
    trainer, images, _ = trained
    assert TINY.head == "lpft"  # the default score is the FixMatch network's
    assert isinstance(trainer.model, ProbedNetwork) and isinstance(trainer.ema.module, ProbedNetwork)
    assert trainer.scoring_model.head == "lpft"
    assert trainer.model.morphology  # single-band images: the probe's morphology statistics too


def test_before_fine_tuning_the_network_ranks_as_the_probe(untrained):
    trainer, images, _ = untrained
    scores = _scores(trainer, images)
    np.testing.assert_allclose(scores["lpft"], scores["probe"], atol=1e-4)


def test_fixmatch_iterations_change_the_default_score(untrained, trained):
    before = _scores(untrained[0], untrained[1])["lpft"]
    after = _scores(trained[0], trained[1])["lpft"]
    assert np.abs(after - before).max() > 1e-2
    # the baseline probe reads frozen features: the same labels give the same probe either way
    np.testing.assert_allclose(_scores(trained[0], trained[1])["probe"], _scores(untrained[0], untrained[1])["probe"],
                               atol=1e-4)


def test_the_trained_network_separates_the_blobs(trained):
    trainer, images, truth = trained
    lpft = _scores(trainer, images)["lpft"]
    assert lpft[truth].min() > lpft[~truth].max()


def test_unlabelled_images_enter_the_loss():
    images, _, data = _blobs()
    trainer = Trainer(ModelConfig(image_size=32), TINY, in_chans=1, device=CPU)
    trainer._fit_head(trainer.model, *trainer._to_device(data), draw=3)
    config = TrainConfig(confidence_threshold=0.5)  # every weak view gives a pseudo-label
    labelled, labels = data.labelled[:4], data.labels[:4]
    losses, gradients = [], []
    for seed in (0, 1):
        unlabelled = torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
        trainer.model.zero_grad()
        result = fixmatch_step(trainer.model, FixMatchBatch(labelled, labels, unlabelled, unlabelled.flip(-1)), config)
        result.loss.backward()
        assert result.mask_ratio == 1.0 and result.unsup_loss > 0
        losses.append(result.unsup_loss)
        gradients.append(trainer.model.head.weight.grad.clone())
    assert losses[0] != losses[1] and not torch.allclose(gradients[0], gradients[1])


def test_a_checkpoint_restores_the_network_and_its_morphology(trained):
    trainer, images, _ = trained
    restored = Trainer(ModelConfig(image_size=32), TrainConfig(head="lpft"), in_chans=1, device=CPU,
                       probe_config=ProbeConfig(morphology="off"))
    restored.load_state_dict(trainer.state_dict(), trainer.cycle, trainer.iterations_done)
    assert restored.model.morphology  # the checkpoint decides, not the new settings
    before, after = _scores(trainer, images), _scores(restored, images)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], atol=1e-5)


def test_a_checkpoint_of_the_probe_head_is_refused_with_what_to_do(trained):
    probe_trainer = Trainer(ModelConfig(image_size=32), TrainConfig(head="probe", iterations=1, batch_size=4),
                            in_chans=1, device=CPU)
    with pytest.raises(CheckpointError, match=r"train.head = 'classifier' or 'probe' or 'ensemble'.*'lpft'"):
        trained[0].load_state_dict(probe_trainer.state_dict(), 1, 1)
    with pytest.raises(CheckpointError, match=r"trained with train.head = 'lpft\+probe' or 'lpft'.*asks for 'probe'"):
        probe_trainer.load_state_dict(trained[0].state_dict(), 1, 1)


def _backbone_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.network.state_dict().items()}


def test_by_default_only_the_head_learns_and_the_backbone_skips_its_gradients(trained):
    trainer = trained[0]
    pretrained = trainer._starting_model.state_dict()
    for name, value in trainer.model.network.state_dict().items():
        torch.testing.assert_close(value, pretrained[name], rtol=0, atol=0)
    assert not any(p.requires_grad for p in trainer.model.network.parameters())
    assert all(p.requires_grad for p in trainer.model.head.parameters())


def test_a_learning_backbone_moves_and_can_be_frozen_again():
    images, _, data = _blobs()
    trainer = Trainer(ModelConfig(image_size=32), TrainConfig(**{**TINY.__dict__, "backbone_lr_scale": 0.1}),
                      in_chans=1, device=CPU)
    before = _backbone_state(trainer)
    for _ in trainer.run(data, iterations=3):
        pass
    moved = _backbone_state(trainer)
    assert any(not torch.equal(before[k], moved[k]) for k in before if before[k].is_floating_point())
    trainer.set_config(TINY)  # back to the default: frozen from the next iteration on
    assert not any(p.requires_grad for p in trainer.model.network.parameters())
    for _ in trainer.run(data, iterations=2):
        pass
    for name, value in _backbone_state(trainer).items():
        torch.testing.assert_close(value, moved[name], rtol=0, atol=0)


def test_a_pretrained_backbone_lets_the_head_score_from_frozen_features(trained):
    trainer, images, _ = trained
    embedder = trainer.pretrained_network_embedder()
    assert embedder is not None and embedder.morphology == trainer.model.morphology
    with torch.inference_mode():
        from_features = trainer.scoring_model.model.head(embedder.embed(images)).numpy()
    np.testing.assert_allclose(from_features, _scores(trainer, images)["lpft"], atol=1e-4)


def test_a_backbone_that_learned_needs_the_network_to_score():
    _, _, data = _blobs()
    trainer = Trainer(ModelConfig(image_size=32), TrainConfig(**{**TINY.__dict__, "backbone_lr_scale": 0.1}),
                      in_chans=1, device=CPU)
    assert trainer.pretrained_network_embedder() is not None  # nothing learned yet
    for _ in trainer.run(data, iterations=2):
        pass
    assert trainer.pretrained_network_embedder() is None
    classifier = Trainer(ModelConfig(image_size=32), TrainConfig(head="classifier", iterations=1, batch_size=4),
                         in_chans=1, device=CPU)
    assert classifier.pretrained_network_embedder() is None
