"""Cross-match speed: 10^5 candidates against a 10^6-row catalogue of known objects.

Both are random positions uniform on the sky (seeded).  Measured, each three
times: reading the catalogue from a FITS file (``read_known_catalogue``) and
matching (``match_positions``: astropy's ``match_to_catalog_sky``, which
builds a k-d tree of the catalogue and queries it once per candidate).

    python benchmarks/crossmatch_speed.py

Writes ``benchmarks/results/crossmatch_speed.json`` with the host's CPU model.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

N_CANDIDATES = 100_000
N_CATALOGUE = 1_000_000
REPEATS = 3
RESULT = Path(__file__).resolve().parent / "results" / "crossmatch_speed.json"


def sky(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions uniform on the sphere, in degrees."""
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return ra, dec


def main() -> int:
    from astropy.table import Table

    from napari_anomalymatch.core.review.crossmatch import match_positions
    from napari_anomalymatch.core.review.known import read_known_catalogue
    from napari_anomalymatch.core.scoring.pathchoice import _processor  # as speed.py: one reading of the CPU model

    rng = np.random.default_rng(0)
    cat_ra, cat_dec = sky(rng, N_CATALOGUE)
    ra, dec = sky(rng, N_CANDIDATES)
    read_s, match_s = [], []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "known.fits"
        Table({"name": [f"K{i:07d}" for i in range(N_CATALOGUE)], "RAJ2000": cat_ra,
               "DEJ2000": cat_dec}).write(path)
        for _ in range(REPEATS):
            started = time.perf_counter()
            catalogue = read_known_catalogue(path)
            read_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            rows, separation = match_positions(ra, dec, catalogue)
            match_s.append(time.perf_counter() - started)
    # a check that the match is right, not only fast: brute force (haversine) for the first 100 candidates
    for i in range(100):
        d_dec, d_ra = np.radians(cat_dec - dec[i]), np.radians(cat_ra - ra[i])
        haversine = np.sin(d_dec / 2) ** 2 + np.cos(np.radians(dec[i])) * np.cos(np.radians(cat_dec)) \
            * np.sin(d_ra / 2) ** 2
        assert rows[i] == np.argmin(haversine), f"candidate {i}: the k-d tree missed its nearest neighbour"
    result = {
        "benchmark": "crossmatch_speed",
        "n_candidates": N_CANDIDATES,
        "n_catalogue": N_CATALOGUE,
        "match_s": [round(s, 3) for s in match_s],
        "match_s_best": round(min(match_s), 3),
        "read_fits_catalogue_s": [round(s, 3) for s in read_s],
        "median_nearest_separation_arcsec": round(float(np.median(separation)), 1),
        "cpu": _processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "astropy": __import__("astropy").__version__,
        "scipy": __import__("scipy").__version__,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
