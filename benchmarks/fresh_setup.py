"""The README's first command on a fresh clone: how long from ``make demo`` to the first candidate.

Clones this repository (its committed HEAD) into a temporary folder and runs ``make demo`` there
under a virtual display (Xvfb), as a new user would: pip installs the pinned packages with no
cache (every wheel downloaded from the registry), then napari opens on the FIRST sample and ranks
it without labels. The first candidate is on screen once the ranking's score run is complete in
the session folder (the review shows it in the same event-loop turn); the demo is then closed.

    python benchmarks/fresh_setup.py            # several minutes: about 6 GB of wheels

Writes ``benchmarks/results/fresh_setup.json``: seconds to the end of the install and to the
first candidate, the download size, the host and its load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _display import display  # noqa: E402
from review_latency import write_report  # noqa: E402

RESULT = HERE / "results" / "fresh_setup.json"
SESSION = "anomalymatch-demo-napari"  # the demo's session folder (``_napari.demo.DEMO_SESSION``)
TIMEOUT_S = 1800


def ranked(clone: Path) -> bool:
    """Whether the demo session holds a complete score run (the ranking the review shows)."""
    return any((clone / SESSION).glob("scores/*/complete.json"))


def first_candidate(clone: Path) -> dict:
    """Run ``make demo`` in ``clone`` until its first ranking is complete; seconds to each stage."""
    started = time.perf_counter()
    with open(clone / "make-demo.log", "w") as log:  # the child keeps its own copy of the handle
        demo = subprocess.Popen(["make", "demo"], cwd=clone, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    installed_s = None
    try:
        while demo.poll() is None and time.perf_counter() - started < TIMEOUT_S:
            if installed_s is None and (clone / ".venv" / ".demo-installed").exists():
                installed_s = time.perf_counter() - started
            if ranked(clone):
                return {"install_seconds": round(installed_s, 1),
                        "command_to_first_candidate_seconds": round(time.perf_counter() - started, 1)}
            time.sleep(0.2)
        raise SystemExit(f"make demo ended or timed out before a ranking; see {clone / 'make-demo.log'}:\n"
                         + (clone / "make-demo.log").read_text()[-3000:])
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
            demo.wait(60)


def main() -> int:
    load_before = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp, display((1280, 800)):
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(HERE.parent), str(clone)], check=True)
        result = first_candidate(clone)
        venv_bytes = sum(f.stat().st_size for f in (clone / ".venv").rglob("*") if f.is_file())
    result.update(commit=commit, venv_gigabytes=round(venv_bytes / 1e9, 2), target_seconds=300,
                  pip_cache="none (the Makefile installs with --no-cache-dir)")
    write_report(RESULT, {"benchmark": "fresh_setup", **result}, load_before)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
