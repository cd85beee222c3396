"""The ``anomalymatch`` command line: argparse -> config -> core generators + tqdm.

Sub-commands: ``demo``, ``init``, ``label``, ``train``, ``score``, ``export``, ``similar``, ``map``,
``crossmatch``, ``samp``, ``tag``, ``explain``, ``evaluate``, ``info``, ``relocate``.  Errors the user
can fix are printed as one line (exit status 2); Ctrl-C during training keeps the iterations done.
The engine's modules that load torch are imported by the commands that use them (``# deferred:
torch``), so ``--help`` and a mistyped argument answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .core.atomic import disk_error
from .core.config import (
    AUTO,
    COMPILE_MODES,
    DEFAULT_NOVELTY_METHOD,
    DEVICES,
    FILTERS,
    NORMALISATIONS,
    NOVELTY_METHODS,
    ORACLE_ORDER,
    ORACLE_TEST_FRACTION,
    PRECISIONS,
    PROBE_FEATURES,
    PROBE_LAYERS,
    PROBE_MORPHOLOGY,
    PROBE_VIEWS,
    SALIENCY_METHODS,
    WEAK_PASSES,
    SessionConfig,
    setting_names,
)
from .core.discovery.embedding_map import MAP_SAMPLE
from .core.discovery.map_figure import COLOUR_BY, map_colouring, render_map
from .core.errors import AnomalyMatchError, ConfigError, DiskFullError
from .core.evaluation.demo import ANOMALY_CLASS as DEMO_ANOMALY_CLASS
from .core.evaluation.demo import CLASSES as DEMO_CLASSES
from .core.evaluation.demo import write_first_benchmark
from .core.heads import head_names
from .core.io.detect import DetectConfig, mosaic_data
from .core.io.options import READER_OPTIONS
from .core.io.registry import find_reader
from .core.review.crossmatch import DEFAULT_RADIUS, crossmatch_session
from .core.review.discovery import STOP_PER_IMAGES, discovery_curve, session_estimate, stop_suggestion
from .core.runs import run_to_end
from .core.scoring.orders import order_names
from .core.transforms import Normaliser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 1
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _one_line_warning(args.command)
        return _run_command(args)


def _one_line_warning(command: str) -> Callable[..., None]:
    """Show a warning as one line naming the command, like an error (no file and line of the code)."""
    def show(message: Warning | str, category: type[Warning], *where: Any, **kwargs: Any) -> None:
        print(f"anomalymatch {command}: warning: {message}", file=sys.stderr)
    return show


def _run_command(args: argparse.Namespace) -> int:
    try:
        return int(args.run(args) or 0)
    except AnomalyMatchError as err:
        print(f"anomalymatch {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a write the disk or the folder refused, outside the engine's own writes
        named = disk_error(err, Path(err.filename or "."))
        if named is None:
            raise
        print(f"anomalymatch {args.command}: error: {named}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"anomalymatch {args.command}: interrupted; {_what_was_kept(args)}", file=sys.stderr)
        return 130


def _what_was_kept(args: argparse.Namespace) -> str:
    """What is on disk after Ctrl-C, read back from the session folder (never assumed)."""
    # deferred: torch
    from .core.session import saved_state

    session = getattr(args, "session", None)
    if session is None:
        return "nothing of this run was kept"
    return saved_state(session)


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {value}")
    return value


def _skip_bad_option(parser: Any) -> None:
    parser.add_argument("--skip-bad", action="store_true", default=None,
                        help="warn about and skip unreadable images and unknown ids instead of stopping "
                             "(kept in the session's settings)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomalymatch",
        description="Find rare objects in large image collections from a handful of labels "
                    "(FixMatch semi-supervised active learning, as in AnomalyMatch).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(commands)
    _add_init(commands)
    _add_label(commands)
    _add_tag(commands)
    _add_train(commands)
    _add_score(commands)
    _add_export(commands)
    _add_similar(commands)
    _add_map(commands)
    _add_crossmatch(commands)
    _add_samp(commands)
    _add_explain(commands)
    _add_evaluate(commands)
    _add_info(commands)
    _add_relocate(commands)
    return parser


# -- shared options ----------------------------------------------------------------------


# Every option whose dest is a setting's flat name (see SessionConfig.with_settings) sets that setting;
# their defaults are None ("not given": a session keeps its own), so the help shows the config's defaults.
DEFAULTS = SessionConfig()


def _model_options(parser: argparse.ArgumentParser) -> None:
    model, train = DEFAULTS.model, DEFAULTS.train
    group = parser.add_argument_group("model and training")
    group.add_argument("--size", type=int, default=None, help=f"model input size in pixels ({model.image_size})")
    group.add_argument("--model", default=None, help=f"timm model name ({model.name})")
    group.add_argument("--iterations", type=int, default=None, help=f"iterations per cycle ({train.iterations})")
    group.add_argument("--batch-size", type=int, default=None,
                       help=f"labelled images per iteration ({train.batch_size})")
    group.add_argument("--unlabelled-ratio", type=int, default=None,
                       help=f"unlabelled images per labelled image in a batch ({train.unlabelled_ratio})")
    group.add_argument("--pool-size", type=int, default=None,
                       help=f"unlabelled images drawn per cycle for training ({train.unlabelled_pool_size})")
    group.add_argument("--threshold", type=float, default=None,
                       help=f"pseudo-label confidence ({train.confidence_threshold})")
    group.add_argument("--lr", type=float, default=None, help=f"learning rate ({train.learning_rate})")
    group.add_argument("--seed", type=int, default=None, help=f"random seed ({train.seed})")
    group.add_argument("--device", default=None, choices=DEVICES)
    group.add_argument("--head", default=None, choices=head_names(),
                       help="what scores: lpft, FixMatch training of a head that starts as the "
                            "linear probe (the default); lpft+probe, it and the probe averaged; probe, "
                            "the linear probe alone; classifier, the fine-tuned FixMatch classifier "
                            "(the paper's score); ensemble, classifier and probe averaged")
    group.add_argument("--probe-features", default=None, choices=PROBE_FEATURES,
                       help="the probe's embedding: a frozen copy of the pretrained network (the "
                            "default; with --head ensemble a second forward pass per image) or the "
                            "fine-tuned model's")
    group.add_argument("--probe-size", type=int, default=None,
                       help="pixels the frozen network sees (images are enlarged; 0: the model's size)")
    group.add_argument("--probe-layers", default=None, choices=PROBE_LAYERS,
                       help="what the frozen network gives the probe: its last three stages' and "
                            "its head's pooled features (pyramid, the default) or the head's alone")
    group.add_argument("--probe-views", default=None, choices=PROBE_VIEWS,
                       help="views of each labelled image the probe is fitted on: the 8 flips and "
                            "quarter turns (the default, for sky images), the image and its mirror "
                            "(flip, for natural images, which have an up), or the image alone")
    group.add_argument("--probe-morphology", default=None, choices=PROBE_MORPHOLOGY,
                       help="add morphology statistics (light radii, Gini, M20, asymmetry ...) to "
                            "what the probe reads: auto (single-band images only, the default), on, off")
    group.add_argument("--probe-centre", default=None, action=argparse.BooleanOptionalAction,
                       help="centre embeddings on the unlabelled images' mean before the probe reads "
                            "them (on by default)")
    group.add_argument("--probe-c", type=float, default=None,
                       help=f"the probe's inverse L2 regularisation strength ({DEFAULTS.probe.regularisation})")
    group.add_argument("--weak-pass", default=None, choices=WEAK_PASSES,
                       help="weak views in the training batch (joint) or in a cheaper separate pass "
                            f"({train.weak_pass})")
    group.add_argument("--backbone-lr-scale", type=float, default=None,
                       help="backbone learning rate as a fraction of --lr (1.0 for the classifier; "
                            "0, a frozen backbone, for the lpft heads)")
    group.add_argument("--head-lr-scale", type=float, default=None,
                       help="head learning rate as a multiple of --lr (1.0 for the classifier; 30 for "
                            "the lpft heads, whose head reads unit-length features)")


def _score_options(parser: argparse.ArgumentParser) -> None:
    score = DEFAULTS.score
    group = parser.add_argument_group("scoring")
    group.add_argument("--score-batch-size", type=int, default=None, help=f"images per batch ({score.batch_size})")
    group.add_argument("--workers", type=int, default=None,
                       help="loader processes (-1: automatic)")
    group.add_argument("--precision", default=None, choices=PRECISIONS,
                       help="auto (the fastest measured here that ranks as float32 does), float32, "
                            "bfloat16, bfloat16-mixed (bf16 after the network's first two stages, "
                            "which stay float32), float16")
    group.add_argument("--tta", default=None, action=argparse.BooleanOptionalAction,
                       help="score each image as the mean of its 8 flips/quarter turns (8x the scoring "
                            "time; the sky has no up)")
    group.add_argument("--part-size", type=int, default=None,
                       help=f"images per part file, the unit of resuming ({score.part_size}; shards are never mixed)")
    group.add_argument("--compile", default=None, choices=COMPILE_MODES,
                       help="inference graph: auto (the fastest measured here that ranks as float32 "
                            "does), none (eager), fused (eager, batch norms folded into the convolutions), "
                            "inductor (torch.compile), torchscript (deprecated)")


def _data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--reader", default=None, help=f"reader name ({DEFAULTS.data.reader})")
    _reader_options(group, READER_OPTIONS)
    group.add_argument("--normalisation", default=None, choices=NORMALISATIONS)
    _crop_option(group)
    _skip_bad_option(group)


def _reader_options(group: Any, options: Any) -> None:
    """An argument per reader option (``core.io.options.READER_OPTIONS``), named and explained by its row."""
    for option in options:
        group.add_argument(f"--{option.name.replace('_', '-')}", dest=option.name, type=option.parse, default=None,
                           help=option.help, action="extend" if option.repeated else "store")


def _wait_option(parser: Any) -> None:
    parser.add_argument("--wait", action="store_true",
                        help="when another process is changing the session (training, scoring, importing "
                             "labels), wait until it ends instead of stopping")


def _writer(session: Any, args: argparse.Namespace) -> Any:
    """The session's write lock for this command (``Session.writing``), waiting if ``--wait``."""
    def say_waiting(holder: Any) -> None:
        who = holder.describe() if holder is not None else "another process"
        print(f"anomalymatch {args.command}: waiting for {who} to finish with {session.path}",
              file=sys.stderr)

    return session.writing(f"anomalymatch {args.command}", wait=args.wait, on_wait=say_waiting)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by their flat names (``SessionConfig.with_settings``)."""
    given = {name: value for name, value in vars(args).items() if name in SETTING_NAMES and value is not None}
    if getattr(args, "skip_bad", None):
        given["on_error"] = "skip"
    return given


def _apply_options(config: SessionConfig, args: argparse.Namespace) -> SessionConfig:
    """``config`` with the settings given on the command line."""
    return config.with_settings(**_settings(args))


SETTING_NAMES = frozenset(setting_names())


def _crop_option(parser: Any) -> None:
    parser.add_argument("--crop", type=_parse_crop, default=None, metavar="FRACTION",
                        help="keep the central FRACTION of each side of every image (1.0: all), "
                             "for cutouts whose sources fill only their middle; 'auto' (the "
                             "default): chosen from where the images' light lies")


def _parse_crop(text: str) -> float | str:
    if text == AUTO:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a fraction such as 0.5; got {text!r}") from None


def _progress_bar(total: int, description: str, unit: str = "it"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True, leave=True,
                disable=None)


def _drive(events, on_event: Callable[[Any], None] | None = None) -> Any:
    """Show loading, training and scoring progress bars while an engine generator runs; return its value.

    The unsupervised ranking first embeds its reference sample (``EmbedProgress``).
    """
    # deferred: torch
    from .core.learning.progress import TrainProgress
    from .core.loading import LoadProgress
    from .core.scoring.novelty import EmbedProgress
    from .core.scoring.run import ScoreBatch

    bars: dict[str, Any] = {}

    def show(event: Any) -> None:
        if isinstance(event, (LoadProgress, EmbedProgress)):
            key, what = ("load", "loading images") if isinstance(event, LoadProgress) else (
                "embed", "embedding the reference sample")
            bar = bars.get(key) or bars.setdefault(key, _progress_bar(event.n_total, what, "img"))
            bar.update(event.n_done - bar.n)
        elif isinstance(event, TrainProgress):
            _show_iteration(bars, event)
        elif isinstance(event, ScoreBatch):
            if "score" not in bars:
                bars["score"] = _progress_bar(event.n_total, "scoring", "img")
                bars["score"].update(event.n_done - len(event.indices))  # a resumed run starts part-way
            bars["score"].set_postfix(img_per_s=f"{event.images_per_second:.0f}", refresh=False)
            bars["score"].update(len(event.indices))
        if on_event is not None:
            on_event(event)

    try:
        return run_to_end(events, show)
    finally:
        for bar in bars.values():
            bar.close()


def _show_iteration(bars: dict[str, Any], event: Any) -> None:
    key = f"train{event.cycle}"
    bar = bars.get(key) or bars.setdefault(key, _progress_bar(event.iterations, f"cycle {event.cycle}"))
    bar.set_postfix(loss=f"{event.loss:.3f}", mask=f"{event.mask_ratio:.2f}",
                    s_per_it=f"{event.seconds_per_iteration:.2f}", refresh=False)
    bar.update(1)
    if event.iteration == event.iterations:
        bar.close()
        bars.pop("load", None)


# -- demo ------------------------------------------------------------------------------------


def _add_demo(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="find bent-tailed radio galaxies among real FIRST images (offline)",
        description="Run AnomalyMatch on 1,905 real FIRST radio galaxies (package firstgalaxydata): "
                    "bent-tailed galaxies are the anomalies (5 %%); start from 10 labelled "
                    "anomalies and 30 normal images; three cycles with a simulated expert. "
                    "Writes ranking.csv, gallery.png and metrics.json.")
    parser.add_argument("--out", type=Path, default=Path("anomalymatch-demo"),
                        help="output folder (anomalymatch-demo)")
    parser.add_argument("--cycles", type=_positive_int, default=3)
    parser.add_argument("--anomaly-class", default=DEMO_ANOMALY_CLASS, choices=DEMO_CLASSES)
    _crop_option(parser)
    _model_options(parser)
    _score_options(parser)
    parser.set_defaults(run=_run_demo, tta=True)  # radio sources have no up: score all 8 views


def _run_demo(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.evaluation.manifest import read_benchmark

    seed = args.seed if args.seed is not None else 0
    manifest = write_first_benchmark(args.out, anomaly_class=args.anomaly_class, seed=seed)
    print(f"demo data: {manifest}")
    benchmark = read_benchmark(manifest)
    config = _apply_options(SessionConfig(), args)
    result = _run_and_report(benchmark, config, args.cycles, args.out)
    print(f"ranking: {args.out / 'ranking.csv'}\ngallery: {args.out / 'gallery.png'}")
    return 0 if result is not None else 1


def _run_and_report(benchmark: Any, config: Any, cycles: int, out: Path | None,
                    compare_heads: bool = False, oracle: Any = None) -> Any:
    # deferred: torch
    from .core.evaluation.protocol import CycleReport, OracleSettings, run_protocol
    from .core.evaluation.report import write_evaluation_report

    def report(event: Any) -> None:
        if isinstance(event, CycleReport):
            m = event.metrics
            print(f"cycle {event.cycle}: AUROC {m['auroc']:.3f}  AUPRC {m['auprc']:.3f}  "
                  f"top-1% precision {m['precision_top1pct']:.2f}  "
                  f"anomalies in top 50: {m['anomalies_in_top50']}  "
                  f"({event.n_labelled_anomalies} anomalies, {event.n_labelled_normal} normal labelled)")
            if event.test_metrics:
                t = event.test_metrics
                print(f"  fixed test split ({t['n_scored']} images, {t['n_anomalies']} anomalies): "
                      f"AUROC {t['auroc']:.3f}  AUPRC {t['auprc']:.3f}")
            if event.oracle_reviewed:
                print(f"  the oracle reviewed {event.oracle_reviewed} images to label its next ones")

    protocol = run_protocol(benchmark, config, cycles, oracle or OracleSettings(), compare_heads=compare_heads)
    result = _drive(protocol, report)
    m = result.metrics
    print(f"final ranking of {m['n_scored']} never-labelled images ({m['n_anomalies']} anomalies): "
          f"AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}, "
          f"top-1% precision {m['precision_top1pct']:.2f}")
    if out is not None:
        normaliser = Normaliser(result.config.data.normalisation, benchmark.collection.value_range)
        write_evaluation_report(result, out, normaliser)
    return result


# -- sessions --------------------------------------------------------------------------------


def _add_init(commands: Any) -> None:
    parser = commands.add_parser("init", help="create a session folder for a data source",
                                 description="Create a session: a folder holding settings, "
                                             "labels, checkpoints and scores for one collection.")
    parser.add_argument("session", type=Path, help="session folder to create")
    parser.add_argument("source", nargs="?", default="",
                        help="folder, glob, FITS, HDF5, Zarr or CSV/ECSV catalogue (with --mosaic: the catalogue)")
    parser.add_argument("--labels", type=Path, default=None, help="import labels from this CSV")
    _mosaic_options(parser)
    _data_options(parser)
    _model_options(parser)
    _score_options(parser)
    parser.set_defaults(run=_run_init)


OUTSIDE_SHOWN = 20  # the mosaic positions in no tile that init names (the warning counts them all)


def _mosaic_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("mosaic (with --mosaic per band, --cutout-size, --channels below)")
    group.add_argument("--catalogue", type=Path, default=None,
                       help="positions to cut from the mosaic: CSV/ECSV/FITS/Parquet with ra/dec (id, size optional)")
    group.add_argument("--detect", action="store_true",
                       help="no catalogue: detect the sources on the first band (sep) and keep their catalogue in "
                            "the session")
    group.add_argument("--detect-threshold", type=float, default=DetectConfig.threshold,
                       help=f"detection threshold in background sigmas ({DetectConfig.threshold})")
    group.add_argument("--detect-min-area", type=int, default=DetectConfig.min_area,
                       help=f"smallest source in pixels ({DetectConfig.min_area})")


def _run_init(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.session import Session

    config = _apply_options(SessionConfig(), args)
    data = dataclasses.replace(config.data, source=str(args.catalogue or args.source))
    detect = DetectConfig(args.detect_threshold, args.detect_min_area) if args.detect else None
    data = mosaic_data(args.session, data, detect)
    with Session.open_or_create(args.session, data=data, config=config, labels=args.labels,
                                reopen=False) as session:
        collection = session.collection
        print(f"session {args.session}: {len(collection)} images of "
              f"{'x'.join(map(str, collection.shape))} from {collection.source}")
        for image_id, ra, dec, why in getattr(collection, "outside", [])[:OUTSIDE_SHOWN]:
            print(f"left out: {image_id} at RA {ra:.5f} Dec {dec:.5f}, {why}")
        counts = session.labels.counts()
        if any(counts.values()):
            print(f"imported {sum(counts.values())} labels; {counts}")
    return 0


def _add_label(commands: Any) -> None:
    parser = commands.add_parser("label", help="import labels from a CSV/ECSV file",
                                 description="Import labels (columns id or path, and label: "
                                             "anomaly/normal/unsure) into a session.")
    parser.add_argument("session", type=Path)
    parser.add_argument("file", type=Path, help="CSV/ECSV with id (or path) and label columns")
    parser.add_argument("--new-store", action="store_true",
                        help="start a new label store (the old one, if any, is kept as labels.sqlite.<time>.old) "
                             "and import FILE into it, e.g. an export, when labels.sqlite is lost or damaged")
    _skip_bad_option(parser)
    _wait_option(parser)
    parser.set_defaults(run=_run_label)


def _run_label(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.session import Session

    with Session.open(args.session, new_label_store=args.new_store) as session, _writer(session, args):
        _update_settings(session, args)
        changed = session.import_labels(args.file)
        print(f"{changed} labels changed; now {session.labels.counts()}")
    return 0


def _add_tag(commands: Any) -> None:
    parser = commands.add_parser(
        "tag", help="give an image free tags (lens, merger ...), or take them away",
        description="Add tags to one image (or remove them with --remove); without tags, show its "
                    "tags. Tags are kept with the labels and their history, exported in a tags "
                    "column, and never change a label: training uses anomaly/normal only.")
    parser.add_argument("session", type=Path)
    parser.add_argument("id", help="the image's id")
    parser.add_argument("tags", nargs="*", metavar="TAG", help="tags, e.g. lens merger (or 'lens, merger')")
    parser.add_argument("--remove", action="store_true", help="take these tags away instead")
    parser.set_defaults(run=_run_tag)


def _run_tag(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.session import Session

    with Session.open(args.session, read_only=not args.tags) as session:
        session.collection.index_of(args.id)  # an unknown id is an error, not an image without tags
        if args.tags:
            events = session.edit_tags(args.id, **{"remove" if args.remove else "add": args.tags})
            done = "removed" if args.remove else "added"
            print(f"{args.id}: {done} {', '.join(e.tag for e in events) or 'nothing (no change)'}")
        tags = session.labels.tags(args.id)
        print(f"{args.id}: tags {', '.join(tags) if tags else '(none)'}")
    return 0


def _add_train(commands: Any) -> None:
    parser = commands.add_parser("train", help="run training cycles (each followed by scoring)",
                                 description="Continue training the session's model for one or "
                                             "more cycles; after each, score the collection.")
    parser.add_argument("session", type=Path)
    parser.add_argument("--cycles", type=_positive_int, default=1)
    parser.add_argument("--no-score", action="store_true", help="do not score after training")
    parser.add_argument("--save-to", type=Path, default=None, metavar="FOLDER",
                        help="if the session's disk is full, save the cycle's checkpoint in FOLDER "
                             "instead (default: wait until there is space)")
    _wait_option(parser)
    _skip_bad_option(parser)
    _stop_option(parser)
    _model_options(parser)
    _score_options(parser)
    parser.set_defaults(run=_run_train)


def _stop_option(parser: Any) -> None:
    parser.add_argument("--stop-rate", type=_positive_int, default=STOP_PER_IMAGES, metavar="N",
                        help="suggest stopping the review when the next images are expected to hold fewer "
                             f"than 1 anomaly in N (default {STOP_PER_IMAGES})")


def _update_settings(session: Any, args: argparse.Namespace) -> None:
    """Store the options given on the command line in the session's settings."""
    session.update_config(_apply_options(session.config, args))


def _run_train(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.session import Session

    with Session.open(args.session) as session, _writer(session, args):
        _update_settings(session, args)
        for _ in range(args.cycles):
            cycle = _drive(session.run_cycle(score=not args.no_score, save_to=args.save_to,
                                             on_full_disk=_say_waiting_for_space, poll_s=SPACE_POLL_S))
            print(f"cycle {session.cycle} saved: {session.model.latest_checkpoint()}")
            if cycle.scored is not None:
                _report_scores(session, cycle.scored)
                _say_remaining(session, args.stop_rate)
    return 0


def _say_remaining(session: Any, per_images: int) -> None:
    """The discovery so far, the estimate of what remains and the stop suggestion, in words."""
    print(discovery_curve(session.labels).describe())
    try:
        estimate = session_estimate(session)
    except ConfigError as err:
        print(f"what remains is not estimated: {err}")
        return
    print(f"what remains: {estimate.describe()}\n{stop_suggestion(estimate, per_images).text}")


SPACE_POLL_S = 10.0  # how often a cycle the full disk refused is tried again


def _say_waiting_for_space(err: DiskFullError, cycle: int) -> None:
    print(f"anomalymatch train: {err}\nwaiting for space to save cycle {cycle} (tried every "
          f"{SPACE_POLL_S:.0f} s; Ctrl-C gives the cycle up)", file=sys.stderr)


def _add_score(commands: Any) -> None:
    parser = commands.add_parser(
        "score", help="score every image with the latest model (here or on a Dask cluster)",
        description="Score the whole collection with the latest model. Scores are written part by "
                    "part (one part per shard of a sharded collection), so an interrupted run resumes "
                    "where it stopped; at the end the run's folder holds scores.parquet (every image) "
                    "and top.parquet (the best --top-k). With --dask, shards are scored on a Dask "
                    "cluster: 'local' or 'local:N' starts one here, tcp://HOST:8786 joins a running one.")
    parser.add_argument("session", type=Path)
    parser.add_argument("--top", type=_positive_int, default=10, help="print the N best unlabelled candidates")
    parser.add_argument("--top-k", type=int, default=None, help=f"rows of top.parquet ({DEFAULTS.score.top_k})")
    parser.add_argument("--dask", default=None, metavar="ADDRESS",
                        help="score on a Dask cluster: local, local:N or tcp://scheduler:8786 "
                             "(needs pip install napari-anomalymatch[distributed])")
    parser.add_argument("--unsupervised", action="store_true",
                        help="a first ranking with zero labels: score every image by how unusual its "
                             "pretrained embedding is (before the first training cycle)")
    methods = "; ".join(f"{name}: {what}" for name, what in NOVELTY_METHODS.items())
    parser.add_argument("--method", default=None, choices=list(NOVELTY_METHODS),
                        help=f"with --unsupervised: {methods} (default {DEFAULT_NOVELTY_METHOD})")
    _skip_bad_option(parser)
    _wait_option(parser)
    _score_options(parser)
    parser.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.session import Session

    if args.method is not None and not args.unsupervised:
        raise ConfigError("--method chooses the unsupervised ranking's method; add --unsupervised")
    with Session.open(args.session) as session, _writer(session, args):
        _update_settings(session, args)
        if args.unsupervised:
            if args.dask is not None:
                raise ConfigError("--unsupervised scores here; leave out --dask")
            _report_scores(session, _drive(session.score_unsupervised(args.method or DEFAULT_NOVELTY_METHOD)),
                           args.top)
            print("unsupervised ranking: label a few anomalies (anomalymatch export, then anomalymatch "
                  "label), then train")
            return 0
        if args.dask is None:
            _report_scores(session, _drive(session.score()), args.top)
            return 0
        # deferred: torch
        from .core.scoring.cluster import connect

        with connect(args.dask) as cluster:
            print(f"scoring on Dask cluster {cluster.address} ({len(cluster.client.nthreads())} workers)")
            _report_scores(session, _drive(session.score(cluster)), args.top)
    return 0


def _report_scores(session: Any, result: Any, top: int = 10) -> None:
    print(f"scored {result.n_scored} images at {result.images_per_second:.0f} images/s "
          f"(model {result.model_hash}); scores in {session.runs.directory(session.cycle)}")
    if result.catalogue is not None:
        print(f"catalogue: {result.catalogue}\ntop {len(result.top_indices)}: {result.top_table}")
    labelled = set(session.labels.current(include_unsure=True))
    shown = 0
    for index in result.top_indices:
        image_id = session.collection.id_of(int(index))
        if image_id in labelled:
            continue
        shown += 1
        print(f"{shown:4d}  {result.scores[index]:.4f}  {image_id}")
        if shown >= top:
            break


def _add_export(commands: Any) -> None:
    parser = commands.add_parser("export", help="write the ranking as CSV, ECSV, FITS or VOTable",
                                 description="Write id, path, score, rank, label, cycle, "
                                             "RA/Dec (when known) and, after 'crossmatch', known, "
                                             "known_name and known_separation_arcsec, and tags of "
                                             "every image, best first. "
                                             "The format follows the suffix: .csv .ecsv .fits "
                                             ".xml/.vot .parquet")
    parser.add_argument("session", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--top", type=_positive_int, default=None, help="only the N best images")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.review.export import session_table, write_table
    from .core.session import Session

    with Session.open(args.session, read_only=True) as session:
        table = session_table(session, top=args.top)
        _warn_if_incomplete(session)
        path = write_table(table, args.output)
        print(f"wrote {len(table)} rows to {path}")
    return 0


def _add_similar(commands: Any) -> None:
    parser = commands.add_parser("similar", help="rank the images most like some query images",
                                 description="Rank the collection by cosine similarity of its stored "
                                             "embeddings (written by 'score') to the query images together. "
                                             "A QUERY is an image id of the collection or the path of an "
                                             "image or FITS file, embedded by the same network. The output "
                                             "format follows the suffix, as for export")
    parser.add_argument("session", type=Path)
    parser.add_argument("queries", nargs="+", metavar="QUERY")
    parser.add_argument("--top", type=_positive_int, default=100, help="how many images (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="write the table here (default: print it)")
    parser.set_defaults(run=_run_similar)


def _run_similar(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.review.export import similar_table, write_table
    from .core.session import Session

    with Session.open(args.session, read_only=True) as session:  # a reader: works on a read-only or full disk
        table = similar_table(session, session.similar(args.queries, top=args.top))
        if args.out is None:
            table[["rank", "id", "similarity", "anomaly_score", "label"]].pprint(max_lines=-1, max_width=-1)
        else:
            print(f"wrote {len(table)} rows to {write_table(table, args.out)}")
    return 0


def _add_map(commands: Any) -> None:
    parser = commands.add_parser(
        "map", help="draw a 2-D map (UMAP) of the collection's embeddings",
        description="Lay out the embeddings the latest 'score' run stored on a 2-D map (UMAP), every "
                    "labelled image and a random sample of the rest, and draw it coloured by score or "
                    "label. The map is saved with the run: a second call only draws it. A table OUT "
                    "(.csv, .ecsv, .fits, .parquet) gets the coordinates (id, x, y, score, label) "
                    "instead of a picture")
    parser.add_argument("session", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="map.png (.pdf, .svg), or a table: map.csv, "
                                                                ".ecsv, .fits, .parquet")
    parser.add_argument("--colour", choices=COLOUR_BY, default=COLOUR_BY[0], help="what colours the points")
    parser.add_argument("--sample", type=_positive_int, default=None,
                        help=f"images mapped at most (default {MAP_SAMPLE:,}); computes the map again")
    parser.add_argument("--recompute", action="store_true", help="compute the map again even if one is saved")
    parser.set_defaults(run=_run_map)


def _run_map(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.review.export import FORMATS, map_table, write_table
    from .core.session import Session

    with Session.open(args.session) as session:
        found = None if args.recompute or args.sample else session.embedding_map()
        if found is None:
            with _MapBar() as bar:
                found = run_to_end(session.compute_map(args.sample), bar.update)
            print(f"map computed in {found.seconds:.0f} s")
        colouring = map_colouring(session.runs, session.labels, session.collection, found, args.colour)
        if args.out.suffix.lower() in FORMATS:
            path = write_table(map_table(session, found, colouring), args.out)
        else:
            path = render_map(found, colouring, args.out, f"{session.path.name}: {found.describe()}")
        print(f"{found.describe()}\nwrote {path}")
    return 0


class _MapBar:
    """tqdm progress of ``Session.compute_map``: reading the embeddings, then fitting."""

    def __enter__(self) -> _MapBar:
        self._bar = None
        return self

    def update(self, event: Any) -> None:
        from tqdm import tqdm

        if event.stage == "reading":
            if self._bar is None:
                self._bar = tqdm(total=event.total, desc="reading embeddings", unit="img", file=sys.stderr)
            self._bar.update(event.done - self._bar.n)
        elif event.stage == "fitting":
            self._close()
            first = " (compiling UMAP's code first: a minute or two, once per process)" if event.compiles else ""
            print(f"fitting UMAP to {event.total:,} images{first}", file=sys.stderr)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __exit__(self, *exc: object) -> None:
        self._close()


def _add_crossmatch(commands: Any) -> None:
    parser = commands.add_parser(
        "crossmatch", help="mark the images already known in a catalogue (offline)",
        description="Match every image's RA/Dec against a catalogue of known objects (FITS, ECSV, "
                    "CSV, VOTable or Parquet with RA/Dec columns; a name column is used when there "
                    "is one). The match is kept in the session: the review shows each candidate's "
                    "nearest known object and can hide the known ones, and every export gains the "
                    "columns known, known_name and known_separation_arcsec.")
    parser.add_argument("session", type=Path)
    parser.add_argument("catalogue", type=Path, help="table of known objects with RA/Dec columns")
    parser.add_argument("--radius", default=DEFAULT_RADIUS,
                        help=f"match radius with its unit, e.g. 3arcsec or 0.001deg ({DEFAULT_RADIUS})")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the ranking with the match columns (format by suffix, as export)")
    parser.set_defaults(run=_run_crossmatch)


def _run_crossmatch(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.review.export import session_table, write_table
    from .core.session import Session

    with Session.open(args.session) as session:
        match = crossmatch_session(session, args.catalogue, args.radius)
        print(match.summary())
        if args.out is not None:
            table = session_table(session, scored_only=False)
            _warn_if_incomplete(session)
            print(f"wrote {len(table)} rows to {write_table(table, args.out)}")


def _add_samp(commands: Any) -> None:
    parser = commands.add_parser(
        "samp", help="send the top candidates to TOPCAT or Aladin over SAMP",
        description="Send the N best candidates (rank, id, score, label, RA/Dec, tags and, after "
                    "'crossmatch', the known columns) once as a VOTable to the clients of the running "
                    "SAMP hub (TOPCAT and Aladin each start one; SAMP_HUB names another). The Review "
                    "panel's SAMP button also hears rows selected there.")
    parser.add_argument("session", type=Path)
    parser.add_argument("--top", type=_positive_int, default=None,
                        help=f"how many candidates (default: the session's samp_top, {DEFAULTS.sky.samp_top})")
    parser.set_defaults(run=_run_samp)


def _run_samp(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.review.samp import SampLink, send_ranking
    from .core.session import Session

    with Session.open(args.session, read_only=True) as session:
        _warn_if_incomplete(session)
        link = SampLink(on_row=lambda image_id: None, on_problem=lambda message: None)  # sends only
        try:
            sent = send_ranking(link, session, args.top or session.config.sky.samp_top)
        finally:
            link.close()
    print(f"sent the top {len(sent.ids)} candidates to {', '.join(sent.recipients)} ({sent.url})")
    return 0


def _add_explain(commands: Any) -> None:
    parser = commands.add_parser(
        "explain", help="write saliency maps of the top candidates as PNGs",
        description="For the N most anomalous images of the latest ranking, write "
                    "<rank>_<id>_candidate.png (as the review shows it) and <rank>_<id>_saliency.png "
                    "(the candidate under its saliency map: where the score comes from), and "
                    "saliency.csv listing them")
    parser.add_argument("session", type=Path)
    parser.add_argument("--top", type=_positive_int, default=10, help="how many candidates (default 10)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write to")
    parser.add_argument("--which", default="unlabelled", choices=FILTERS,
                        help="which images are ranked (default: unlabelled, as the review)")
    parser.add_argument("--method", default=SALIENCY_METHODS[0], choices=SALIENCY_METHODS,
                        help="how the map is made (default: gradient; see docs/method.md)")
    parser.set_defaults(run=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.review.saliency import explain_top
    from .core.session import Session

    with Session.open(args.session, read_only=True) as session:
        _warn_if_incomplete(session)
        index = explain_top(session, args.out, args.top, which=args.which, method=args.method)
        with open(index) as handle:
            written = sum(1 for _ in handle) - 1
        print(f"wrote {2 * written} PNGs of {written} candidates to {args.out}; index: {index}")
    return 0


def _add_info(commands: Any) -> None:
    parser = commands.add_parser("info", help="summarise a session")
    parser.add_argument("session", type=Path)
    parser.add_argument("--curve", type=Path, default=None, metavar="CSV",
                        help="write the discovery curve (anomalies found against images labelled) as CSV")
    _stop_option(parser)
    parser.set_defaults(run=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.session import Session

    with Session.open(args.session, read_only=True) as session:
        collection = session.collection
        found = session.runs.scores()
        _warn_if_incomplete(session)
        info = {
            "source": collection.source,
            "images": len(collection),
            "shape": list(collection.shape),
            "labels": session.labels.counts(),
            "cycles": session.cycle,
            "scored_cycle": found[0] if found else None,
            "incomplete_scoring": session.runs.notice(),
            "shards": len(collection.shards) if hasattr(collection, "shards") else None,
            **_remaining_info(session, args.stop_rate),
        }
        if args.curve is not None:
            info["curve"] = str(discovery_curve(session.labels).write_csv(args.curve))
        print(json.dumps(info, indent=1))
    return 0


def _remaining_info(session: Any, per_images: int) -> dict[str, Any]:
    curve = discovery_curve(session.labels)
    found, recent = curve.recent_yield()
    said: dict[str, Any] = {"discovery": {"labelled": len(curve.image_ids), "anomalies_found": int(curve.found[-1])
                                          if curve.image_ids else 0, f"found_in_last_{recent}": found}}
    try:
        estimate = session_estimate(session)
    except ConfigError as err:
        return {**said, "remaining": {"error": str(err)}}
    return {**said, "remaining": {**dataclasses.asdict(estimate), "text": estimate.describe()},
            "stop": stop_suggestion(estimate, per_images).text}


def _add_relocate(commands: Any) -> None:
    parser = commands.add_parser(
        "relocate", help="point a session at its data after the data moved",
        description="Point the session at its data's new place (folder, file or glob). The new source is "
                    "opened as the session reads it and its ids are checked against the session's: "
                    "those of its latest score table (all, in order), its labelled and tagged ids and "
                    "its number of images. Only if they agree is the session changed; otherwise the ids "
                    "that differ are named.")
    parser.add_argument("session", type=Path)
    parser.add_argument("source", help="the data's new folder, file or glob")
    _wait_option(parser)
    parser.set_defaults(run=_run_relocate)


def _run_relocate(args: argparse.Namespace) -> int:
    # deferred: torch
    from .core.folder.relocation import relocate
    from .core.session import Session

    with Session.open(args.session) as session, _writer(session, args):
        moved = relocate(session, args.source)
    print(f"session {args.session}: now reads {moved.n_images} images from {moved.new_source} "
          f"(was {moved.old_source}); checked {moved.checked}")
    return 0


def _warn_if_incomplete(session: Any) -> None:
    notice = session.runs.notice()
    if notice is not None:
        print(f"anomalymatch: warning: {notice}", file=sys.stderr)


# -- evaluate ----------------------------------------------------------------------------------


def _add_evaluate(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate", help="run the paper's simulated active-learning protocol on a manifest",
        description="MANIFEST is a CSV with columns path,is_anomaly,initial_label. Train from the "
                    "initial labels; after each cycle but the last a simulated expert (the oracle) "
                    "reviews the unlabelled images in --oracle-order and labels the first 10 true "
                    "anomalies and 10 normal images it meets; finally every never-labelled image is "
                    "scored and the ranking measured.")
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--cycles", type=_positive_int, default=3)
    parser.add_argument("--oracle-order", default=ORACLE_ORDER, choices=order_names(),
                        help="the review order the oracle labels in: most anomalous first (default: "
                             "the paper's protocol), closest to the decision boundary first, random, or "
                             "diverse (the top 500 clustered, the best of each cluster first)")
    parser.add_argument("--test-fraction", type=float, default=ORACLE_TEST_FRACTION,
                        help="share of the unlabelled images (stratified) the oracle never reviews, on "
                             "which every cycle is measured alike (default: %(default)s; 0: none)")
    parser.add_argument("--compare-heads", action="store_true",
                        help="also score with the heads not chosen (classifier, probe, ensemble) and "
                             "report each; their scoring time is reported apart")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write ranking.csv, gallery.png and metrics.json here")
    _model_options(parser)
    _score_options(parser)
    parser.add_argument("--normalisation", default=None, choices=NORMALISATIONS)
    _crop_option(parser)
    parser.add_argument("--skip-bad", action="store_true", default=None,
                        help="warn about and leave out unreadable images instead of stopping")
    mosaic = parser.add_argument_group("survey mosaics: with --mosaic, MANIFEST is a catalogue of positions (ra, "
                                       "dec, is_anomaly, initial_label) cut from the tiles")
    taken = find_reader("", "mosaic").option_names()  # the mosaic reader's options (its cache is the session's)
    _reader_options(mosaic, [option for option in READER_OPTIONS if option.name in taken])
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    # deferred: torch
    from .core.evaluation.manifest import read_benchmark
    from .core.evaluation.protocol import OracleSettings

    config = _apply_options(SessionConfig(), args)
    benchmark = read_benchmark(args.manifest, on_error="skip" if args.skip_bad else "raise",
                               options=config.data.options)
    try:
        result = _run_and_report(benchmark, config, args.cycles, args.out, args.compare_heads,
                                 OracleSettings(order=args.oracle_order, test_fraction=args.test_fraction))
    finally:
        benchmark.collection.close()  # a mosaic's open tiles
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.summary(), indent=1))
        inputs = args.json.with_suffix(".remaining.npz")  # the estimates' inputs: benchmarks/remaining.py --replay
        np.savez_compressed(inputs, **result.remaining_inputs)
        print(f"results: {args.json} (and {inputs.name})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
