"""``make demo``: napari with the plugin docked, ready to label the FIRST radio galaxies.

The sample (*File > Open Sample > FIRST radio galaxies*) becomes the source of a session in
``anomalymatch-demo-napari/``, and its first candidates are on screen at once, in the sample's
order; the ranking without labels (``Session.score_unsupervised``) runs in the background and
puts the most unusual images first when it is done. Running the demo again reopens the session
with every label given.

``python -m napari_anomalymatch._napari.demo --check-display`` only says (by its exit status)
whether a window can be opened here: the Makefile runs the command-line demo where none can.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.session import CONFIG_FILE
from .api import AnomalyMatchApp, open_plugin
from .layers import write_layer_stack

if TYPE_CHECKING:
    import napari

    from ..core.config import SessionConfig

DEMO_SESSION = Path("anomalymatch-demo-napari")
PLUGIN = "napari-anomalymatch"
SAMPLE = "first_radio_galaxies"


def open_demo(session_dir: str | Path = DEMO_SESSION, viewer: napari.Viewer | None = None,
              config: SessionConfig | None = None, rank: bool = True) -> AnomalyMatchApp:
    """Dock the plugin, open the FIRST sample and make it a session's source (or reopen that session).

    Parameters
    ----------
    session_dir
        The demo's session folder; an existing session there is reopened, its labels kept.
    viewer
        The viewer (None: a new one).
    config
        Settings of a new session (None: the defaults).
    rank
        Start the ranking without labels in the background when the session has no ranking yet.
    """
    session_dir = Path(session_dir)
    app = open_plugin(viewer)
    if config is not None:
        app.controller.defaults = config
    sample = app.viewer.open_sample(PLUGIN, SAMPLE)[0]
    if (session_dir / CONFIG_FILE).exists():
        app.controller.load(session_dir)
    else:
        session_dir.mkdir(parents=True, exist_ok=True)
        source = write_layer_stack(sample, session_dir)
        app.controller.load(session_dir, source=source["path"], reader=source["reader"],
                            options=source["options"])
    sample.visible = False  # the review's candidate and gallery show its images
    session = app.controller.session
    if rank and session.cycle == 0 and not session.runs.ranking_method():
        app.controller.score_unsupervised()
    app.widget.glyphs.finish()  # while the ranking runs: its first caption then draws without a freeze
    return app


def display_available() -> bool:
    """Whether Qt can open a window here (tried in a child process: Qt aborts the process that
    cannot)."""
    probe = "from qtpy.QtWidgets import QApplication; QApplication([])"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_anomalymatch._napari.demo",
                                     description="napari with AnomalyMatch on the FIRST sample, ready to label")
    parser.add_argument("--session", type=Path, default=DEMO_SESSION, help=f"session folder ({DEMO_SESSION})")
    parser.add_argument("--check-display", action="store_true",
                        help="only check that a window can be opened (exit status 0) and exit")
    args = parser.parse_args(argv)
    if args.check_display:
        return 0 if display_available() else 1
    import napari

    open_demo(args.session)
    print(f"napari is open on the session {args.session}: label with a (anomaly) and n (normal), "
          "then press r to train", flush=True)
    napari.run()  # closing the window closes the session (the dock's controller)
    return 0


if __name__ == "__main__":
    sys.exit(main())
