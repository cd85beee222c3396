"""Checkpoints: the trainer's tensors in safetensors (never pickle) plus metadata.

The metadata hold the ``CheckpointInfo`` and a SHA-256 of the tensors, checked
when the checkpoint is loaded, so a damaged file is refused instead of giving
shifted scores.  Checkpoints written before the checksum existed still open.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..atomic import atomic_path, free_space_text
from ..errors import CheckpointError, DiskFullError
from .interrupts import interrupts_deferred

FORMAT_VERSION = 1
CHECKSUM_KEY = "sha256"


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


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], info: CheckpointInfo) -> Path:
    """Write ``tensors`` and ``info`` to ``path`` atomically, with a checksum.

    A first Ctrl-C waits until the file is complete; a second aborts the
    write and leaves the previous checkpoints as they were.

    Raises
    ------
    DiskFullError
        When the disk cannot hold the checkpoint (the partial file is removed).
    """
    from safetensors.torch import save

    path = Path(path)
    contiguous = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    metadata = {"info": json.dumps(asdict(info)), CHECKSUM_KEY: tensor_checksum(contiguous)}
    data = save(contiguous, metadata=metadata)
    _check_space(path, len(data))
    def say_waiting() -> None:
        print(f"saving {path.name}; press Ctrl-C again to abort the save", file=sys.stderr)

    with interrupts_deferred(say_waiting), atomic_path(path, needed=len(data)) as tmp:
        tmp.write_bytes(data)
    return path


def _check_space(path: Path, n_bytes: int) -> None:
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    if not has_space(folder, n_bytes):
        raise DiskFullError(f"{path}: not enough disk space for the checkpoint: about {n_bytes / 1e6:.1f} MB "
                            f"needed, {free_space_text(folder)} free; free some space and run again "
                            "(the previous checkpoints are kept)")


HEADER_MARGIN = 1 << 20  # the safetensors header and metadata, and the loss history written beside


def checkpoint_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """About how many bytes a checkpoint of ``tensors`` takes on disk."""
    return HEADER_MARGIN + sum(t.numel() * t.element_size() for t in tensors.values())


def has_space(folder: Path, n_bytes: int) -> bool:
    """Whether the disk of ``folder`` (or of its nearest existing parent) has ``n_bytes`` free."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free >= n_bytes


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The ``CheckpointInfo`` in a checkpoint's header (the tensors are not read)."""
    return _read_header(path)[0]


def _read_header(path: str | Path) -> tuple[CheckpointInfo, str | None]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return CheckpointInfo(**json.loads(metadata["info"])), metadata.get(CHECKSUM_KEY)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: not a napari-anomalymatch checkpoint ({type(err).__name__}: {err})"
        ) from err


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """The tensors and info of a checkpoint, naming the file if it cannot be read or is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info, checksum = _read_header(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint's tensors ({err})") from err
    if checksum is not None and tensor_checksum(tensors) != checksum:
        raise CheckpointError(f"{path}: the checkpoint is damaged (its tensors do not match their "
                              "SHA-256 checksum)")
    return tensors, info


def cycle_of(path: Path) -> int:
    """The cycle a checkpoint's name (``cycle-NNNN.safetensors``) says it holds."""
    match = re.search(r"cycle-(\d+)", path.name)
    if match is None:
        raise CheckpointError(f"{path}: checkpoint name does not say its cycle")
    return int(match.group(1))
