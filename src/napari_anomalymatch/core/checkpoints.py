"""Checkpoints: the trainer's tensors in safetensors (never pickle) plus metadata."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .atomic import atomic_path
from .errors import CheckpointError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint holds, stored in its safetensors header."""

    cycle: int
    iterations_done: int
    model_name: str
    in_chans: int
    image_size: int
    weights_source: str
    format_version: int = FORMAT_VERSION


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], info: CheckpointInfo) -> Path:
    """Write ``tensors`` and ``info`` to ``path`` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    contiguous = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    metadata = {"info": json.dumps(asdict(info))}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata=metadata)
    return path


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return CheckpointInfo(**json.loads(metadata["info"]))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as err:
        raise CheckpointError(
            f"{path}: not a napari-anomalymatch checkpoint ({type(err).__name__}: {err})"
        ) from err


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """The tensors and info of a checkpoint, naming the file if it cannot be read."""
    from safetensors.torch import load_file

    info = read_checkpoint_info(path)
    try:
        return load_file(str(path)), info
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint's tensors ({err})") from err
