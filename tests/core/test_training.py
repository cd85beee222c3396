"""Augmentations, one FixMatch step, EMA and the trainer's cycles."""

from __future__ import annotations

import pytest
import torch

from napari_anomalymatch.core.config import ModelConfig, TrainConfig
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.evaluation.manifest import read_benchmark
from napari_anomalymatch.core.learning.augment import dihedral, strong_augment, weak_augment
from napari_anomalymatch.core.learning.fixmatch import FixMatchBatch, fixmatch_step, pseudo_labels
from napari_anomalymatch.core.learning.training import Trainer, TrainingData

# The paper's classifier (the default head, the probe-initialised network, is tested in test_lpft.py).
TINY = TrainConfig(iterations=3, batch_size=4, unlabelled_ratio=2, seed=1, head="classifier")


def test_weak_augmentation_only_moves_pixels():
    images = torch.rand(32, 3, 16, 16)
    out = weak_augment(images, torch.Generator().manual_seed(0))
    for before, after in zip(images, out):
        assert set(after.flatten().tolist()) <= set(before.flatten().tolist())
    assert not torch.equal(out, images)


def test_dihedral_group_is_complete():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    views = {tuple(dihedral(image, k).flatten().tolist()) for k in range(8)}
    assert len(views) == 8


def test_strong_augmentation_stays_in_range_and_is_seeded():
    images = torch.rand(16, 1, 24, 24)
    first = strong_augment(images, torch.Generator().manual_seed(5), n_ops=2, magnitude=10)
    second = strong_augment(images, torch.Generator().manual_seed(5), n_ops=2, magnitude=10)
    assert torch.equal(first, second)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert (first - images).abs().mean() > 0.05


def test_pseudo_labels_sharpen_then_threshold():
    logits = torch.tensor([[0.0, 3.0], [0.2, 0.0], [2.0, 0.0]])
    labels, mask = pseudo_labels(logits, temperature=0.5, threshold=0.95)
    assert labels.tolist() == [1, 0, 0]
    assert mask.tolist() == [1.0, 0.0, 1.0]  # softmax(2/0.5) = 0.982 passes, softmax(2) = 0.88 would not


@pytest.fixture(scope="module")
def trainer():
    return Trainer(ModelConfig(image_size=32), TINY, in_chans=1, device=torch.device("cpu"))


def _data(n_labelled=8, n_unlabelled=24):
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1] * (n_labelled // 2))
    return TrainingData(torch.rand(n_labelled, 1, 32, 32, generator=generator), labels,
                        torch.rand(n_unlabelled, 1, 32, 32, generator=generator))


def test_one_step_changes_the_parameters_and_the_ema(trainer):
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    ema_before = {k: v.clone() for k, v in trainer.ema.module.state_dict().items()}
    progress = next(trainer.run(_data(), iterations=1))
    assert progress.iteration == 1 and progress.loss > 0 and 0.0 <= progress.mask_ratio <= 1.0
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    ema_changed = [k for k, v in trainer.ema.module.state_dict().items() if not torch.equal(v, ema_before[k])]
    assert "backbone.classifier.weight" in changed and "backbone.conv_stem.weight" in changed
    assert "backbone.classifier.weight" in ema_changed
    # the EMA moves 1 % of the way towards the trained weights
    new, old, ema = (trainer.model.state_dict()["backbone.classifier.weight"],
                     before["backbone.classifier.weight"],
                     trainer.ema.module.state_dict()["backbone.classifier.weight"])
    torch.testing.assert_close(ema, 0.99 * ema_before["backbone.classifier.weight"] + 0.01 * new)
    assert not torch.equal(new, old)


def test_fixmatch_step_reports_its_parts():
    model = Trainer(ModelConfig(image_size=32), TINY, in_chans=1).model.train()
    batch = FixMatchBatch(torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 0, 1]),
                          torch.rand(6, 1, 32, 32), torch.rand(6, 1, 32, 32))
    for weak_pass in ("joint", "separate"):
        config = TrainConfig(confidence_threshold=0.5, weak_pass=weak_pass)
        result = fixmatch_step(model, batch, config)
        assert result.mask_ratio == 1.0  # every 2-class prediction is >= 0.5 confident
        assert result.loss.item() == pytest.approx(result.sup_loss + result.unsup_loss, rel=1e-5)
        result.loss.backward()


def test_cycles_continue_and_can_stop_between_iterations(trainer):
    start_cycle, start_iterations = trainer.cycle, trainer.iterations_done
    run = trainer.run(_data(), iterations=10)
    seen = [next(run).iteration for _ in range(2)]
    run.close()  # what a GUI's Stop does
    assert seen == [1, 2]
    assert trainer.cycle == start_cycle + 1
    assert trainer.iterations_done == start_iterations + 2
    assert all(torch.isfinite(p).all() for p in trainer.scoring_model.parameters())


def test_training_is_reproducible_from_a_seed():
    def final_weights():
        t = Trainer(ModelConfig(image_size=32), TINY, in_chans=1)
        for _ in t.run(_data()):
            pass
        return t.scoring_model.state_dict()["model.backbone.classifier.weight"]

    torch.testing.assert_close(final_weights(), final_weights(), rtol=0, atol=0)


@pytest.mark.parametrize("head", ["classifier", "lpft"])
def test_the_global_rng_is_the_callers(head):
    """Training neither resets the caller's torch RNG nor depends on what the caller draws from it."""
    config = TrainConfig(iterations=3, batch_size=4, unlabelled_ratio=2, seed=1, head=head, backbone_lr_scale=0.1)

    def trained(caller_draws: bool) -> tuple[dict, torch.Tensor]:
        torch.manual_seed(123)
        expected = torch.get_rng_state()
        t = Trainer(ModelConfig(image_size=32), config, in_chans=1, device=torch.device("cpu"))
        assert torch.equal(torch.get_rng_state(), expected)
        for _ in t.run(_data()):
            if caller_draws:
                torch.rand(5)
        return t.ema.module.state_dict(), torch.rand(1)

    quiet, after_quiet = trained(caller_draws=False)
    busy, _ = trained(caller_draws=True)
    torch.manual_seed(123)
    assert torch.equal(after_quiet, torch.rand(1))  # the caller's sequence went on as if untouched
    for name, value in quiet.items():
        torch.testing.assert_close(busy[name], value, rtol=0, atol=0, msg=name)


def test_state_dict_round_trip(trainer):
    clone = Trainer(ModelConfig(image_size=32), TINY, in_chans=1)
    clone.load_state_dict(trainer.state_dict(), cycle=trainer.cycle, iterations_done=trainer.iterations_done)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clone.scoring_model(x), trainer.scoring_model(x))


def test_training_needs_both_kinds_of_label():
    with pytest.raises(ValueError, match="at least one anomaly and one normal label"):
        TrainingData(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long), torch.zeros(1, 1, 8, 8))


def test_one_precondition_and_one_message_wherever_the_labels_come_from(blob_manifest):
    expected = ("training needs at least one anomaly and one normal label; {} has 2 anomalies and 0 normal "
                "images")
    with pytest.raises(ConfigError, match=expected.format("the training data")):
        TrainingData(torch.zeros(2, 1, 8, 8), torch.ones(2, dtype=torch.long), torch.zeros(1, 1, 8, 8))
    rows = blob_manifest.read_text().splitlines()
    blob_manifest.write_text("\n".join(row.replace(",normal", ",") for row in rows) + "\n")
    with pytest.raises(ConfigError, match=expected.format(f"the initial_label column of {blob_manifest}")):
        read_benchmark(blob_manifest)


def test_supervised_only_training_when_the_ratio_is_zero():
    config = TrainConfig(iterations=2, batch_size=4, unlabelled_ratio=0)
    trainer = Trainer(ModelConfig(image_size=32), config, in_chans=1)
    steps = list(trainer.run(_data()))
    assert [s.unsup_loss for s in steps] == [0.0, 0.0] and all(s.sup_loss > 0 for s in steps)
