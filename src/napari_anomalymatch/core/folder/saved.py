"""What a session folder holds, read from its files alone: for a message after an interruption."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from ..learning.checkpoints import read_checkpoint_info
from ..scoring.runs import run_status


def saved_state(path: str | Path) -> str:
    """What a session folder holds now, in words: its latest checkpoint and its newest score run.

    Read from the files alone (the collection is not opened), for a message
    after an interruption that must claim no more than was kept.
    """
    path = Path(path)
    found = sorted((path / "checkpoints").glob("cycle-*.safetensors"))
    said = []
    if found:
        try:
            info = read_checkpoint_info(found[-1])
            said.append(f"the latest checkpoint is {found[-1]} (cycle {info.cycle}, "
                        f"{info.iterations_done} iterations in all)")
        except CheckpointError as err:
            said.append(f"the latest checkpoint cannot be read: {err}")
    else:
        said.append("no checkpoint has been saved")
    runs = sorted((path / "scores").glob("cycle-*"))
    status = run_status(runs[-1]) if runs else None
    if status is not None:
        state = "complete" if status.complete else f"{status.parts_done} of {status.n_parts} parts kept"
        said.append(f"the scores of cycle {status.cycle}: {state}")
    return "; ".join(said)
