"""Render the README's screenshots (docs/images/*.png) from a real viewer on the FIRST demo data.

Trains two short cycles on 1,905 real FIRST radio galaxies (a simulated
expert labels the top candidates in between), then captures the window with
each panel in front.  Runs under Xvfb when no display is set.  Takes a few
minutes on a CPU.

    python scripts/render_screenshots.py [--out docs/images] [--iterations 40] [--size 1280x800 1920x1080]

Each shot is rendered at each window size: ``review.png`` at the default 1600x1000, ``review-1280x800.png``
at another size (a laptop screen, say), so the panels can be looked at where space is short.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from scripted_session import open_demo_session, review_top  # noqa: E402

WINDOW = (1600, 1000)
COLOURS = 192  # PNG palette size: keeps each screenshot small


@contextlib.contextmanager
def display(window: tuple[int, int]) -> Iterator[None]:
    if os.environ.get("DISPLAY"):
        yield
        return
    from pyvirtualdisplay import Display

    with Display(visible=False, size=(window[0] + 100, window[1] + 100), color_depth=24):
        yield


def save(array: np.ndarray, path: Path) -> None:
    """Save an RGBA screenshot as a palette PNG."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array[..., :3]))
    image.quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


def settle(app, viewer, frames: int = 30) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(frames):
        QApplication.processEvents()
        viewer.window._qt_viewer.canvas.native.update()
    app.controller.wait()


SHOTS = {"review": "Review", "train": "Train", "metrics": "Metrics", "data": "Data", "display": "Display",
         "saliency": "Review", "map": "Map", "similar": "Review"}


def select_top_cluster(app, count: int = 40) -> None:
    """Lasso the map around the highest-scoring images and review only those (the Map panel's use)."""
    maps = app.controller.embedding_map
    if maps.map is None:
        app.compute_map()
    maps.wait()
    found, scores = maps.map, maps.colouring("score").scores
    top = found.xy[np.argsort(-np.nan_to_num(scores, nan=-1.0))[:count]]
    centre, spread = np.median(top, axis=0), np.percentile(np.abs(top - np.median(top, axis=0)), 70, axis=0)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    app.select_on_map(centre + np.c_[np.cos(angles), np.sin(angles)] * spread.max())
    app.review_selection()


def prepare(app, work: Path, iterations: int, train: bool) -> None:
    """Two cycles with a simulated expert in between (one more when ``work`` holds them already).

    Without ``train`` a session already trained twice is used as it is.
    """
    truth = open_demo_session(app, work, iterations)
    if not train and app.session.cycle >= 2:
        return
    if app.session.cycle < 1:
        app.train_cycle()
    review_top(app, truth, count=15)
    app.train_cycle()


def render(out: Path, work: Path, iterations: int, shots: list[str],
           windows: list[tuple[int, int]] = [WINDOW]) -> None:  # noqa: B006 (never changed)
    from napari_anomalymatch import open_plugin

    app = open_plugin()
    viewer = app.viewer
    viewer.window.resize(*windows[0])
    prepare(app, work, iterations, train="train" in shots)  # the loss plot needs a cycle run here
    app.test_report(work / "data" / "manifest.csv")
    for window in windows:
        viewer.window.resize(*window)
        suffix = "" if window == WINDOW else f"-{window[0]}x{window[1]}"
        for name in shots:
            show(app, name)
            settle(app, viewer)  # the view refits itself when the canvas changes size
            save(viewer.screenshot(canvas_only=False, flash=False), out / f"{name}{suffix}.png")
    app.close()
    viewer.close()


def show(app, name: str) -> None:
    """Bring the panel and the review state of shot ``name`` to the front."""
    app.similar(False)
    app.controller.embedding_map.review_everything()  # not the map's selection of an earlier shot
    app.order("score", "all")  # the top of the ranking, labelled ones included: coloured borders
    app.go_to(3)
    app.widget.show_panel(SHOTS[name])
    app.display(gamma=0.5 if name == "display" else 1.0, unsharp_amount=1.5 if name == "display" else 0.0)
    app.gallery(name not in ("display", "saliency"))  # display and saliency: the candidate alone
    if name == "map":
        select_top_cluster(app)
    if name == "similar":  # the look-alikes of the candidate at rank 2
        app.controller.embedding_map.review_everything()
        app.go_to(2)
        app.similar(True)
    app.saliency(name == "saliency")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the demo session here (a re-render then trains one cycle more)")
    parser.add_argument("--shots", nargs="+", choices=list(SHOTS), default=list(SHOTS),
                        help="which screenshots (without 'train', a session trained before is reused as is)")
    parser.add_argument("--size", nargs="+", default=[f"{WINDOW[0]}x{WINDOW[1]}"],
                        help="window sizes WIDTHxHEIGHT (e.g. 1280x800 1920x1080: a laptop and a desktop)")
    args = parser.parse_args()
    windows = [tuple(int(n) for n in size.lower().split("x")) for size in args.size]
    args.out.mkdir(parents=True, exist_ok=True)
    largest = (max(w for w, _ in windows), max(h for _, h in windows))
    with display(largest), contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        render(args.out, work, args.iterations, args.shots, windows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
