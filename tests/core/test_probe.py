"""The linear probe, the frozen embedder it reads and the scorer that combines it with the classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from napari_anomalymatch.core.config import ModelConfig, ProbeConfig, ScoreConfig, TrainConfig
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.learning.augment import dihedral
from napari_anomalymatch.core.learning.probe import (
    FROZEN_LAYER_CODES,
    AnomalyScorer,
    FrozenEmbedder,
    LinearProbe,
    embed_views,
    fit_probe,
)
from napari_anomalymatch.core.learning.training import Trainer, TrainingData
from napari_anomalymatch.core.scoring.run import score_components

from ..conftest import blob_images

CPU = torch.device("cpu")
# The network alone: the morphology statistics these single-band images would get by default
# are tested in test_morphology.py.
TINY = TrainConfig(iterations=4, batch_size=4, unlabelled_ratio=2, seed=3, head="probe")
TINY_PROBE = ProbeConfig(morphology="off")


def _blobs(n: int = 60, size: int = 32) -> tuple[torch.Tensor, np.ndarray]:
    images, truth = blob_images(n, size=size, seed=4)
    return torch.from_numpy(images[:, None].astype(np.float32) / 255), truth


def _trained(config: TrainConfig = TINY, in_chans: int = 1,
             probe: ProbeConfig = TINY_PROBE) -> tuple[Trainer, torch.Tensor, np.ndarray]:
    """A trainer after one cycle on 60 blob images (3 + 6 labelled), the band repeated ``in_chans`` times."""
    images, truth = _blobs()
    images = images.expand(-1, in_chans, -1, -1).contiguous()
    labelled = np.concatenate([np.flatnonzero(truth)[:3], np.flatnonzero(~truth)[:6]])
    trainer = Trainer(ModelConfig(image_size=32), config, in_chans=in_chans, device=CPU, probe_config=probe)
    data = TrainingData(images[labelled], torch.from_numpy(truth[labelled].astype(np.int64)), images)
    for _ in trainer.run(data):
        pass
    return trainer, images, truth


def _fresh() -> Trainer:
    """An untrained trainer with ``TINY``'s settings."""
    return Trainer(ModelConfig(image_size=32), TINY, in_chans=1, device=CPU, probe_config=TINY_PROBE)


@pytest.fixture(scope="module")
def trained() -> tuple[Trainer, torch.Tensor, np.ndarray]:
    return _trained()


def test_frozen_embedder_stays_in_eval_mode_without_gradients():
    model = _fresh().model
    frozen = FrozenEmbedder(model, 48)
    frozen.train()
    assert not frozen.training and not frozen.model.training
    assert not any(p.requires_grad for p in frozen.parameters())


def test_frozen_embedder_enlarges_images_to_its_size():
    model = _fresh().model.eval()
    images = torch.rand(3, 1, 32, 32)
    enlarged = F.interpolate(images, size=(48, 48), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(FrozenEmbedder(model, 48).embed(images), model.embed(enlarged), atol=1e-5)
        assert torch.allclose(FrozenEmbedder(model, 0).embed(images), model.embed(images), atol=1e-5)


def test_pyramid_joins_the_normalised_pooled_features_of_the_last_stages_and_the_head():
    model = _fresh().model.eval()
    images = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        pyramid = FrozenEmbedder(model, 0, "pyramid").embed(images)
        head = model.embed(images)
        x = model.backbone.bn1(model.backbone.conv_stem((images - model.mean) / model.std))
        stages = []
        for stage in model.backbone.blocks:
            x = stage(x)
            stages.append(x.mean((2, 3)))
    expected = [F.normalize(p, dim=1) for p in (*stages[-4:-1], head)]
    assert pyramid.shape == (3, 80 + 112 + 192 + 1280)  # EfficientNet-Lite0's stages 4-6 and head
    assert torch.allclose(pyramid, torch.cat(expected, dim=1), atol=1e-5)


def test_pyramid_needs_an_efficientnet_style_backbone():
    class Flat(torch.nn.Module):
        has_pyramid = False

    with pytest.raises(ConfigError, match=r"probe\.layers = 'pyramid'.*use 'head'"):
        FrozenEmbedder(Flat(), 0, "pyramid")
    with pytest.raises(ConfigError, match=r"probe\.layers"):
        FrozenEmbedder(Flat(), 0, "stages")


def test_the_default_probe_reads_the_pyramid(trained):
    trainer, images, _ = trained
    assert trainer.probe_embedder.layers == "pyramid"
    with torch.no_grad():
        features = trainer._starting_model.embed_pyramid(images[:4])
        expected = trainer.probe(features)
    assert trainer.probe.weight.numel() == features.shape[1]
    assert torch.allclose(trainer.scoring_model.components(images[:4])["probe"], expected, atol=1e-5)


def test_training_leaves_the_probes_network_at_its_starting_weights(trained):
    trainer, _, _ = trained
    fresh = _fresh()
    frozen_state = trainer.probe_embedder.model.state_dict()
    for key, value in fresh.model.backbone.state_dict().items():
        if "classifier" in key:
            continue
        assert torch.equal(frozen_state[f"backbone.{key}"], value), key
    moved = [k for k, v in trainer.model.backbone.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, fresh.model.backbone.state_dict()[k])]
    assert moved, "training should have changed the fine-tuned model"


def test_scorer_parts_read_the_frozen_features(trained):
    trainer, images, _ = trained
    scorer = trainer.scoring_model
    assert scorer.frozen is trainer.probe_embedder
    with torch.no_grad():
        parts = scorer.components(images[:8])
        expected = scorer.probe(trainer.probe_embedder.embed(images[:8]))
        logits = scorer.model(images[:8])
        assert torch.allclose(parts["probe"], expected, atol=1e-5)
        assert torch.allclose(parts["classifier"], logits[:, 1] - logits[:, 0], atol=1e-5)
        ensemble = AnomalyScorer(scorer.model, scorer.probe, "ensemble", scorer.frozen)(images[:8])[:, 1]
        assert torch.allclose(ensemble, (parts["classifier"] + parts["probe"]) / 2, atol=1e-5)
        probe_only = AnomalyScorer(scorer.model, scorer.probe, "probe", scorer.frozen)(images[:8])[:, 1]
        assert torch.allclose(probe_only, expected, atol=1e-5)
        assert scorer.head == "probe" and torch.allclose(scorer(images[:8])[:, 1], expected, atol=1e-5)
        assert set(scorer.components(images[:8], which=("probe",))) == {"probe"}


def test_the_probe_separates_the_blobs(trained):
    trainer, images, truth = trained
    parts = score_components(trainer.scoring_model, images, ScoreConfig(), CPU)
    assert roc_auc_score(truth, parts["probe"]) > 0.9


def test_precomputed_probe_features_give_the_same_scores(trained):
    trainer, images, _ = trained
    scorer = trainer.scoring_model
    with torch.no_grad():
        features = scorer.frozen.embed(images)
    direct = score_components(scorer, images, ScoreConfig(batch_size=16), CPU)
    cached = score_components(scorer, images, ScoreConfig(batch_size=16), CPU, probe_features=features)
    for name in ("classifier", "probe"):
        np.testing.assert_allclose(cached[name], direct[name], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(8, N, D\) with tta"):
        score_components(scorer, images, ScoreConfig(tta=True), CPU, probe_features=features)


def test_precomputed_features_of_the_eight_views_give_the_tta_scores(trained):
    trainer, images, _ = trained
    scorer = trainer.scoring_model
    tta = ScoreConfig(batch_size=16, tta=True)
    views = embed_views(scorer.frozen, images, CPU, views=tuple(range(8))).reshape(8, len(images), -1)
    direct = score_components(scorer, images, tta, CPU, which=("probe",))["probe"]
    cached = score_components(scorer, images, tta, CPU, probe_features=views, which=("probe",))["probe"]
    np.testing.assert_allclose(cached, direct, rtol=1e-5, atol=1e-5)
    per_view = [score_components(scorer, dihedral(images, k), ScoreConfig(), CPU, which=("probe",))["probe"]
                for k in range(8)]
    np.testing.assert_allclose(direct, np.mean(per_view, 0), atol=1e-5)  # the mean of the views' log-odds
    assert np.abs(np.asarray(per_view) - direct).max() > 1e-3  # the views do differ: a real average


def test_the_protocol_embeds_every_view_once_with_tta(trained):
    from napari_anomalymatch.core.evaluation.protocol import _FrozenFeatures

    trainer, images, _ = trained
    scorer = trainer.scoring_model
    cache = _FrozenFeatures(images, ScoreConfig(tta=True, batch_size=16), CPU)
    views = cache.of(scorer)
    assert views.shape[:2] == (8, len(images)) and cache.of(scorer) is views  # kept for the next cycles
    with torch.no_grad():
        torch.testing.assert_close(views[3], scorer.frozen.embed(dihedral(images, 3)), atol=1e-5, rtol=1e-4)
    plain = _FrozenFeatures(images, ScoreConfig(batch_size=16), CPU).of(scorer)
    assert plain.shape == views.shape[1:]
    torch.testing.assert_close(plain, views[0])


def test_batch_scoring_with_tta_gives_the_sigmoid_of_the_mean_log_odds(trained):
    from napari_anomalymatch.core.scoring.inference import prepare_scoring_model

    trainer, images, _ = trained
    scorer = trainer.scoring_model
    model = prepare_scoring_model(scorer, ScoreConfig(tta=True, compile="none"), (1, 32, 32), CPU)
    log_odds = score_components(scorer, images[:12], ScoreConfig(tta=True), CPU, which=("probe",))["probe"]
    np.testing.assert_allclose(model(images[:12]), 1 / (1 + np.exp(-log_odds)), atol=1e-5)


def test_the_probe_is_centred_on_the_unlabelled_images_mean_embedding(trained):
    trainer, images, _ = trained  # 60 unlabelled images: fewer than the sample, so all of them
    with torch.no_grad():
        embeddings = trainer.probe_embedder.embed(images)
        expected = F.normalize(embeddings - embeddings.mean(0), dim=-1) @ trainer.probe.weight + trainer.probe.bias
        assert torch.allclose(trainer.probe.centre, embeddings.mean(0), atol=1e-5)
        assert torch.allclose(trainer.probe(embeddings), expected, atol=1e-5)


def test_probe_centre_can_be_switched_off():
    trainer, _, _ = _trained(TrainConfig(iterations=2, batch_size=4, unlabelled_ratio=2),
                             probe=ProbeConfig(centre=False, morphology="off"))
    assert not trainer.probe.centre.any()


def test_fine_tuned_probe_reads_the_models_own_embedding():
    trainer, images, _ = _trained(TrainConfig(iterations=2, batch_size=4, unlabelled_ratio=2),
                                  probe=ProbeConfig(features="fine-tuned"))
    scorer = trainer.scoring_model
    assert trainer.probe_embedder is None and scorer.frozen is None
    with torch.no_grad():
        expected = scorer.probe(trainer.ema.module.embed(images[:4]))
        assert torch.allclose(scorer.components(images[:4])["probe"], expected, atol=1e-5)


def test_checkpoint_restores_the_probe_and_its_embedder(trained):
    trainer, images, _ = trained
    state = trainer.state_dict()
    assert int(state["probe.frozen_size"]) == trainer.probe_embedder.input_size
    assert int(state["probe.frozen_layers"]) == FROZEN_LAYER_CODES["pyramid"]
    restored = _fresh()
    restored.load_state_dict(state, trainer.cycle, trainer.iterations_done)
    assert restored.probe_embedder is not None
    assert torch.equal(restored.probe.centre, trainer.probe.centre)
    before = score_components(trainer.scoring_model, images, ScoreConfig(), CPU)
    after = score_components(restored.scoring_model, images, ScoreConfig(), CPU)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], atol=1e-5)


def test_old_checkpoint_probe_reads_the_fine_tuned_embedding(trained):
    trainer, _, _ = trained
    state = {k: v for k, v in trainer.state_dict().items() if k != "probe.frozen_size"}
    restored = _fresh()
    restored.load_state_dict(state, trainer.cycle, trainer.iterations_done)
    assert restored.probe is not None and restored.probe_embedder is None


def test_head_only_probe_survives_a_checkpoint_from_before_the_pyramid():
    trainer, images, _ = _trained(TrainConfig(iterations=2, batch_size=4, unlabelled_ratio=2, head="probe"),
                                  probe=ProbeConfig(layers="head", morphology="off"))
    assert trainer.probe.weight.numel() == 1280
    state = {k: v for k, v in trainer.state_dict().items() if k != "probe.frozen_layers"}
    restored = _fresh()  # the default layers: pyramid
    restored.load_state_dict(state, trainer.cycle, trainer.iterations_done)
    assert restored.probe_embedder.layers == "head"
    before = score_components(trainer.scoring_model, images, ScoreConfig(), CPU)["probe"]
    np.testing.assert_allclose(score_components(restored.scoring_model, images, ScoreConfig(), CPU)["probe"],
                               before, atol=1e-5)


def test_checkpoint_with_unknown_frozen_layers_says_to_upgrade(trained):
    from napari_anomalymatch.core.errors import CheckpointError

    trainer, _, _ = trained
    state = {**trainer.state_dict(), "probe.frozen_layers": torch.tensor(7)}
    restored = _fresh()
    with pytest.raises(CheckpointError, match="coded 7.*upgrade"):
        restored.load_state_dict(state, trainer.cycle, trainer.iterations_done)


def test_checkpoint_from_before_the_centre_gives_an_uncentred_probe(trained):
    trainer, images, _ = trained
    state = {k: v for k, v in trainer.state_dict().items() if k != "probe.centre"}
    probe = LinearProbe.from_state(state)
    embeddings = torch.randn(5, trainer.probe.weight.numel())
    expected = F.normalize(embeddings, dim=-1) @ trainer.probe.weight + trainer.probe.bias
    assert not probe.centre.any() and torch.allclose(probe(embeddings), expected, atol=1e-5)
    assert LinearProbe.from_state({}) is None


class PixelEmbedder(torch.nn.Module):
    """An embedding that keeps where things are: the pixels themselves."""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def _half_lit_images(top: list[bool], seed: int) -> torch.Tensor:
    """Noisy 8x8 images lit in their top half, or in their bottom half."""
    images = 0.3 * torch.rand(len(top), 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    for i, lit_top in enumerate(top):
        images[i, 0, slice(0, 4) if lit_top else slice(4, 8)] += 0.7
    return images


@pytest.mark.parametrize("views, tells_up_from_down", [("none", True), ("flip", True), ("dihedral", False)])
def test_probe_views_decide_whether_the_probe_may_use_orientation(views, tells_up_from_down):
    # Anomalies are lit at the top, normal images at the bottom: only a probe that is not also
    # shown the images turned upside down can tell them apart.
    truth = [True] * 4 + [False] * 4
    probe = fit_probe(PixelEmbedder(), _half_lit_images(truth, seed=1), torch.tensor(truth).long(), CPU,
                      views=views)
    with torch.no_grad():
        scores = probe(F.normalize(PixelEmbedder().embed(_half_lit_images(truth, seed=2)), dim=-1))
    auroc = roc_auc_score(truth, scores.numpy())
    assert auroc == 1.0 if tells_up_from_down else auroc < 0.8


@pytest.mark.parametrize("changes, message", [
    ({"size": 8}, r"probe\.size"),
    ({"size": -1}, r"probe\.size"),
    ({"size": True}, r"probe\.size"),
    ({"features": "imagenet"}, r"probe\.features"),
    ({"regularisation": 0.0}, r"probe\.regularisation"),
    ({"views": "rotations"}, r"probe\.views"),
    ({"centre": "yes"}, r"probe\.centre"),
    ({"layers": "all"}, r"probe\.layers"),
    ({"morphology": True}, r"probe\.morphology"),
])
def test_probe_settings_are_checked(changes, message):
    with pytest.raises(ConfigError, match=message):
        ProbeConfig(**changes)


def test_scoring_graph_of_the_scorer_with_a_frozen_embedder_matches_eager(trained):
    from napari_anomalymatch.core.scoring.inference import prepare_scoring_model

    trainer, images, _ = trained
    frozen = FrozenEmbedder(trainer._starting_model, 48, trainer.probe_config.layers)
    scorer = AnomalyScorer(trainer.ema.module, trainer.probe, "ensemble", frozen)
    graph = prepare_scoring_model(scorer, ScoreConfig(compile="torchscript"), (1, 32, 32), CPU)
    eager = prepare_scoring_model(scorer, ScoreConfig(compile="none"), (1, 32, 32), CPU)
    assert graph.graph == "torchscript"
    np.testing.assert_allclose(graph(images[:16]), eager(images[:16]), atol=1e-4)
    fused = prepare_scoring_model(scorer, ScoreConfig(compile="fused"), (1, 32, 32), CPU)
    assert fused.graph == "fused"
    np.testing.assert_allclose(fused(images[:16]), eager(images[:16]), atol=1e-4)
