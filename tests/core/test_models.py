"""The offline ImageNet weights map onto timm's EfficientNet-Lite0 and still see a cat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_anomalymatch.core.config import ModelConfig
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.learning.models import PretrainedWeightsWarning, build_model
from napari_anomalymatch.core.learning.weights import lite0_state_dict, rename_lite0_key

EGYPTIAN_CAT, TABBY, TIGER_CAT = 285, 281, 282


@pytest.mark.parametrize(
    ("lukemelas", "timm_name"),
    [
        ("_conv_stem.weight", "conv_stem.weight"),
        ("_bn0.running_var", "bn1.running_var"),
        ("_blocks.0._depthwise_conv.weight", "blocks.0.0.conv_dw.weight"),
        ("_blocks.0._project_conv.weight", "blocks.0.0.conv_pw.weight"),
        ("_blocks.0._bn2.bias", "blocks.0.0.bn2.bias"),
        ("_blocks.2._expand_conv.weight", "blocks.1.1.conv_pw.weight"),
        ("_blocks.3._bn0.weight", "blocks.2.0.bn1.weight"),
        ("_blocks.15._project_conv.weight", "blocks.6.0.conv_pwl.weight"),
        ("_blocks.14._bn2.running_mean", "blocks.5.3.bn3.running_mean"),
        ("_conv_head.weight", "conv_head.weight"),
        ("_bn1.weight", "bn2.weight"),
        ("_fc.bias", "classifier.bias"),
    ],
)
def test_key_mapping(lukemelas, timm_name):
    assert rename_lite0_key(lukemelas) == timm_name


def test_weights_load_strictly_and_classify_a_real_cat():
    import timm
    from PIL import Image
    from skimage import data

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(lite0_state_dict(), strict=True)
    model.eval()
    image = Image.fromarray(data.chelsea()).resize((224, 224), Image.BICUBIC)
    x = (torch.tensor(np.asarray(image), dtype=torch.float32).permute(2, 0, 1)[None] - 127) / 128
    with torch.no_grad():
        probabilities = model(x).softmax(-1)[0]
    assert int(probabilities.argmax()) == EGYPTIAN_CAT
    assert float(probabilities[[EGYPTIAN_CAT, TABBY, TIGER_CAT]].sum()) > 0.9


def test_classifier_wrapper_scales_its_own_input():
    built = build_model(ModelConfig(), in_chans=3)
    assert "ImageNet" in built.weights
    model = built.model.eval()
    from PIL import Image
    from skimage import data

    image = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.BICUBIC)) / 255.0
    x = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None]
    with torch.no_grad():
        features = model.embed(x)
        logits = model(x)
    assert features.shape == (1, 1280) and logits.shape == (1, 2)


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_any_number_of_channels(channels):
    model = build_model(ModelConfig(), in_chans=channels).model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, channels, 32, 32)).shape == (2, 2)
    stem = model.backbone.conv_stem.weight
    assert stem.shape[1] == channels and torch.isfinite(stem).all()


def test_other_timm_models_start_random_without_local_weights(monkeypatch):
    monkeypatch.setattr("napari_anomalymatch.core.learning.models.cached_hub_weights", lambda name: None)
    with pytest.warns(PretrainedWeightsWarning, match="no ImageNet weights for 'resnet10t'"):
        built = build_model(ModelConfig(name="resnet10t"), in_chans=1)
    assert built.weights == "random initialisation"
    assert built.model.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 2)


def test_unknown_model_suggests_names():
    with pytest.raises(ConfigError, match=r"'tf_efficientnet_lite' is not a timm model; did you mean"):
        build_model(ModelConfig(name="tf_efficientnet_lite"), in_chans=3)


def test_new_head_starts_near_even_odds():
    """timm's EfficientNet head init gives two-class logits in the tens; ours starts near zero."""
    torch.manual_seed(0)  # the head's init draws from the global generator
    model = build_model(ModelConfig(), in_chans=3).model.eval()
    with torch.no_grad():
        logits = model(torch.rand(16, 3, 64, 64))
    assert float(logits.abs().max()) < 1.0
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1] * 8))
    assert abs(float(loss) - np.log(2)) < 0.1
