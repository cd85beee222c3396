"""Render docs/images/mosaic.png: the real M13 tile in napari with its candidates as points.

The stars of astropy's M13 image are detected (sep), cut into 32-pixel cutouts, ranked with zero labels
(the pretrained network's novelty score), and shown on the tile: points sized by rank, coloured by score;
the review's current candidate is centred.  Runs under Xvfb when no display is set.

    python scripts/render_mosaic_screenshot.py [--out docs/images/mosaic.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from render_screenshots import display, save  # noqa: E402

M13 = Path(__import__("astropy").__file__).parent / "io" / "fits" / "hdu" / "compressed" / "tests" / "data" / "m13.fits"
WINDOW = (1200, 900)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "mosaic.png")
    args = parser.parse_args()
    from napari_anomalymatch.core.config import DataConfig, SessionConfig
    from napari_anomalymatch.core.io.detect import DetectConfig, mosaic_data
    from napari_anomalymatch.core.session import Session

    with tempfile.TemporaryDirectory() as work, display(WINDOW):
        folder = Path(work) / "session"
        data = mosaic_data(folder, DataConfig(options={"mosaic": [str(M13)], "cutout_size": "32px"}),
                           DetectConfig(threshold=5))
        config = SessionConfig().with_settings(image_size=32, crop=1.0)
        with Session.open_or_create(folder, data=data, config=config) as session:
            for _ in session.score_unsupervised():
                pass
        return shoot(folder, args.out)


def shoot(folder: Path, out: Path) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_anomalymatch._napari.main_widget import AnomalyMatchWidget
    from napari_anomalymatch._napari.mosaic_layer import MosaicView

    review = napari.Viewer(show=True)
    dock = AnomalyMatchWidget(review)
    dock.controller.load(folder)
    mosaic = napari.Viewer(show=True, title="mosaic: M13")
    mosaic.window._qt_window.resize(*WINDOW)
    view = MosaicView(dock.controller, M13, mosaic, top=150)
    mosaic.reset_view()
    dock.controller.go_to(0)
    for _ in range(40):
        QApplication.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    save(np.asarray(mosaic.screenshot(canvas_only=False, flash=False)), out)
    view.close()
    dock.controller.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
