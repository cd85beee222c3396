"""int8 scoring of the lpft network's feature pyramid, for ``speed.py --sections int8`` only.

Post-training static quantization with torchao's PT2E flow and its ``X86InductorQuantizer``
(torch's own ``torch.ao.quantization`` FX flow is deprecated in torch 2.14, which points to
this one, and gave features 32% off float32's): the backbone, from the normalised image to
the pooled stage outputs that ``AnomalyClassifier.embed_pyramid`` joins, is exported, observed
on a few hundred of the run's own images, converted and compiled by inductor (int8 kernels
need it); the L2 normalisation, the morphology statistics and the head stay float32.
``float_stages`` > 0 keeps the stem and that many first stages float32, as ``bfloat16-mixed``
does.

It is not a scoring path of the product: its ranking does not meet
``pathchoice.AGREEMENT`` on FIRST (see docs/benchmarks.md, "Speed"). Needs
``pip install torchao==0.18.0`` (0.16.0 fails on torch 2.14: it names ``aten.transpose.Dimname``).
"""

from __future__ import annotations

import copy
import types

import torch
import torch.nn.functional as F
from torch import nn

from napari_anomalymatch.core.learning.models import PYRAMID_STAGES

TORCHAO = "torchao==0.18.0"


class PyramidFeatures(nn.Module):
    """An EfficientNet backbone from normalised images to the pooled outputs ``embed_pyramid`` joins."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.conv_stem, self.bn1, self.blocks = backbone.conv_stem, backbone.bn1, backbone.blocks
        self.conv_head, self.bn2 = backbone.conv_head, backbone.bn2

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.bn1(self.conv_stem(x))
        pooled = []
        last = len(self.blocks) - 1
        for index, stage in enumerate(self.blocks):
            x = stage(x)
            if last - PYRAMID_STAGES <= index < last:
                pooled.append(x.mean((2, 3)))
        pooled.append(self.bn2(self.conv_head(x)).mean((2, 3)))
        return pooled


def quantize_pyramid(classifier: nn.Module, calibration: torch.Tensor, float_stages: int,
                     batch_size: int) -> nn.Module:
    """``classifier``'s pyramid as a compiled int8 graph for batches of ``batch_size`` normalised
    images, observed on ``calibration`` (images in [0, 1], a multiple of ``batch_size``)."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
    except ImportError as err:
        raise ImportError(f"the int8 measurement needs torchao: pip install {TORCHAO}") from err
    import torch._inductor.config as inductor_config

    features = PyramidFeatures(copy.deepcopy(classifier.backbone)).eval()
    normalised = ((calibration.float() - classifier.mean) / classifier.std).contiguous(
        memory_format=torch.channels_last)
    exported = torch.export.export(features, (normalised[:batch_size],)).module()
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    for name in (["conv_stem", "bn1", *[f"blocks.{i}" for i in range(float_stages)]] if float_stages else []):
        quantizer.set_module_name_qconfig(name, None)
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for start in range(0, len(normalised) - batch_size + 1, batch_size):
            prepared(normalised[start:start + batch_size])
    inductor_config.freezing = True  # the int8 weights are packed into the graph
    compiled = torch.compile(convert_pt2e(prepared), dynamic=False)
    with torch.no_grad():
        compiled(normalised[:batch_size])  # builds it now, so timings leave the build out
    return compiled


def with_int8_pyramid(scorer: nn.Module, calibration: torch.Tensor, float_stages: int = 0,
                      batch_size: int = 64) -> nn.Module:
    """A copy of ``scorer`` whose classifiers compute ``embed_pyramid`` in int8."""
    scorer = copy.deepcopy(scorer).eval()
    for classifier in [m for m in scorer.modules() if hasattr(m, "embed_pyramid") and hasattr(m, "backbone")]:
        graph = quantize_pyramid(classifier, calibration, float_stages, batch_size)
        classifier.embed_pyramid = types.MethodType(_int8_embed_pyramid(graph, batch_size), classifier)
    return scorer


def _int8_embed_pyramid(graph: nn.Module, batch_size: int):
    def embed_pyramid(self, images: torch.Tensor) -> torch.Tensor:
        n = len(images)
        if n < batch_size:  # the graph is built for one batch size: the last batch is padded
            images = torch.cat([images, images[:1].expand(batch_size - n, -1, -1, -1)])
        pooled = graph(((images.float() - self.mean) / self.std).contiguous(memory_format=torch.channels_last))
        return torch.cat([F.normalize(p[:n].float(), dim=1) for p in pooled], dim=1)

    return embed_pyramid
