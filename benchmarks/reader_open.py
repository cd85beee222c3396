"""Opening a 10^6-image HDF5 file in a real viewer: time to the first image on screen.

The file holds 10^6 images of 64x64 uint8 in chunks of 256 images; only the
first chunks are written (the rest read as HDF5's fill value), so the file is
small but napari and the reader see the full 10^6-image dataset.  Measured:
``get_reader`` (opening: metadata and the first image), ``viewer.open`` until
the canvas has drawn (napari shows the stack's middle image), and moving to
the first image until it is drawn.

    python benchmarks/reader_open.py

Writes ``benchmarks/results/reader_open.json``.  Uses Xvfb when no display is set.
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

N_IMAGES = 1_000_000
SIZE = 64
WRITTEN = 4096
RESULT = Path(__file__).resolve().parent / "results" / "reader_open.json"


def write_file(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        data = handle.create_dataset("images", shape=(N_IMAGES, SIZE, SIZE), dtype=np.uint8,
                                     chunks=(256, SIZE, SIZE), fillvalue=7)
        data[:WRITTEN] = np.random.default_rng(0).integers(0, 255, (WRITTEN, SIZE, SIZE), dtype=np.uint8)


def until_drawn(viewer, app, action) -> float:
    """Seconds from calling ``action`` until the canvas has repainted."""
    painted: list[float] = []
    callback = viewer.window._qt_viewer.canvas.events.draw.connect(lambda event: painted.append(time.perf_counter()))
    started = time.perf_counter()
    action()
    painted.clear()  # a paint during the action may predate the new layer: ask for one after it
    viewer.window._qt_viewer.canvas.native.update()
    while not painted:
        app.processEvents()
    viewer.window._qt_viewer.canvas.events.draw.disconnect(callback)
    return painted[0] - started


def main() -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_anomalymatch._napari.reader import napari_get_reader

    with display(), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "million.h5"
        write_file(path)
        started = time.perf_counter()
        reader = napari_get_reader(str(path))
        layer_data = reader(str(path))
        get_reader_s = time.perf_counter() - started
        viewer = napari.Viewer(show=True)
        app = QApplication.instance()
        settle(app, 1.0)
        open_s = until_drawn(viewer, app, lambda: viewer.open(str(path), plugin="napari-anomalymatch"))
        layer = viewer.layers[0]
        first_s = until_drawn(viewer, app, lambda: viewer.dims.set_current_step(0, 0))
        shown = np.asarray(layer._slice.image.raw)
        with __import__("h5py").File(path, "r") as handle:
            assert np.array_equal(shown, handle["images"][0]), "the first image is not what is shown"
        viewer.close()
    report = {
        "benchmark": "reader_open", "n_images": N_IMAGES, "image_shape": [SIZE, SIZE],
        "layer_shape": list(layer_data[0][0].shape), "target_s": 2.0,
        "get_reader_and_layer_data_s": round(get_reader_s, 3),
        "viewer_open_until_drawn_s": round(open_s, 3),
        "first_image_drawn_after_s": round(first_s, 3),
        "total_open_to_first_image_s": round(open_s + first_s, 3),
        "napari": napari.__version__, "python": platform.python_version(), "machine": platform.machine(),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
