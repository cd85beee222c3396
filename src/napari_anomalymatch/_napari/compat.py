"""Working around what the plugin's neighbours in a napari process do to each other.

Triton (installed with CUDA builds of torch) bundles its own LLVM.  Loading it
into a process where Mesa's OpenGL driver (llvmpipe, radeonsi) has already
loaded the system's libLLVM crashes the process (a segmentation fault inside
``import triton``).  napari creates its OpenGL context before any plugin
trains, and ``import timm`` imports triton (through torchvision and
torch._dynamo).  AnomalyMatch never uses triton (no ``torch.compile``), so in
that situation the plugin marks triton as unavailable before the model stack
is imported; torch then runs as it does without triton installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)
PROCESS_MAPS = Path("/proc/self/maps")


def avoid_triton_llvm_clash() -> bool:
    """Mark triton unavailable if importing it now would crash next to Mesa's LLVM.

    Returns True when it did so; a no-op when triton is imported already, not
    installed, or no libLLVM is loaded (or the platform does not say).
    """
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return False
    if not llvm_is_loaded():
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # `import triton` now raises ImportError
    LOG.info("triton left out of this napari process: its LLVM crashes next to the OpenGL driver's; "
             "AnomalyMatch does not need it")
    return True


def llvm_is_loaded() -> bool:
    """Whether a shared libLLVM is mapped into this process (Linux only; False elsewhere)."""
    try:
        return "libLLVM" in PROCESS_MAPS.read_text()
    except OSError:
        return False


def canvas_text_font(viewer: object) -> object | None:
    """The texture font napari's canvas text (overlays, points' text) draws with, or None where
    this napari keeps it elsewhere. Indexing it by a character renders that glyph once."""
    canvas = getattr(getattr(getattr(viewer, "window", None), "_qt_viewer", None), "canvas", None)
    info = getattr(canvas, "font_info", None)  # napari 0.9: a method; one Qt font manager per canvas
    info = info() if callable(info) else info
    manager = getattr(info, "font_manager", None)
    if manager is None or not hasattr(manager, "get_font"):
        return None
    return manager.get_font(info.face, False, False)


def load_napari_units() -> None:
    """Parse a unit with napari's pint registry once: its first parse (napari sets layer units as
    they are added or changed) took ~0.4 s of the GUI thread in the middle of a review."""
    try:
        from napari.utils._units import get_unit_registry
    except ImportError:  # another napari: nothing to load ahead
        return
    get_unit_registry().pixel  # noqa: B018 - the attribute access is the parse


def batched_layer_changes(viewer: Any) -> contextlib.AbstractContextManager:
    """Remove several layers with one scene-graph update: napari 0.9 runs a full ``gc.collect()`` after
    each removal (a work-around for Windows OpenGL drivers), 0.3-0.6 s of the GUI thread each in a process
    that holds torch, and once for a whole batch. A no-op where this napari cannot batch."""
    batched = getattr(viewer.layers, "batched_update", None)
    return batched() if batched is not None else contextlib.nullcontext()
