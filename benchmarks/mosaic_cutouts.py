"""Cutting a catalogue out of a survey mosaic: cutouts per second and memory as the catalogue grows.

The mosaic is 10,000 x 10,000 pixels in three bands, each band four 5,000^2 float32 FITS tiles on one
grid (1.2 GB written to a temporary folder); the catalogue is 10^4 and 10^5 random positions over it
(a FITS table).  Measured, for 64-pixel three-band cutouts read in batches of 256 as scoring reads:

* opening (catalogue read, every position placed on its tiles),
* cutting every row without the session's cache (cutouts/s by wall clock and by CPU time, and the
  anonymous resident memory: the tiles are memory-mapped, so the whole resident size also counts the
  file pages the OS keeps),
* the cache: a first pass that cuts and keeps the chunks, a second that reads them,
* opening a 10^6-row catalogue over the same tiles (placement only; cutting is per row, as above).

    python benchmarks/mosaic_cutouts.py [--rows 100000]

Writes ``benchmarks/results/mosaic_cutouts.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SIDE, TILES_A_SIDE, BANDS, SIZE, BATCH = 10_000, 2, 3, 64, 256
SCALE = 0.1 / 3600  # degrees a pixel


def tile_wcs(column: int, row: int):
    from astropy.wcs import WCS

    side = SIDE // TILES_A_SIDE
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [SIDE / 2 + 0.5 - column * side, SIDE / 2 + 0.5 - row * side]
    wcs.wcs.cdelt = [-SCALE, SCALE]
    return wcs


def write_mosaic(folder: Path) -> list[str]:
    from astropy.io import fits

    rng = np.random.default_rng(0)
    side = SIDE // TILES_A_SIDE
    for band in "gri":
        for row in range(TILES_A_SIDE):
            for column in range(TILES_A_SIDE):
                data = rng.standard_normal((side, side), dtype=np.float32)
                header = tile_wcs(column, row).to_header()
                fits.PrimaryHDU(data, header=header).writeto(folder / f"tile{row}{column}_{band}.fits")
    return [str(folder / f"tile*_{band}.fits") for band in "gri"]


def write_catalogue(path: Path, rows: int, seed: int = 1) -> Path:
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-0.5, SIDE - 0.5, rows), rng.uniform(-0.5, SIDE - 0.5, rows)
    ra, dec = tile_wcs(0, 0).pixel_to_world_values(x, y)
    Table({"id": np.arange(rows), "ra": ra, "dec": dec}).write(path, overwrite=True)
    return path


def anonymous_mb() -> float:
    """This process's resident memory that is not file pages (the memory-mapped tiles are left out)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_pass(collection, rows: int) -> dict:
    """Read the first ``rows`` images in batches as scoring does: wall and CPU seconds, cutouts/s, and the
    largest anonymous resident memory seen after a batch."""
    started, cpu = time.perf_counter(), time.process_time()
    peak = anonymous_mb()
    for start in range(0, rows, BATCH):
        collection.read(np.arange(start, min(start + BATCH, rows)), check=False)
        peak = max(peak, anonymous_mb())
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return {"rows": rows, "seconds": round(seconds, 2), "cutouts_per_s": round(rows / seconds),
            "cpu_seconds": round(cpu_seconds, 2), "cutouts_per_cpu_s": round(rows / cpu_seconds),
            "anon_rss_peak_mb": round(peak)}


def opened(catalogue: Path, bands: list[str], cache: str | None = None):
    from napari_anomalymatch.core.io.mosaic import open_mosaic

    started = time.perf_counter()
    collection = open_mosaic(catalogue, bands, cutout_size=f"{SIZE}px", cache=cache)
    return collection, round(time.perf_counter() - started, 2)


def run(rows: int, folder: Path) -> dict:
    bands = write_mosaic(folder)
    record: dict = {"mosaic": f"{SIDE}x{SIDE} px, {BANDS} bands of {TILES_A_SIDE**2} float32 tiles",
                    "cutout": f"{SIZE}x{SIZE}x{BANDS}", "batch": BATCH, "passes": []}
    for n in sorted({rows // 10, rows}):
        collection, open_s = opened(write_catalogue(folder / f"cat{n}.fits", n), bands)
        record["passes"].append({"open_s": open_s, **timed_pass(collection, n), "cache": "off"})
        collection.close()
    small = rows // 10
    collection, _ = opened(folder / f"cat{small}.fits", bands, cache=str(folder / "cutouts"))
    record["passes"].append({**timed_pass(collection, small), "cache": "first pass (cut, kept)"})
    record["passes"].append({**timed_pass(collection, small), "cache": "second pass (read)"})
    collection.close()
    big = rows * 10
    before = anonymous_mb()
    collection, open_s = opened(write_catalogue(folder / f"cat{big}.fits", big), bands)
    record["open_million"] = {"rows": big, "open_s": open_s, "anon_rss_growth_mb": round(anonymous_mb() - before)}
    return record


def markdown(record: dict) -> str:
    lines = [f"Cutting {record['cutout']} cutouts from a {record['mosaic']} ({record['host']}; load average "
             f"{record['load_average_start']:.1f} at the start, {record['load_average_end']:.1f} at the end, on 2 "
             "cores shared with other jobs, and run at nice 10: wall-clock rates are lower bounds, CPU-time rates "
             "are what one core gives).", "",
             "| rows | cache | open (s) | wall (s) | cutouts/s | CPU (s) | cutouts/CPU-s | anon. RSS peak (MB) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for p in record["passes"]:
        lines.append(f"| {p['rows']:,} | {p['cache']} | {p.get('open_s', '')} | {p['seconds']} | "
                     f"{p['cutouts_per_s']:,} | {p['cpu_seconds']} | {p['cutouts_per_cpu_s']:,} | "
                     f"{p['anon_rss_peak_mb']} |")
    big = record["open_million"]
    lines += ["", f"Opening {big['rows']:,} rows (catalogue read, every position placed on its tiles): "
              f"{big['open_s']} s, anonymous memory grown by {big['anon_rss_growth_mb']} MB. Peak resident size of "
              f"the run: {record['max_rss_mb']} MB (memory-mapped tile pages included)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-") as folder:
        record = run(args.rows, Path(folder))
    record.update(host=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                  load_average_start=load_start, load_average_end=os.getloadavg()[0],
                  max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mosaic_cutouts.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "mosaic_cutouts.md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
