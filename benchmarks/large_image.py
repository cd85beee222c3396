"""Peak memory of ``init`` and scoring on one large FITS image (a survey tile), against its file size.

Writes a ``side`` x ``side`` float32 FITS image (noise and one bright square),
then in a fresh process each: ``anomalymatch init`` on it, and scoring it
(the session's collection and normaliser, an untrained EfficientNet-Lite0,
``score_collection`` as ``anomalymatch score`` runs it).  Each process reports
its peak resident memory after its imports (and, for scoring, building the
model) and its peak at the end; the figure is the growth between them, as a
multiple of the file's size (the target: at most ~2).

    python benchmarks/large_image.py                       # 8,000^2 (256 MB)
    python benchmarks/large_image.py --side 20000          # the 1.6 GB tile of issue 34
    python benchmarks/large_image.py --src /path/to/main/src --label before   # another checkout

Each run replaces its own (label, side) entry of ``benchmarks/results/large_image.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from napari_anomalymatch.core.scoring.pathchoice import _processor  # noqa: E402  (as speed.py: one reading of the CPU)

PHASE = """
import json, resource, sys
from pathlib import Path
import torch
from napari_anomalymatch.cli import main
from napari_anomalymatch.core.config import ModelConfig, ScoreConfig
from napari_anomalymatch.core.learning.models import build_model
from napari_anomalymatch.core.runs import run_to_end
from napari_anomalymatch.core.scoring.run import score_collection
from napari_anomalymatch.core.session import Session

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

phase, image, session = sys.argv[1:4]
if phase == "init":
    baseline = peak_mb()
    assert main(["init", session, image, "--workers", "0", "--size", "32"]) == 0
    shape = Session.open(session).collection.shape
else:
    model = build_model(ModelConfig(), 1).model.eval()  # the tile has one channel
    baseline = peak_mb()  # with the model built: what scoring any collection takes
    opened = Session.open(session)
    result = run_to_end(score_collection(model, opened.collection, opened.normaliser, 32,
                                         ScoreConfig(batch_size=1, num_workers=0), torch.device("cpu")))
    assert result.scores.shape == (1,) and bool(torch.isfinite(torch.tensor(result.scores)).all())
    shape = opened.collection.shape
print(json.dumps({"baseline_mb": baseline, "peak_mb": peak_mb(), "image_shape_read": list(shape)}))
"""


def write_tile(path: Path, side: int) -> None:
    """A float32 noise image with a bright square in the middle, written a band of rows at a time."""
    from astropy.io import fits

    header = fits.PrimaryHDU(np.zeros((1, 1), np.float32)).header
    header["NAXIS1"] = header["NAXIS2"] = side
    header.tofile(path, overwrite=True)
    rng = np.random.default_rng(0)
    with open(path, "ab") as handle:
        for top in range(0, side, 1000):
            band = rng.normal(100, 5, (min(1000, side - top), side)).astype(np.float32)
            rows = slice(max(0, side // 2 - 100 - top), max(0, side // 2 + 100 - top))
            band[rows, side // 2 - 100:side // 2 + 100] += 500
            handle.write(band.astype(">f4").tobytes())
        handle.write(b"\0" * (-handle.tell() % 2880))  # FITS pads to 2880-byte blocks


def measure(phase: str, image: Path, session: Path, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", PHASE, phase, str(image), str(session)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8000)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the package's source to measure")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "large_image.json")
    parser.add_argument("--label", default="this", help="names the run; each replaces its own (label, side) entry")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "tile.fits"
        write_tile(image, args.side)
        file_mb = image.stat().st_size / 2**20
        phases = {phase: measure(phase, image, Path(tmp) / "session", args.src) for phase in ("init", "score")}
    for figures in phases.values():
        figures["above_baseline_mb"] = round(figures["peak_mb"] - figures["baseline_mb"], 1)
        figures["times_file_size"] = round(figures["above_baseline_mb"] / file_mb, 2)
    run = {"side": args.side, "file_mb": round(file_mb, 1), **phases, "src": str(args.src),
           "host": {"cpu": _processor(), "python": platform.python_version()}}
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result = {"benchmark": "large_image", "target_times_file_size": 2.0,
              "runs": {**result.get("runs", {}), f"{args.label} {args.side}": run}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(run, indent=1))


if __name__ == "__main__":
    main()
