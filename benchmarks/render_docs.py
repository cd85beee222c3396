"""Rewrite the result tables of the README and docs/ from the files in ``benchmarks/results/``.

Figures in the documentation are never typed by hand: each table sits between
``<!-- results:NAME -->`` and ``<!-- /results -->`` and is rendered here from the result file
it names. Where a benchmark script already renders its own Markdown (``quality.md``,
``ablation.md``, ``feature_ceiling.md``, ``lpft_first.md``) that file is included as it is.

Usage::

    python benchmarks/render_docs.py           # rewrite the blocks of README.md and docs/*.md
    python benchmarks/render_docs.py --check   # exit 1 naming the documents that are out of date
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import fmean

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ablation import TRIALS  # noqa: E402
from quality import summarise  # noqa: E402  (the same means as quality.md's)

ROOT = HERE.parent
RESULTS = HERE / "results"
BLOCK = re.compile(r"(?P<open><!-- results:(?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(?P<close><!-- /results -->)",
                   re.DOTALL)
DATASET_NAMES = {"first": "FIRST radio galaxies", "cifar10": "CIFAR-10", "gz1": "GZ1 colour galaxies"}


def documents(root: Path = ROOT) -> list[Path]:
    """The Markdown files whose result blocks this script owns."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


class Links:
    """Relative links from one document to the result files, so a block renders the same path
    correctly in README.md and in docs/."""

    def __init__(self, document: Path, results: Path) -> None:
        self.document = document
        self.results = results

    def path(self, name: str) -> Path:
        path = self.results / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: result file not found; run the benchmark that writes it "
                                    f"(see benchmarks/*.py) or remove its block from {self.document}")
        return path

    def link(self, name: str) -> str:
        target = os.path.relpath(self.path(name), self.document.parent).replace(os.sep, "/")
        return f"[`{name}`]({target})"

    def json(self, name: str) -> dict:
        return json.loads(self.path(name).read_text())

    def text(self, name: str) -> str:
        return self.path(name).read_text()


# -- the blocks ------------------------------------------------------------------------------


def quality_summary(links: Links) -> str:
    """The README's one table: each dataset's mean over all runs beside the paper's figures."""
    data = links.json("quality.json")
    lines = ["| data | runs | AUROC | AUPRC | precision in the top 1 % |", "|---|---|---|---|---|"]
    shown: set[str] = set()  # a paper figure two datasets stand in for is shown once
    for name, entry in data["datasets"].items():
        s = summarise(entry["runs"])
        lines.append(f"| {DATASET_NAMES.get(name, name)} ({', '.join(entry.get('classes', []))} in turn) "
                     f"| {len(entry['runs'])} | {_pm(s, 'auroc', 3)} | {_pm(s, 'auprc', 3)} "
                     f"| {_pm(s, 'precision_top1pct', 2)} |")
        paper = data.get("paper", {}).get(name)
        if paper and paper["dataset"] not in shown:
            shown.add(paper["dataset"])
            lines.append(f"| paper ({paper['dataset']}) | | {_num(paper['auroc'], 2)} | {_num(paper['auprc'], 2)} "
                         f"| {_num(paper.get('precision_top1pct'), 2)} |")
    return "\n".join(lines) + f"\n\nFrom {links.link('quality.json')}.\n"


def quality(links: Links) -> str:
    """quality.md's table (quality.py renders it), and the options each dataset's runs used."""
    table = [line for line in links.text("quality.md").splitlines() if line.startswith("|")]
    data = links.json("quality.json")
    settings = data["settings"]
    options = [f"* {DATASET_NAMES.get(name, name)}: `{' '.join(opts) or '(none)'}`; "
               f"{_run_settings(data['datasets'][name]['runs'])}; seeds "
               f"{', '.join(map(str, settings.get('seeds', {}).get(name, [])))}; package source "
               f"{', '.join(f'`{code[:7]}`' for code in settings.get('package_code', {}).get(name, []))}"
               for name, opts in settings.get("dataset_options", {}).items()]
    return ("\n".join(table) + f"\n\nProtocol `{' '.join(settings['protocol'])}`; options beyond it, per dataset:\n\n"
            + "\n".join(options) + f"\n\nFrom {links.link('quality.md')} and {links.link('quality.json')}.\n")


CLASSIFIER_RUNS = "quality-classifier.json"  # quality.py -- --head classifier: the paper's network, its own oracle
CLASSIFIER_COLUMN = "classifier (own run)"


def classifier_runs(links: Links) -> dict[tuple[str, str, int], dict]:
    """The classifier head's own protocol runs by (dataset, anomaly, seed); none if never run."""
    if not (links.results / CLASSIFIER_RUNS).exists():
        return {}
    data = links.json(CLASSIFIER_RUNS)
    return {(name, run["anomaly_class"], run["seed"]): run
            for name, entry in data["datasets"].items() for run in entry["runs"]}


def quality_heads(links: Links) -> str:
    """Every head of each quality run after its last cycle, scored on the same labels (the oracle
    followed the default head), with each dataset's mean; beside them the classifier head's own
    run of the same labels (its oracle followed it), where one was made."""
    data = links.json("quality.json")
    runs = [run for entry in data["datasets"].values() for run in entry["runs"]]
    heads = list(dict.fromkeys(h for run in runs for h in run["cycles"][-1].get("head_metrics", {})))
    classifier = classifier_runs(links)
    columns = heads + ([CLASSIFIER_COLUMN] if classifier else [])
    lines = ["| data | anomaly | seed | " + " | ".join(f"{h} AUROC / AUPRC" for h in columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for name, entry in data["datasets"].items():
        scored = [dict(run["cycles"][-1].get("head_metrics", {})) for run in entry["runs"]]
        for run, metrics in zip(entry["runs"], scored):
            own = classifier.get((name, run["anomaly_class"], run["seed"]))
            if own is not None:
                metrics[CLASSIFIER_COLUMN] = {"auroc": own["auroc"], "auprc": own["auprc"]}
            lines.append(f"| {DATASET_NAMES.get(name, name)} | {run['anomaly_class']} | {run['seed']} | "
                         + " | ".join(_head_cell([metrics.get(h)]) for h in columns) + " |")
        lines.append(f"| {DATASET_NAMES.get(name, name)} | **mean** | | "
                     + " | ".join(_head_cell([m.get(h) for m in scored]) for h in columns) + " |")
    sources = links.link("quality.json") + (f" and {links.link(CLASSIFIER_RUNS)}" if classifier else "")
    return "\n".join(lines) + f"\n\nFrom {sources}.\n"


def quality_cycles(links: Links) -> str:
    """Each head's mean AUROC / AUPRC on the fixed test split after every cycle, per dataset: the
    same images every cycle, which the oracle never labels (runs from before the split are left out)."""
    data = links.json("quality.json")
    lines = ["| data | head | runs | " + " | ".join(f"cycle {c} AUROC / AUPRC" for c in (1, 2, 3)) + " |",
             "|---|---|---|---|---|---|"]
    own = {}
    for (name, _, _), run in classifier_runs(links).items():
        own.setdefault(name, []).append(run)
    for name, entry in data["datasets"].items():
        runs = [run for run in entry["runs"] if run["cycles"][0].get("test_head_metrics")]
        heads = list(dict.fromkeys(h for run in runs for h in run["cycles"][-1]["test_head_metrics"]))
        rows = [(head, head, runs) for head in heads]
        if own.get(name):  # its runs' classes and seeds, which may be fewer than the default's
            which = ", ".join(f"{run['anomaly_class']} {run['seed']}" for run in own[name])
            rows.append((f"{CLASSIFIER_COLUMN}: {which}", "classifier", own[name]))
        for label, head, chosen in rows:
            cells = [_head_cell([run["cycles"][c]["test_head_metrics"].get(head) if c < len(run["cycles"]) else None
                                 for run in chosen]) for c in range(3)]
            lines.append(f"| {DATASET_NAMES.get(name, name)} | {label} | {len(chosen)} | " + " | ".join(cells) + " |")
    sources = links.link("quality.json") + (f" and {links.link(CLASSIFIER_RUNS)}" if own else "")
    return "\n".join(lines) + f"\n\nFrom {sources}.\n"


def _head_cell(metrics: list[dict | None]) -> str:
    if any(m is None for m in metrics) or not metrics:
        return "–"
    return " / ".join(f"{fmean(m[key] for m in metrics):.3f}" for key in ("auroc", "auprc"))


def included(name: str) -> Callable[[Links], str]:
    """A block that is a benchmark's own Markdown, included whole."""

    def render(links: Links) -> str:
        return links.text(name).rstrip("\n") + f"\n\nFrom {links.link(name)}.\n"

    return render


def ablation_not_run(links: Links) -> str:
    """The trials ``ablation.py`` defines that ``ablation.json`` has no run of, per dataset."""
    records = links.json("ablation.json")["records"]
    runs = {(r["dataset"], r["trial"]) for r in records}
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    lines = [f"* {DATASET_NAMES.get(d, d)}: "
             + (", ".join(f"`{t}`" for t in TRIALS if (d, t) not in runs) or "none") for d in datasets]
    return ("Trials in `benchmarks/ablation.py` without a run in "
            f"{links.link('ablation.json')} yet:\n\n" + "\n".join(lines) + "\n")


def speed(links: Links) -> str:
    data = links.json("speed.json")
    machine = data.get("machine", {})
    parts = [f"On {machine.get('cpus', '?')} CPU threads (Python {machine.get('python', '?')}); "
             "whole pipeline: read, decode, normalise, resize, model."]
    if data.get("training"):
        rows = [f"| {e['size']} px | {e.get('head', 'classifier')} | {e['seconds_per_iteration']:.2f} "
                f"| {e['images_per_iteration']} | {e['peak_rss_mb']:.0f} |" for e in data["training"]]
        parts.append("| training | network trained | s per iteration | images per iteration | peak MB |\n"
                     "|---|---|---|---|---|\n" + "\n".join(rows))
    if data.get("scoring"):
        parts.append(_pivot(data["scoring"], "format", "scoring, images/s"))
    for section, key in (("heads", "head"), ("probe_features", "head"), ("paths", "path")):
        if data.get(section):
            parts.append(_pivot(data[section], key, f"scoring uint8 HDF5 by {section.replace('_', ' ')}, images/s"))
            if any("images_per_cpu_second" in e for e in data[section]):
                parts.append(_pivot(data[section], key, "the same per CPU-second (other jobs barely change it)",
                                    "images_per_cpu_second"))
            host = data.get("machines", {}).get(section)
            if host:
                parts[-1] += f"\n\nMeasured on {_host(host)}."
    if data.get("memory"):
        rows = [f"| {e['n_images']:,} | {e['images_per_second']:.0f} | {e['peak_rss_mb']:.0f} |"
                for e in data["memory"]]
        parts.append("| scoring uint8 HDF5 at 64 px, images | images/s | peak MB |\n|---|---|---|\n" + "\n".join(rows))
    if data.get("agreement"):
        parts.append(_records(data["agreement"], "reduced precision against float32 (allowed: meets the rule)"))
    parts.extend(_int8(data))
    return "\n\n".join(parts) + f"\n\nFrom {links.link('speed.json')}.\n"


def _int8(data: dict) -> list[str]:
    """The int8 measurement: the network alone on images in memory, paths timed in turns in one process."""
    parts = []
    if data.get("int8_paths"):
        entries = data["int8_paths"]
        parts.append(_pivot(entries, "path", "the network alone, images in memory, images/s"))
        parts.append(_pivot(entries, "path", "the same per CPU-second", "images_per_cpu_second"))
        parts.append(_pivot(entries, "path", "seconds to build the path (quantize, compile)", "build_seconds"))
        host = data.get("machines", {}).get("int8_paths")
        if host:
            parts[-1] += f"\n\nMeasured on {_host(host)}."
    if data.get("int8_agreement"):
        parts.append(_records(data["int8_agreement"], "int8 against float32 (allowed: meets the rule)"))
    return parts


def _host(machine: dict) -> str:
    flags = ", ".join(machine.get("cpu_flags", [])) or "no bf16 flags"
    load = machine.get("load_average")
    busy = f", load average {load[0]:.1f} at the start" if load else ""
    return f"{machine.get('processor', '?')} ({flags}), {machine.get('cpus', '?')} threads{busy}"


def scale(links: Links) -> str:
    data = links.json("scale.json")
    backends = list(dict.fromkeys(run["backend"] for run in data["runs"]))
    sizes = sorted({run["n_images"] for run in data["runs"]})
    cells = {(run["n_images"], run["backend"]): run for run in data["runs"]}
    lines = ["| images | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
    for n in sizes:
        row = [_scale_cell(cells.get((n, backend))) for backend in backends]
        lines.append(f"| {n:,} | " + " | ".join(row) + " |")
    return (data.get("description", "") + "\n\n" + "\n".join(lines)
            + f"\n\nFrom {links.link('scale.json')}.\n")


def review_latency(links: Links) -> str:
    data = links.json("review_latency.json")
    tail = "p95_ms" if "p95_ms" in data["results"][0]["paced"] else "p90_ms"  # older files give p90
    lines = [f"| cutout | action | median ms | {tail.split('_')[0]} ms | max ms |", "|---|---|---|---|---|"]
    actions = (("paced", f"→, every {data.get('pace_seconds', '?')} s"), ("burst", "→ held down"),
               ("page_down", "PageDown"), ("go_to_rank", "go to rank"))
    for entry in data["results"]:
        for action, label in actions:
            if action in entry:
                t = entry[action]
                lines.append(f"| {entry['image_size']} px | {label} | {t['median_ms']:.1f} | {t[tail]:.1f} "
                             f"| {t['max_ms']:.1f} |")
    text = (f"From a key press to the next candidate drawn (target: median under {data['target_median_ms']} ms; "
            f"napari {data.get('napari', '?')}, {data.get('machine', '?')}):\n\n" + "\n".join(lines))
    cycles = [(e["image_size"], e["training_cycle"]) for e in data["results"] if "training_cycle" in e]
    if cycles:
        rows = [f"| {size} px | {c['run_seconds']:.0f} | {c['median_gap_ms']:.1f} | {c['p95_gap_ms']:.1f} "
                f"| {c['max_gap_ms']:.1f} |" for size, c in cycles]
        text += (f"\n\nWhile a training cycle and scoring run in the worker, the gaps between the ticks of a "
                 f"{cycles[0][1]['timer_ms']} ms timer (target: the longest under "
                 f"{data.get('target_max_gap_ms', '?')} ms):\n\n"
                 "| cutout | cycle s | median gap ms | p95 gap ms | max gap ms |\n|---|---|---|---|---|\n"
                 + "\n".join(rows))
    if "load_average" in data:
        load = data["load_average"]
        text += (f"\n\nLoad average (1, 5, 15 min) before: {_loads(load['before'])}; "
                 f"after: {_loads(load['after'])}.")
    return text + f"\n\nFrom {links.link('review_latency.json')}.\n"


def _loads(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def saliency(links: Links) -> str:
    data = links.json("saliency_speed.json")
    lines = ["| method | torch threads | median ms | p95 ms | candidates | peak on the blob "
             "| median peak distance px |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['torch_threads']} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} "
              f"| {r['n_candidates']} | {r['found_fraction']:.0%} | {r['median_peak_distance_px']:.1f} |"
              for r in data["results"]]
    load = data["load_average"]
    return (f"Saliency map of one candidate at {data['image_size']} px, `{data['head']}` head, read to map "
            f"(target: median under {data['target_median_ms']} ms; {data['machine']}; load average before "
            f"{_loads(load['before'])}, after {_loads(load['after'])}). \"Peak on the blob\": the map's "
            f"maximum within {2 * data['blob_sigma_px']:.0f} px (two blob sigmas) of the inserted blob's "
            f"centre.\n\n" + "\n".join(lines) + f"\n\nFrom {links.link('saliency_speed.json')}.\n")


def reader_open(links: Links) -> str:
    d = links.json("reader_open.json")
    shape = "×".join(map(str, d["image_shape"]))
    return ("| images | image | reader and layer data, s | `viewer.open` until drawn, s | target, s |\n"
            "|---|---|---|---|---|\n"
            f"| {d['n_images']:,} | {shape} | {d['get_reader_and_layer_data_s']:.2f} "
            f"| {d['viewer_open_until_drawn_s']:.2f} | {d['target_s']:.1f} |\n\n"
            f"From {links.link('reader_open.json')}.\n")


def crossmatch_speed(links: Links) -> str:
    d = links.json("crossmatch_speed.json")
    return ("| candidates | catalogue rows | match, s (best of 3) | reading the FITS catalogue, s | CPU |\n"
            "|---|---|---|---|---|\n"
            f"| {d['n_candidates']:,} | {d['n_catalogue']:,} | {d['match_s_best']:.2f} "
            f"| {min(d['read_fits_catalogue_s']):.2f} | {d['cpu']}, {d['cpu_count']} cores |\n\n"
            f"From {links.link('crossmatch_speed.json')}.\n")


def similarity(links: Links) -> str:
    d = links.json("similarity.json")
    parts = []
    if d.get("index"):
        machine = d["machines"]["index"]
        rows = [f"| {r['n_embeddings']:,} | {r['library']} | {_num(r['build_s'], 1)} | {_num(r['query_ms'], 1)} "
                f"| {_num(r['recall_at_100'], 3)} | {r.get('load_average', machine['load_average'][0]):.1f} "
                f"| {r.get('note', '')} |" for r in d["index"]]
        parts.append("| embeddings | search | build, s | query, ms (median) | recall@100 | load average | note |\n"
                     "|---|---|---|---|---|---|---|\n" + "\n".join(rows)
                     + f"\n\nMeasured on {_host({**machine, 'load_average': None})}; the load average is "
                       "the machine's at the start of each size's run (2 cores: above 2, other work shared them).")
    if d.get("embeddings"):
        rows = [f"| {'yes' if r['embeddings'] else 'no'} | {r['n_images']:,} | {r['images_per_second']:.0f} "
                f"| {r['embedding_bytes_per_image']:.0f} | {r['peak_rss_mb']:.0f} |" for r in d["embeddings"]]
        parts.append(f"| scoring uint8 HDF5 at {d['embeddings'][0]['size']} px, embeddings stored | images "
                     "| images/s | bytes per image | peak MB |\n|---|---|---|---|---|\n" + "\n".join(rows)
                     + f"\n\nMeasured on {_host(d['machines']['embeddings'])}.")
    return "\n\n".join(parts) + f"\n\nFrom {links.link('similarity.json')}.\n"


def embedding_map(links: Links) -> str:
    """How long the embedding map's layout takes (``embedding_map.py``)."""
    d = links.json("embedding_map.json")
    host = d["host"]
    return (f"| images | dimensions | PCA components | seconds | CPU seconds | neighbour purity |\n"
            f"|---|---|---|---|---|---|\n| {d['points']:,} | {d['dimensions']} | {d['pca_components']} "
            f"| {d['seconds']:.1f} | {d['cpu_seconds']:.1f} | {d['neighbour_purity']:.3f} |\n\n"
            f"Measured on {host['cpu']}, {host['cores']} cores, load average {host['load_average']:.1f}. "
            f"From {links.link('embedding_map.json')}.\n")


def _collections(found: dict) -> str:
    count = found.get("collections_embedded", 1)
    return f"{count} collections of " if count > 1 else ""


def zero_label(links: Links) -> str:
    """Each benchmark class's zero-label ranking (``zero_label.py``), per novelty method."""
    data = links.json("zero_label.json")
    lines = ["| dataset | anomaly class | method | AUROC | AUPRC | top-1% precision | anomalies in top 50 |",
             "|---|---|---|---|---|---|---|"]
    for dataset, found in data["datasets"].items():
        for cls, methods in found["classes"].items():
            for method, m in methods.items():
                lines.append(f"| {DATASET_NAMES.get(dataset, dataset)} | {cls} | {method} | {m['auroc']:.3f} "
                             f"| {m['auprc']:.3f} | {m['precision_top1pct']:.2f} | {m['anomalies_in_top50']} |")
    seconds = "; ".join(f"{DATASET_NAMES.get(d, d)} {_collections(f)}{f['n_images']:,} images in "
                        f"{f['seconds_to_embed_and_score']:.0f} s on {_zero_label_host(f['host'])}"
                        for d, f in data["datasets"].items())
    missing = [DATASET_NAMES[d] for d in DATASET_NAMES if d not in data["datasets"]]
    if missing:
        lines.append(f"\nNot measured yet: {', '.join(missing)} (`zero_label.py --datasets ...`).")
    return ("\n".join(lines) + f"\n\nEmbedding and scoring (both methods): {seconds}. "
            f"From {links.link('zero_label.json')}.\n")


def _zero_label_host(host: dict) -> str:
    return f"{host['cpu']} ({host['threads']} threads, torch {host['torch']})"


def large_image(links: Links) -> str:
    """Peak memory of init and scoring on one large FITS image (``large_image.py``), per run."""
    data = links.json("large_image.json")
    lines = ["| run | image | file | init: growth | × file | scoring: growth | × file |",
             "|---|---|---|---|---|---|---|"]
    for label, run in data["runs"].items():
        init, score = run["init"], run["score"]
        lines.append(f"| {label.rsplit(' ', 1)[0]} | {run['side']:,}² float32 | {run['file_mb']:,.0f} MB "
                     f"| {init['above_baseline_mb']:,.0f} MB | {init['times_file_size']:.2f} "
                     f"| {score['above_baseline_mb']:,.0f} MB | {score['times_file_size']:.2f} |")
    hosts = sorted({run["host"]["cpu"] for run in data["runs"].values()})
    return ("\n".join(lines) + f"\n\nTarget: at most {data['target_times_file_size']:g}× the file. "
            f"On {', '.join(hosts)}; from {links.link('large_image.json')}.\n")


FAULT_OUTCOMES = ("works", "clear error", "unclear error", "traceback", "silent wrong result", "unexpected error")


def faults(links: Links) -> str:
    data = links.json("faults.json")
    lines = ["| outcome | cases |", "|---|---|"]
    lines += [f"| {outcome} | {data[outcome]} |" for outcome in FAULT_OUTCOMES if outcome in data]
    lines.append(f"| **tried** | {data['cases_tried']} |")
    return "\n".join(lines) + f"\n\nEach case, with what it printed, in {links.link('faults.json')}.\n"


BLOCKS: dict[str, Callable[[Links], str]] = {
    "quality-summary": quality_summary,
    "quality": quality,
    "quality-heads": quality_heads,
    "quality-cycles": quality_cycles,
    "ablation": included("ablation.md"),
    "ablation-not-run": ablation_not_run,
    "feature-ceiling": included("feature_ceiling.md"),
    "sky-ceiling": included("sky_ceiling.md"),
    "frozen-space": included("frozen_space.md"),
    "framing": included("framing.md"),
    "replay-variants": included("replay_variants.md"),
    "lpft": included("lpft_first.md"),
    "speed": speed,
    "scale": scale,
    "review-latency": review_latency,
    "saliency": saliency,
    "reader-open": reader_open,
    "large-image": large_image,
    "mosaic-cutouts": included("mosaic_cutouts.md"),
    "crossmatch-speed": crossmatch_speed,
    "similarity": similarity,
    "faults": faults,
    "zero-label": zero_label,
    "remaining": included("remaining.md"),
    "remaining-replay": included("remaining_replay.md"),
    "embedding-map": embedding_map,
}


# -- helpers ---------------------------------------------------------------------------------


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pm(summary: dict, key: str, digits: int) -> str:
    return f"{summary[key + '_mean']:.{digits}f} ± {summary[key + '_std']:.{digits}f}"


def _pivot(entries: list[dict], key: str, title: str, value: str = "images_per_second") -> str:
    """Images/s (or another ``value``) with one row per ``key`` and one column per image size."""
    sizes = sorted({e["size"] for e in entries})
    cells = {(e[key], e["size"]): e[value] for e in entries if value in e}
    names = list(dict.fromkeys(e[key] for e in entries))
    lines = [f"| {title} | " + " | ".join(f"{s} px" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for name in names:
        row = [f"{cells[(name, s)]:.0f}" if (name, s) in cells else "–" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _records(entries: list[dict], title: str) -> str:
    """A table of flat records whose keys this script does not know in advance."""
    keys = list(dict.fromkeys(k for e in entries for k, v in e.items() if not isinstance(v, dict | list)))
    lines = [f"{title}:", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for e in entries:
        lines.append("| " + " | ".join(_cell(e.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def _run_settings(runs: list[dict]) -> str:
    """The score head and the oracle's review order the runs recorded (several if they differ)."""
    def values(get) -> str:
        found = list(dict.fromkeys(str(get(run.get("settings", {}))) for run in runs))
        return " / ".join(f"`{value}`" for value in found)

    return (f"score head {values(lambda s: s.get('train', {}).get('head'))}, oracle order "
            f"{values(lambda s: s.get('oracle', {}).get('order'))}")


def _scale_cell(run: dict | None) -> str:
    if run is None:
        return "not run"
    return f"{run['images_per_second']:.0f} images/s, {run['seconds']:.0f} s, peak {run['peak_rss_mb'] / 1000:.1f} GB"


# -- rendering -------------------------------------------------------------------------------


def render(text: str, document: Path, results: Path = RESULTS) -> str:
    """``text`` with every result block rendered afresh from ``results``."""
    links = Links(document, results)

    def block(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"{document}: unknown result block {name!r}; known: {sorted(BLOCKS)}")
        return match["open"] + BLOCKS[name](links) + match["close"]

    return BLOCK.sub(block, text)


def stale(paths: list[Path], results: Path = RESULTS) -> list[Path]:
    """The documents whose blocks differ from what ``results`` renders."""
    return [path for path in paths if render(path.read_text(), path, results) != path.read_text()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a document is out of date")
    args = parser.parse_args(argv)
    paths = documents()
    if args.check:
        out_of_date = stale(paths)
        for path in out_of_date:
            print(f"{path}: out of date with benchmarks/results/; run python benchmarks/render_docs.py")
        return 1 if out_of_date else 0
    for path in paths:
        text = path.read_text()
        rendered = render(text, path)
        if rendered != text:
            path.write_text(rendered)
            print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
