"""The demo's first minutes in a real viewer: how long the viewer stops answering, and what a cycle costs.

Opens napari with the plugin as ``make demo`` does (``_napari.demo.open_demo``: the FIRST sample
of 300 images as a new session) and, while a 50 ms ``QTimer`` records the gaps between its ticks,
goes through the first minutes of a user (after the demo's start, timed apart: it runs before
the event loop, as napari's own start does): the ranking without labels, ``N_LABELS`` labels
given with the a/n keys (from the sample's truth), a training cycle with its scoring (Train
panel shown), the embedding map (Map panel shown: in a fresh process the first map compiles
UMAP's code), and a second cycle with the Map panel shown (its map follows the cycle). A copy
of the session taken before the first cycle is then trained by ``anomalymatch train`` in a
process of its own, so each iteration's time in the viewer can be set beside the command line's
on the same machine. While a gap exceeds the target, a watcher thread samples where the GUI
thread is (``gui_thread_in_long_gaps``).

    python benchmarks/first_minutes.py          # about 3 minutes on 2 cores

Writes ``benchmarks/results/first_minutes.json``. Uses Xvfb when no display is set.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _display import display, settle  # noqa: E402
from review_latency import write_report  # noqa: E402

TIMER_MS = 50
TARGET_MAX_GAP_MS = 200
ITERATIONS = 5
N_LABELS = (5, 15)  # anomalies, normal images
STALL_FRAMES = 8  # innermost frames kept of the GUI thread's stack during a long gap
STALLS_KEPT = 5
RESULT = HERE / "results" / "first_minutes.json"
SCREENSHOTS = Path(tempfile.gettempdir()) / "first_minutes"


class GapTimer:
    """Gaps between the ticks of a ``TIMER_MS`` timer: how long the Qt event loop stopped answering.

    A watcher thread notes where the GUI thread is while a gap exceeds the target (a stack
    sampler: what to make shorter or move to a worker)."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self.stalls: collections.Counter = collections.Counter()
        self._gui_thread = threading.get_ident()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(TIMER_MS / 1000)
            if self.timer.isActive() and time.perf_counter() - self.ticks[-1] > TARGET_MAX_GAP_MS / 1000:
                frame = sys._current_frames().get(self._gui_thread)
                stack = traceback.extract_stack(frame)[-STALL_FRAMES:] if frame is not None else []
                self.stalls[" < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                       for f in reversed(stack))] += 1

    def phase(self, name: str, action, done) -> dict:
        """Run ``action()`` and process events until ``done()``; the gaps meanwhile."""
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        self.ticks = [time.perf_counter()]
        self.timer.start(TIMER_MS)
        started = time.perf_counter()
        action()
        while not done():
            app.processEvents()
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        settle(app, 0.2)
        self.timer.stop()
        gaps = np.diff(self.ticks) * 1000
        stalls, self.stalls = self.stalls.most_common(STALLS_KEPT), collections.Counter()
        result = {"phase": name, "seconds": round(seconds, 2), "n_ticks": len(gaps),
                  "median_gap_ms": round(float(np.median(gaps)), 1),
                  "p95_gap_ms": round(float(np.percentile(gaps, 95)), 1), "max_gap_ms": round(float(gaps.max()), 1),
                  "gaps_over_target": int((gaps > TARGET_MAX_GAP_MS).sum()),
                  "gui_thread_in_long_gaps": [{"samples": n, "stack": where} for where, n in stalls]}
        print(json.dumps(result), flush=True)
        return result


def label_from_truth(app, viewer) -> None:
    """Press a or n on the candidates, as the sample's truth says, until ``N_LABELS`` are given."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    truth = dict(zip(viewer.layers["FIRST radio galaxies"].metadata["ids"],
                     viewer.layers["FIRST radio galaxies"].metadata["is_anomaly"]))
    queue = app.controller.queue
    wanted = {True: N_LABELS[0], False: N_LABELS[1]}
    canvas = viewer.window._qt_viewer.canvas.native
    ranked = [queue.session.collection.id_of(int(i)) for i in queue.ranking]
    anomalies = [i for i in ranked if truth[i]][:wanted[True]]
    normal = [i for i in ranked if not truth[i]][:wanted[False]]
    for image_id in anomalies + normal:
        app.controller.find(image_id)
        canvas.setFocus()
        QTest.keyClick(canvas, Qt.Key.Key_A if truth[image_id] else Qt.Key.Key_N)
        yield  # the timer runs between presses, as it does between a person's


class StageClock:
    """When each kind of progress event of a run first and last reached the GUI thread."""

    def __init__(self, controller) -> None:
        self.seen: dict[str, list[float]] = {}
        self.started = time.perf_counter()
        controller.busy_changed.connect(self._on_busy)
        controller.progress.connect(self._on_event)

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self.seen, self.started = {}, time.perf_counter()

    def _on_event(self, event) -> None:
        name = type(event).__name__
        if name == "TrainStage":
            name = event.description.split(" to ")[0]
        now = round(time.perf_counter() - self.started, 2)
        self.seen.setdefault(name, [now, now])[1] = now

    def report(self) -> dict:
        """Seconds from the run's start to each stage's first and last event."""
        return {name: {"first_s": first, "last_s": last} for name, (first, last) in self.seen.items()}


def shoot(viewer, name: str) -> None:
    """A screenshot of the whole window, to look at (not kept in the repository). The repaints it
    leaves queued run here, not in the next phase: no user takes one between two key presses."""
    from qtpy.QtWidgets import QApplication

    SCREENSHOTS.mkdir(exist_ok=True)
    viewer.screenshot(str(SCREENSHOTS / f"{name}.png"), canvas_only=False, flash=False)
    settle(QApplication.instance(), 1.0)


def seconds_per_iteration(session_dir: Path, cycle: int) -> float:
    rows = json.loads((session_dir / "history" / f"losses-cycle-{cycle:04d}.json").read_text())
    return float(np.median([row["seconds_per_iteration"] for row in rows]))


def cli_cycle(session_dir: Path) -> dict:
    """The same cycle by ``anomalymatch train`` on a copy of the session (its own process)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "napari_anomalymatch.cli", "train", str(session_dir), "--cycles", "1"],
                   check=True, capture_output=True)
    return {"seconds": round(time.perf_counter() - started, 1),
            "median_seconds_per_iteration": round(seconds_per_iteration(session_dir, 1), 3)}


def run(folder: Path) -> tuple:
    from napari_anomalymatch._napari.demo import open_demo
    from napari_anomalymatch.core.config import SessionConfig

    started = time.perf_counter()  # the demo's start, before the event loop runs: not a freeze one sees
    app = open_demo(folder / "demo", config=SessionConfig().with_settings(iterations=ITERATIONS))
    viewer, controller = app.viewer, app.controller
    first_candidate_s = time.perf_counter() - started
    gaps, stages = GapTimer(), StageClock(controller)
    phases = [gaps.phase("rank without labels", lambda: None, lambda: not controller.busy)]
    shoot(viewer, "ranked")
    app.widget.show_panel("Review")
    presses = label_from_truth(app, viewer)
    phases.append(gaps.phase("label with keys", lambda: None, lambda: next(presses, "done") == "done"))
    cli_copy = Path(shutil.copytree(folder / "demo", folder / "cli-copy"))
    app.widget.show_panel("Train")
    phases.append(gaps.phase("cycle 1 and scoring", controller.train_cycle, lambda: not controller.busy))
    phases[-1]["stages"] = stages.report()
    shoot(viewer, "cycle-1")
    maps = controller.embedding_map
    phases.append(gaps.phase("map (first in the process)", lambda: app.widget.show_panel("Map"),
                             lambda: not maps.busy and maps.map is not None))
    phases.append(gaps.phase("cycle 2, scoring and its map", controller.train_cycle,
                             lambda: not controller.busy and not maps.busy and maps.map.cycle == 2))
    phases[-1]["stages"] = stages.report()
    shoot(viewer, "cycle-2-map")
    gui = {"median_seconds_per_iteration": round(seconds_per_iteration(folder / "demo", 1), 3),
           "cycle_seconds": phases[2]["seconds"]}
    cli = cli_cycle(cli_copy)  # the viewer idle meanwhile (closed after the report is written)
    return app, {"demo_start_to_first_candidate_seconds": round(first_candidate_s, 1), "phases": phases,
            "cycle_1": {"iterations": ITERATIONS, "gui": gui, "cli": cli,
                        "gui_over_cli": round(gui["median_seconds_per_iteration"]
                                              / cli["median_seconds_per_iteration"], 2)}}


def main() -> int:
    import napari

    load_before = os.getloadavg()  # the machine is shared: say how busy it was
    with display((1280, 800)), tempfile.TemporaryDirectory() as tmp:
        app, result = run(Path(tmp))
        write_report(RESULT, {"benchmark": "first_minutes", "timer_ms": TIMER_MS,
                              "target_max_gap_ms": TARGET_MAX_GAP_MS, **result, "napari": napari.__version__},
                     load_before)
        app.close()
        app.viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
