"""The scoring model: precision, the frozen CPU graph and its fallback, cuDNN autotuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_anomalymatch.core import inference
from napari_anomalymatch.core.config import ModelConfig, ScoreConfig
from napari_anomalymatch.core.inference import ScoringModel, ScoringModelWarning, prepare_scoring_model
from napari_anomalymatch.core.models import build_model

SHAPE = (1, 32, 32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(image_size=32, pretrained=False), 1).model.eval()


@pytest.mark.parametrize(("requested", "expected"), [
    ("auto", None), ("float32", None), ("bfloat16", torch.bfloat16), ("float16", torch.float16)])
def test_precision_on_a_cpu(requested, expected):
    assert inference.choose_precision(requested, torch.device("cpu")) == expected


def test_frozen_graph_scores_as_the_eager_model_and_leaves_it_alone(model):
    images = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(1))
    graph = prepare_scoring_model(model, ScoreConfig(compile="torchscript"), SHAPE, torch.device("cpu"))
    eager = prepare_scoring_model(model, ScoreConfig(compile="none"), SHAPE, torch.device("cpu"))
    assert (graph.graph, eager.graph) == ("torchscript", "eager")
    np.testing.assert_allclose(graph(images), eager(images), rtol=0, atol=1e-5)
    assert all(p.requires_grad for p in model.parameters())  # the trainer's model is untouched
    valid = torch.tensor([True, False, True, True, True, False])
    assert np.isnan(graph(images, valid)[[1, 5]]).all() and np.isfinite(graph(images, valid)[[0, 2]]).all()


def test_auto_builds_a_graph_only_when_it_pays_off(model):
    cpu = torch.device("cpu")
    assert prepare_scoring_model(model, ScoreConfig(), SHAPE, cpu, n_images=100).graph == "eager"
    assert prepare_scoring_model(model, ScoreConfig(), SHAPE, cpu, n_images=10**6).graph == "torchscript"


def test_a_graph_that_cannot_be_built_falls_back_to_eager(model, monkeypatch):
    def broken(eager, example):
        raise RuntimeError("tracer exploded")

    monkeypatch.setattr(inference, "_torchscript", broken)
    with pytest.warns(ScoringModelWarning, match="tracer exploded.*scoring with the eager model"):
        scorer = prepare_scoring_model(model, ScoreConfig(compile="torchscript"), SHAPE, torch.device("cpu"))
    assert scorer.graph == "eager"


def test_a_graph_that_strays_is_not_used(model, monkeypatch):
    monkeypatch.setattr(inference, "_torchscript", lambda eager, example: lambda x: eager.module(x) + 5.0)
    with pytest.warns(ScoringModelWarning, match="differs from the eager model"):
        scorer = prepare_scoring_model(model, ScoreConfig(compile="torchscript"), SHAPE, torch.device("cpu"))
    assert scorer.graph == "eager"


def test_cudnn_autotuning_is_switched_on_only_while_scoring_on_a_gpu(model):
    before = torch.backends.cudnn.benchmark
    gpu_scorer = ScoringModel(model, torch.device("cuda"), None, False, "eager")  # never run here
    with gpu_scorer.tuned():
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark is before
    with ScoringModel(model, torch.device("cpu"), None, False, "eager").tuned():
        assert torch.backends.cudnn.benchmark is before
