"""A scripted AnomalyMatch session in napari, on real FIRST radio galaxies (offline).

Bent-tailed radio galaxies are the anomalies (5 % of 1,905 images).  The
script opens the plugin on a viewer, loads the images with 10 anomalies and
30 normal images labelled, trains a cycle, steps through the best candidates
as a reviewer would (a simulated expert labels them from the catalogue's
truth), retrains, and measures the ranking on the never-labelled images.

    python examples/scripted_session.py                 # then explore the viewer
    python examples/scripted_session.py --no-show       # just the figures

Needs the demo data package: ``pip install firstgalaxydata==0.2.1``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from napari_anomalymatch import AnomalyMatchApp, open_plugin
from napari_anomalymatch.core.config import NormalisationConfig
from napari_anomalymatch.core.evaluation.demo import write_first_benchmark


def prepare_demo(out: Path) -> tuple[Path, Path, dict[str, bool]]:
    """Extract the FIRST images; return the catalogue, a label file of the initial labels, and the truth."""
    manifest = write_first_benchmark(out / "data")
    labels = out / "data" / "initial-labels.csv"
    truth = {}
    with open(manifest, newline="") as handle, open(labels, "w", newline="") as written:
        writer = csv.writer(written)
        writer.writerow(["id", "label"])
        for row in csv.DictReader(handle):
            truth[row["path"]] = row["is_anomaly"] == "1"
            if row["initial_label"]:
                writer.writerow([row["path"], row["initial_label"]])
    return manifest, labels, truth


def open_demo_session(app: AnomalyMatchApp, out: Path, iterations: int = 60) -> dict[str, bool]:
    """Load the FIRST catalogue into a session (its ids are the catalogue's paths)."""
    manifest, labels, truth = prepare_demo(out)
    app.load(manifest, session_dir=out / "session", labels=labels, image_size=64, iterations=iterations,
             unlabelled_pool_size=2000, normalisation=NormalisationConfig(crop=0.5))  # sources fill the middle
    return truth


def review_top(app: AnomalyMatchApp, truth: dict[str, bool], count: int = 20) -> int:
    """Step through the ``count`` best candidates, labelling each as the truth says; return the hits."""
    app.order("score", "unlabelled")
    app.go_to(1)
    hits = 0
    for _ in range(count):
        candidate = app.current
        is_bent = truth[candidate.image_id]
        hits += is_bent
        print(f"  {candidate.describe()}  -> {'anomaly' if is_bent else 'normal'}")
        app.label("a" if is_bent else "n")  # labels it and moves to the next candidate
    return hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("anomalymatch-scripted"))
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--no-show", action="store_true", help="close the viewer at the end")
    args = parser.parse_args()

    app = open_plugin()
    truth = open_demo_session(app, args.out, args.iterations)
    manifest = args.out / "data" / "manifest.csv"
    for cycle in range(1, args.cycles + 1):
        outcome = app.train_cycle()
        report = app.test_report(manifest)  # is_anomaly is the truth; labelled images are left out
        m = report.metrics
        print(f"cycle {cycle}: scored {outcome.score_result.n_scored} images; AUROC {m['auroc']:.3f}, "
              f"AUPRC {m['auprc']:.3f} on {report.n_evaluated} never-labelled images")
        if cycle < args.cycles:
            print(f"  {review_top(app, truth)} of the top 20 candidates are bent-tailed")
    print(f"ranking: {app.export(args.out / 'ranking.csv')}")
    if args.no_show:
        app.close()
        app.viewer.close()
        return 0
    import napari

    app.order("score", "unlabelled")
    app.go_to(1)
    napari.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
