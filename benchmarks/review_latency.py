"""Median time from a key press to the next candidate drawn, in a real viewer (64 and 256 px).

For each cutout size an HDF5 collection of ``N_IMAGES`` float32 sky-like
images is reviewed in score order (random scores, so the reads jump about the
file, as in a real ranking).  Each step presses → on the viewer's canvas
(napari's key dispatch, the controller, a read and render if not cached, the
in-place layer update) and processes Qt events until the canvas has been
repainted.  Two paces are measured: ``paced`` (0.25 s between presses, the
pace of a person labelling; neighbours are rendered ahead while idle) and
``burst`` (the key held down: no idle time, every image read cold).

    python benchmarks/review_latency.py

Writes ``benchmarks/results/review_latency.json``.  Uses Xvfb when no display is set.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _display import display, settle

N_IMAGES = 2000
N_STEPS = 150
SIZES = (64, 256)
PACE_SECONDS = 0.25
RESULT = Path(__file__).resolve().parent / "results" / "review_latency.json"


def write_collection(path: Path, size: int, seed: int = 0) -> None:
    """Sky-like cutouts: noise plus a few Gaussian sources, written in batches."""
    import h5py

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    with h5py.File(path, "w") as handle:
        data = handle.create_dataset("images", shape=(N_IMAGES, size, size), dtype=np.float32,
                                     chunks=(1, size, size))
        for start in range(0, N_IMAGES, 200):
            batch = rng.normal(0.0, 1.0, (200, size, size)).astype(np.float32)
            for image in batch:
                for _ in range(3):
                    y, x = rng.uniform(0, size, 2)
                    sigma = rng.uniform(1, size / 12)
                    image += rng.uniform(5, 200) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
            data[start:start + 200] = batch


def write_random_scores(session) -> None:
    from napari_anomalymatch.core.scorestore import ScoreManifest, ScoreStore

    n = len(session.collection)
    scores = np.random.default_rng(1).random(n).astype(np.float32)
    manifest = ScoreManifest(session.collection.fingerprint(), n, "benchmark", 1, n, "benchmark")
    store = ScoreStore(session.score_directory(1), manifest)
    store.write_part(0, scores)
    store.consolidate()  # a finished run: only those are ranked
    store.mark_complete({})


def step_times(viewer, app, pace: float) -> list[float]:
    """Milliseconds per → press until the canvas has repainted."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    canvas = viewer.window._qt_viewer.canvas
    painted = []
    canvas.events.draw.connect(lambda event: painted.append(time.perf_counter()))
    native = canvas.native
    native.setFocus()
    times = []
    for _ in range(N_STEPS):
        if pace:
            settle(app, pace)
        painted.clear()
        started = time.perf_counter()
        QTest.keyClick(native, Qt.Key.Key_Right)
        while not painted:
            app.processEvents()
        times.append((painted[0] - started) * 1000)
    return times


def measure(size: int, folder: Path) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_anomalymatch._napari.main_widget import AnomalyMatchWidget

    source = folder / f"cutouts-{size}.h5"
    write_collection(source, size)
    viewer = napari.Viewer(show=True)
    widget = AnomalyMatchWidget(viewer)
    viewer.window.add_dock_widget(widget, name="AnomalyMatch")
    controller = widget.controller
    controller.load(folder / f"session-{size}", source)
    write_random_scores(controller.session)
    controller.refresh()
    controller.go_to(0)
    app = QApplication.instance()
    settle(app, 1.0)
    result = {"image_size": size, "n_images": N_IMAGES, "n_steps": N_STEPS}
    for name, pace in (("paced", PACE_SECONDS), ("burst", 0.0)):
        times = np.array(step_times(viewer, app, pace))
        result[name] = {"median_ms": round(float(np.median(times)), 2),
                        "p90_ms": round(float(np.percentile(times, 90)), 2),
                        "max_ms": round(float(times.max()), 2)}
    controller.close()
    viewer.close()
    return result


def main() -> int:
    import napari

    results = []
    with display(), tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            results.append(measure(size, Path(tmp)))
            print(json.dumps(results[-1]))
    report = {"benchmark": "review_latency", "target_median_ms": 50, "results": results,
              "napari": napari.__version__, "python": platform.python_version(),
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
              "pace_seconds": PACE_SECONDS}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
