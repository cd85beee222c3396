"""Time from a key press to the next candidate drawn, in a real viewer (64 and 256 px).

For each cutout size an HDF5 collection of ``N_IMAGES`` float32 sky-like
images is reviewed in score order (random scores, so the reads jump about the
file, as in a real ranking).  Each step presses → on the viewer's canvas
(napari's key dispatch, the controller, a read and render if not cached, the
in-place layer update) and processes Qt events until the canvas has been
repainted.  Two paces are measured: ``paced`` (0.25 s between presses, the
pace of a person labelling; neighbours are rendered ahead while idle) and
``burst`` (the key held down: no idle time, every image read cold).  Then
``PageDown`` (one gallery page: a new page of 25 tiles read and composed) and
"go to rank" (the Review panel's box, to random ranks) are timed the same
way, and at 64 px a training cycle with scoring runs in its worker while a
50 ms ``QTimer`` records the gaps between its ticks (how long the viewer
stops answering).

    python benchmarks/review_latency.py

Writes ``benchmarks/results/review_latency.json``.  Uses Xvfb when no display is set.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _display import display, settle

N_IMAGES = 2000
N_STEPS = 100
N_JUMPS = 20  # PageDown presses and go-to-rank jumps
TIMER_MS = 50
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
    from napari_anomalymatch.core.scoring.store import ScoreManifest, ScoreStore

    n = len(session.collection)
    scores = np.random.default_rng(1).random(n).astype(np.float32)
    manifest = ScoreManifest(session.collection.fingerprint(), n, "benchmark", 1, n, "benchmark")
    store = ScoreStore(session.runs.directory(1), manifest)
    store.write_part(0, scores)
    store.consolidate()  # a finished run: only those are ranked
    store.mark_complete({})


def until_painted(viewer, app, action, repeats: int, pace: float) -> list[float]:
    """Milliseconds from each ``action(step)`` until the canvas has repainted."""
    canvas = viewer.window._qt_viewer.canvas
    painted = []
    record = lambda event: painted.append(time.perf_counter())  # noqa: E731
    canvas.events.draw.connect(record)
    times = []
    for step in range(repeats):
        if pace:
            settle(app, pace)
        painted.clear()
        started = time.perf_counter()
        action(step)
        while not painted:
            app.processEvents()
        times.append((painted[0] - started) * 1000)
    canvas.events.draw.disconnect(record)
    return times


def key_press(viewer, key: str):
    """An action pressing ``key`` on the canvas."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    native = viewer.window._qt_viewer.canvas.native
    native.setFocus()
    return lambda step: QTest.keyClick(native, getattr(Qt.Key, f"Key_{key}"))


def go_to_rank(widget, ranks: np.ndarray):
    """An action typing a rank into the Review panel's go-to box and pressing Go."""
    panel = widget.review_panel

    def action(step: int) -> None:
        panel.go_to.value = str(int(ranks[step]))
        panel.go_button.clicked.emit()

    return action


def summary(times: list[float]) -> dict:
    values = np.asarray(times)
    return {"median_ms": round(float(np.median(values)), 2), "p95_ms": round(float(np.percentile(values, 95)), 2),
            "max_ms": round(float(values.max()), 2)}


def timer_gaps_during_a_cycle(controller, app) -> dict:
    """Gaps between the ticks of a 50 ms timer while a training cycle and scoring run in the worker."""
    from qtpy.QtCore import QTimer

    from napari_anomalymatch.core.config import ModelConfig, ScoreConfig, TrainConfig

    rng = np.random.default_rng(2)
    ids = controller.session.collection.ids()
    for position, i in enumerate(rng.choice(len(ids), 20, replace=False)):
        controller.session.label(ids[i], "anomaly" if position < 5 else "normal")
    controller.configure(model=ModelConfig(image_size=64),
                         train=TrainConfig(iterations=20, batch_size=16, unlabelled_ratio=2,
                                           unlabelled_pool_size=512),
                         score=ScoreConfig(batch_size=128, num_workers=0))
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(TIMER_MS)
    started = time.perf_counter()
    controller.train_cycle()
    controller.wait()
    seconds = time.perf_counter() - started
    timer.stop()
    gaps = np.diff(ticks) * 1000
    return {"timer_ms": TIMER_MS, "run_seconds": round(seconds, 1), "n_ticks": len(ticks),
            "median_gap_ms": round(float(np.median(gaps)), 1), "p95_gap_ms": round(float(np.percentile(gaps, 95)), 1),
            "max_gap_ms": round(float(gaps.max()), 1)}


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
    result = {"image_size": size, "n_images": N_IMAGES, "n_steps": N_STEPS, "n_jumps": N_JUMPS}
    for name, pace in (("paced", PACE_SECONDS), ("burst", 0.0)):
        result[name] = summary(until_painted(viewer, app, key_press(viewer, "Right"), N_STEPS, pace))
    controller.go_to(0)
    result["page_down"] = summary(until_painted(viewer, app, key_press(viewer, "PageDown"), N_JUMPS, PACE_SECONDS))
    ranks = np.random.default_rng(3).integers(1, len(controller.queue) + 1, N_JUMPS)
    result["go_to_rank"] = summary(until_painted(viewer, app, go_to_rank(widget, ranks), N_JUMPS, PACE_SECONDS))
    if size == min(SIZES):
        result["training_cycle"] = timer_gaps_during_a_cycle(controller, app)
    controller.close()
    viewer.close()
    return result


def cpu_model() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "cpu"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0]} ({len(names)} logical CPUs)" if names else platform.processor() or "cpu"


def write_report(path: Path, report: dict, load_before: tuple[float, float, float]) -> None:
    """Write a result file with the machine and how busy it was (the machine is shared)."""
    report = {**report, "python": platform.python_version(), "machine": f"{platform.machine()}, {cpu_model()}",
              "load_average": {"before": load_before, "after": os.getloadavg()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {path}")


def main() -> int:
    import napari

    results = []
    load_before = os.getloadavg()  # the machine is shared: say how busy it was
    with display(), tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            results.append(measure(size, Path(tmp)))
            print(json.dumps(results[-1]))
    write_report(RESULT, {"benchmark": "review_latency", "target_median_ms": 50, "target_max_gap_ms": 200,
                          "results": results, "napari": napari.__version__, "pace_seconds": PACE_SECONDS},
                 load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
