"""The scoring model: the measured choice of path, the deprecated TorchScript graph and its fallback,
cuDNN autotuning."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from napari_anomalymatch.core.config import ModelConfig, ScoreConfig
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.learning.models import build_model
from napari_anomalymatch.core.scoring import inference, pathchoice
from napari_anomalymatch.core.scoring.inference import ScoringModel, ScoringModelWarning, prepare_scoring_model

SHAPE = (1, 32, 32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(image_size=32, pretrained=False), 1).model.eval()


@pytest.mark.parametrize(("requested", "expected"), [
    ("auto", None), ("float32", None), ("bfloat16", torch.bfloat16), ("bfloat16-mixed", torch.bfloat16),
    ("float16", torch.float16)])
def test_precision_on_a_cpu(requested, expected):
    assert inference.choose_precision(requested, torch.device("cpu")) == expected


def test_frozen_graph_scores_as_the_eager_model_and_leaves_it_alone(model):
    images = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(1))
    with pytest.warns(FutureWarning, match="torchscript.*deprecates"):
        graph = prepare_scoring_model(model, ScoreConfig(compile="torchscript"), SHAPE, torch.device("cpu"))
    eager = prepare_scoring_model(model, ScoreConfig(compile="none"), SHAPE, torch.device("cpu"))
    assert (graph.graph, eager.graph) == ("torchscript", "eager")
    np.testing.assert_allclose(graph(images), eager(images), rtol=0, atol=1e-5)
    assert all(p.requires_grad for p in model.parameters())  # the trainer's model is untouched
    valid = torch.tensor([True, False, True, True, True, False])
    assert np.isnan(graph(images, valid)[[1, 5]]).all() and np.isfinite(graph(images, valid)[[0, 2]]).all()


def test_folded_batch_norms_score_as_the_eager_model_and_leave_it_alone(model):
    images = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(1))
    model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(2)
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # statistics to fold
        for stat in (norm.running_mean, norm.weight, norm.bias):
            stat.data.normal_(0.0, 0.1, generator=generator)
        norm.running_var.data.uniform_(0.5, 2.0, generator=generator)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = prepare_scoring_model(model, ScoreConfig(compile="fused"), SHAPE, torch.device("cpu"))
    eager = prepare_scoring_model(model, ScoreConfig(compile="none"), SHAPE, torch.device("cpu"))
    assert fused.graph == "fused"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.module.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in eager.module.modules())
    np.testing.assert_allclose(fused(images), eager(images), rtol=0, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_auto_measures_only_runs_worth_it_and_keeps_the_fastest_path_that_agrees(model, monkeypatch, tmp_path):
    cpu = torch.device("cpu")
    monkeypatch.setenv(pathchoice.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(pathchoice, "native_reduced_precisions", lambda device: ["bfloat16"])
    monkeypatch.setattr(pathchoice, "_images_per_second",
                        lambda scorer, batch: 100.0 + 50 * _is_bf16(scorer) + 20 * _is_fused(scorer))
    small = prepare_scoring_model(model, ScoreConfig(), SHAPE, cpu, n_images=100)
    assert small.path.label == "float32+eager" and small.selection is None
    monkeypatch.setattr(pathchoice, "agrees", lambda agreement: True)
    large = prepare_scoring_model(model, ScoreConfig(), SHAPE, cpu, n_images=10_000)
    rates = {"float32+eager": 100.0, "bfloat16+eager": 150.0, "float32+fused": 120.0, "bfloat16+fused": 170.0}
    assert large.selection.rates == rates
    assert large.path.label == "bfloat16+fused" and not large.selection.cached
    assert set(large.selection.agreement["bfloat16+fused"]) >= {"spearman", "top_overlap"}
    monkeypatch.setattr(pathchoice, "agrees", lambda agreement: False)
    refused = prepare_scoring_model(model, ScoreConfig(), SHAPE, cpu, n_images=10_000)
    assert refused.path.label == "float32+eager" and refused.selection.cached  # timings from the cache file
    cached = json.loads(pathchoice.cache_file().read_text())
    assert list(cached.values()) == [rates]
    forced = prepare_scoring_model(model, ScoreConfig(precision="bfloat16"), SHAPE, cpu, n_images=10_000)
    assert pathchoice.candidate_paths(ScoreConfig(), cpu, 10**6)[-1].label == "bfloat16+inductor"
    assert forced.path.precision == "bfloat16" and set(forced.selection.rates) == {"bfloat16+eager", "bfloat16+fused"}
    pinned_config = ScoreConfig(precision="bfloat16", compile="none")
    pinned = prepare_scoring_model(model, pinned_config, SHAPE, cpu, n_images=10_000)
    assert pinned.path.label == "bfloat16+eager" and pinned.selection is None  # both forced: nothing measured


def _is_bf16(scorer) -> bool:
    return scorer.__self__.dtype == torch.bfloat16  # the bound ScoringModel.probabilities


def _is_fused(scorer) -> bool:
    return scorer.__self__.graph == "fused"


def test_ranking_agreement_measures_what_the_rule_says():
    reference = np.linspace(0, 1, 1000)
    truth = np.arange(1000) % 7 == 0
    same = pathchoice.ranking_agreement(reference, reference + 1e-4, truth)
    assert same["spearman"] == pytest.approx(1.0) and same["top_overlap"] == 1.0 and same["auroc_difference"] == 0
    assert pathchoice.agrees(same)
    shuffled = reference.copy()
    shuffled[-100:] = np.random.default_rng(0).permutation(shuffled[-100:]) - 0.5  # the top 100 sink
    bad = pathchoice.ranking_agreement(reference, shuffled, truth)
    assert bad["top_overlap"] == 0.0 and not pathchoice.agrees(bad)


@pytest.mark.parametrize("spearman, top_overlap, auroc_difference, agreed", [
    (0.9995, 0.97, 0.0019, True),  # every figure at its bound
    (0.9994, 0.97, 0.0, False), (1.0, 0.96, 0.0, False), (1.0, 1.0, 0.002, False),
    (float("nan"), 1.0, 0.0, False)])
def test_the_agreement_rule_bounds(spearman, top_overlap, auroc_difference, agreed):
    figures = {"spearman": spearman, "top_overlap": top_overlap, "auroc_difference": auroc_difference}
    assert pathchoice.agrees(figures) is agreed


def test_the_selection_holds_a_small_trained_model_to_the_agreement_rule(trained_blobs, monkeypatch, tmp_path):
    """bf16 is timed faster, but on this barely trained scorer its ranking strays from float32's
    (rho ~0.994, top-20 overlap ~65 %), so the run scores in float32: with the batch norms folded,
    timed faster than eager here, and agreeing with forced float32 to rounding."""
    model, images, truth = trained_blobs
    cpu = torch.device("cpu")
    fp32 = prepare_scoring_model(model, ScoreConfig(precision="float32", compile="none"), (1, 32, 32), cpu)(images)
    bf16 = prepare_scoring_model(model, ScoreConfig(precision="bfloat16", compile="none"), (1, 32, 32), cpu)(images)
    agreement = pathchoice.ranking_agreement(fp32, bf16, truth, top=100)
    assert not pathchoice.agrees(agreement) and agreement["spearman"] < 0.999, agreement
    monkeypatch.setenv(pathchoice.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(pathchoice, "native_reduced_precisions", lambda device: ["bfloat16"])
    monkeypatch.setattr(pathchoice, "_images_per_second",
                        lambda scorer, batch: 100.0 + 50 * _is_bf16(scorer) + 20 * _is_fused(scorer))
    chosen = prepare_scoring_model(model, ScoreConfig(), (1, 32, 32), cpu, n_images=10_000, calibration=images)
    measured = chosen.selection.agreement["bfloat16+eager"]  # bf16 kernels differ slightly from run to run
    assert not pathchoice.agrees(measured) and not pathchoice.agrees(chosen.selection.agreement["bfloat16+fused"])
    assert measured["spearman"] == pytest.approx(pathchoice.ranking_agreement(fp32, bf16)["spearman"], abs=5e-3)
    assert chosen.path.label == "float32+fused"
    assert pathchoice.agrees(chosen.selection.agreement["float32+fused"])
    np.testing.assert_allclose(chosen(images), fp32, rtol=0, atol=1e-5)


@pytest.mark.parametrize("compile_mode", ["none", "fused"])
def test_mixed_precision_runs_the_first_stages_in_float32_and_the_rest_in_bf16(trained_blobs, compile_mode):
    model, images, truth = trained_blobs
    cpu = torch.device("cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mixed = prepare_scoring_model(model, ScoreConfig(precision="bfloat16-mixed", compile=compile_mode),
                                  (1, 32, 32), cpu)
    assert mixed.path.label == f"bfloat16-mixed+{ {'none': 'eager'}.get(compile_mode, compile_mode)}"
    backbone = next(m for m in mixed.module.modules() if hasattr(m, "conv_stem"))
    seen = {}
    for index in (0, 1, 2, len(backbone.blocks) - 1):
        block = backbone.blocks[index]
        block.register_forward_hook(lambda module, args, out, index=index: seen.__setitem__(index, out.dtype))
    fp32 = prepare_scoring_model(model, ScoreConfig(precision="float32", compile="none"), (1, 32, 32), cpu)(images)
    bf16 = prepare_scoring_model(model, ScoreConfig(precision="bfloat16", compile="none"), (1, 32, 32), cpu)(images)
    found = mixed(images)
    assert seen == {0: torch.float32, 1: torch.float32, 2: torch.bfloat16, len(backbone.blocks) - 1: torch.bfloat16}
    assert np.abs(found - fp32).max() < np.abs(bf16 - fp32).max()
    assert pathchoice.ranking_agreement(fp32, found)["spearman"] > pathchoice.ranking_agreement(fp32, bf16)["spearman"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mixed_precision_is_a_candidate_where_bf16_is_native(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    automatic = [p.label for p in pathchoice.candidate_paths(ScoreConfig(), torch.device("cpu"), 10_000)]
    assert automatic == ["float32+eager", "bfloat16+eager", "bfloat16-mixed+eager",
                         "float32+fused", "bfloat16+fused", "bfloat16-mixed+fused"]
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    assert [p.label for p in pathchoice.candidate_paths(ScoreConfig(), torch.device("cpu"), 10_000)] == [
        "float32+eager", "float32+fused"]
    forced = pathchoice.candidate_paths(ScoreConfig(precision="bfloat16-mixed"), torch.device("cpu"), 10_000)
    assert [p.label for p in forced] == ["bfloat16-mixed+eager", "bfloat16-mixed+fused"]
    assert pathchoice.InferencePath.parse("bfloat16-mixed+fused").dtype == torch.bfloat16


def test_mixed_precision_needs_a_network_with_stages():
    plain = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    plain(torch.zeros(1, *SHAPE))
    with pytest.raises(ConfigError, match="bfloat16-mixed.*EfficientNet-style"):
        prepare_scoring_model(plain, ScoreConfig(precision="bfloat16-mixed", compile="none"), SHAPE,
                              torch.device("cpu"))


@pytest.fixture(scope="module")
def trained_blobs():
    from napari_anomalymatch.core.config import TrainConfig
    from napari_anomalymatch.core.learning.training import Trainer, TrainingData

    from ..conftest import blob_images

    raw, truth = blob_images(200, size=32, seed=5)
    images = torch.from_numpy(raw[:, None].astype(np.float32) / 255)
    labelled = np.concatenate([np.flatnonzero(truth)[:4], np.flatnonzero(~truth)[:8]])
    trainer = Trainer(ModelConfig(image_size=32), TrainConfig(iterations=6, batch_size=4, unlabelled_ratio=2, seed=1),
                      in_chans=1, device=torch.device("cpu"))
    data = TrainingData(images[labelled], torch.from_numpy(truth[labelled].astype(np.int64)), images)
    for _ in trainer.run(data):
        pass
    return trainer.scoring_model, images, truth


def test_a_graph_that_cannot_be_built_falls_back_to_eager(model, monkeypatch):
    def broken(eager, example):
        raise RuntimeError("tracer exploded")

    monkeypatch.setattr(inference, "_torchscript", broken)
    with pytest.warns(ScoringModelWarning, match="tracer exploded.*scoring with the eager model"), \
            pytest.warns(FutureWarning, match="deprecates"):
        scorer = prepare_scoring_model(model, ScoreConfig(compile="torchscript"), SHAPE, torch.device("cpu"))
    assert scorer.graph == "eager"


def test_a_graph_that_strays_is_not_used(model, monkeypatch):
    monkeypatch.setattr(inference, "_torchscript", lambda eager, example: lambda x: eager.module(x) + 5.0)
    with pytest.warns(ScoringModelWarning, match="differs from the eager model"), \
            pytest.warns(FutureWarning, match="deprecates"):
        scorer = prepare_scoring_model(model, ScoreConfig(compile="torchscript"), SHAPE, torch.device("cpu"))
    assert scorer.graph == "eager"


def test_cudnn_autotuning_is_switched_on_only_while_scoring_on_a_gpu(model):
    before = torch.backends.cudnn.benchmark
    gpu_scorer = ScoringModel(model, torch.device("cuda"), "float32", False, "eager")  # never run here
    with gpu_scorer.tuned():
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark is before
    with ScoringModel(model, torch.device("cpu"), "float32", False, "eager").tuned():
        assert torch.backends.cudnn.benchmark is before


@pytest.mark.parametrize("compile_mode", ["none", "fused"])
def test_embeddings_are_pooled_from_the_scoring_pass_itself(model, compile_mode):
    from napari_anomalymatch.core.scoring.run import embedding_network

    images = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(3))
    network = embedding_network(model, torch.device("cpu"))
    with torch.inference_mode():
        expected = network.embed(images.contiguous(memory_format=torch.channels_last)).numpy()
    scorer = prepare_scoring_model(model, ScoreConfig(precision="float32", compile=compile_mode), SHAPE,
                                   torch.device("cpu"))

    def no_second_network():
        raise AssertionError("a copy of the network was made for a second pass")

    scorer.store_embeddings(no_second_network)
    pending = scorer.start(images, torch.tensor([True, True, False, True, True]))
    found = pending.embeddings()
    assert found.dtype == np.float16 and np.isnan(found[2]).all()
    np.testing.assert_allclose(found[[0, 1, 3, 4]].astype(np.float32), expected[[0, 1, 3, 4]], rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(pending.result()[[0, 1, 3, 4]], scorer(images)[[0, 1, 3, 4]], rtol=0, atol=1e-6)
