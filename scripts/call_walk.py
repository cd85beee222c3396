"""Trace the walk of ``anomalymatch evaluate`` through the package's modules (issue 32).

Runs ``evaluate`` on a tiny synthetic manifest (80 PNG blobs, 2 cycles of 2 iterations) under
``sys.setprofile`` and records, for every call of a function of the package, the module it lives
in.  The walk is that sequence with repeats of the same module in a row merged and a step
already taken (the same module to the same module) kept once only, so a loop over images counts
once.  It reports, for the walk from the command-line argument to the first ``Trainer.run`` and
for the whole run:

* steps: the module-to-module moves;
* rooms: the distinct modules entered;
* climbs back: moves into a module the walk had already left (back up the call chain, or a
  second visit from elsewhere).

Usage::

    PYTHONPATH=$PWD/src python scripts/call_walk.py [--show]
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import itertools
import pkgutil
import sys
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = "napari_anomalymatch"


def write_manifest(folder: Path, n: int = 80, size: int = 32) -> Path:
    """``n`` grey blobs (every fifth a bright ring, the anomalies): 2 anomalies and 4 normal labelled."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    radius = np.hypot(yy, xx)
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        ring = i % 5 == 0
        signal = (200 * np.exp(-((radius - size / 4) ** 2) / 4) if ring
                  else 120 * np.exp(-(radius**2) / (2 * (size / 10) ** 2)))
        Image.fromarray(np.clip(rng.normal(20, 5, (size, size)) + signal, 0, 255).astype(np.uint8)).save(
            folder / "images" / f"img_{i:03d}.png")
        initial = "anomaly" if ring and i < 10 else "normal" if not ring and i < 6 else ""
        rows.append([f"images/img_{i:03d}.png", int(ring), initial])
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "is_anomaly", "initial_label"], *rows])
    return manifest


class Walk:
    """The modules of the package's calls, in order, until ``stop_at`` is first called."""

    def __init__(self, stop_at: str) -> None:
        self.stop_at = stop_at
        self.modules: list[str] = []
        self.to_trainer: list[str] | None = None

    def __call__(self, frame, event: str, arg) -> None:
        if event != "call" or not frame.f_code.co_flags & inspect.CO_OPTIMIZED:
            return  # a module's or a class's body runs once, on import: not part of the walk
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(PACKAGE):
            return
        module = module[len(PACKAGE) + 1:] or PACKAGE
        if not self.modules or self.modules[-1] != module:
            self.modules.append(module)
        if self.to_trainer is None and f"{module}.{frame.f_code.co_qualname}" == self.stop_at:
            self.to_trainer = list(self.modules)


def summarise(modules: list[str]) -> dict:
    """Steps (each move once), rooms and climbs back of a walk."""
    seen_steps: set[tuple[str, str]] = set()
    steps: list[tuple[str, str]] = []
    left: set[str] = set()
    climbs = 0
    for here, there in itertools.pairwise(modules):
        if (here, there) in seen_steps:
            left.add(here)
            continue
        seen_steps.add((here, there))
        steps.append((here, there))
        left.add(here)
        climbs += there in left
    return {"steps": len(steps), "rooms": len(set(modules)), "climbs_back": climbs, "walk": steps}


def import_engine() -> None:
    """Import every module of the GUI-free engine before the walk is traced."""
    import napari_anomalymatch.core as core

    for found in pkgutil.walk_packages(core.__path__, f"{core.__name__}."):
        importlib.import_module(found.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="print every step")
    args = parser.parse_args(argv)
    from napari_anomalymatch.cli import main as cli

    import_engine()  # imports run functions (registries, dataclasses): only the run's calls count

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(Path(tmp) / "bench")
        walk = Walk("core.learning.training.Trainer.run")
        sys.setprofile(walk)
        try:
            code = cli(["evaluate", str(manifest), "--cycles", "2", "--seed", "0", "--iterations", "2",
                        "--batch-size", "4", "--unlabelled-ratio", "1", "--pool-size", "16", "--size", "32",
                        "--workers", "0", "--test-fraction", "0"])
        finally:
            sys.setprofile(None)
    if code != 0:
        raise SystemExit(f"evaluate failed with status {code}")
    for name, modules in (("to Trainer.run", walk.to_trainer or []), ("whole run", walk.modules)):
        found = summarise(modules)
        print(f"{name}: {found['steps']} steps through {found['rooms']} modules, "
              f"{found['climbs_back']} climbs back")
        if args.show:
            for here, there in found["walk"]:
                print(f"    {here} -> {there}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
