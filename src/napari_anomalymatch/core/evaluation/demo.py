"""The demo data: real FIRST radio galaxies from the PyPI package ``firstgalaxydata``.

The images are read from the zip inside the installed package (the package
itself is not imported: importing it needs matplotlib).  2,158 images of
300x300 pixels in four classes: FRI, FRII, Compact and Bent (bent-tailed), less one blank cutout.
File names carry the position, ``RA_DEC_CLASS_SURVEY.png``.
"""

from __future__ import annotations

import csv
import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SourceNotFoundError

PACKAGE = "firstgalaxydata"
ARCHIVE = "galaxy_data.zip"
CLASSES = ("FRI", "FRII", "Compact", "Bent")
ANOMALY_CLASS = "Bent"  # the demo's anomalies: bent-tailed radio galaxies
# The archive's one blank cutout (every pixel 0), which reading refuses as no data: left out.
BLANK_IMAGES = frozenset({"Bent/22.446_0.776_3_Proctor_Tab1.png"})


@dataclass(frozen=True)
class GalaxyImage:
    """One image of the archive."""

    member: str
    galaxy_class: str
    ra: float
    dec: float

    @property
    def file_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


def first_archive() -> Path:
    """The path of ``galaxy_data.zip`` in the installed ``firstgalaxydata`` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SourceNotFoundError(
            "the demo's radio galaxies come from the package 'firstgalaxydata', which is not "
            "installed; pip install firstgalaxydata==0.2.1"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / ARCHIVE
    if not path.exists():
        raise SourceNotFoundError(f"{path}: missing from the firstgalaxydata package; reinstall it")
    return path


def list_first_images(archive: Path | None = None) -> list[GalaxyImage]:
    """Every image of the archive's ``all`` split but the blank one, sorted by class then name."""
    archive = archive or first_archive()
    images = []
    with zipfile.ZipFile(archive) as handle:
        for member in sorted(handle.namelist()):
            parts = member.split("/")
            if (len(parts) == 4 and parts[1] == "all" and parts[3].endswith(".png")
                    and "/".join(parts[2:]) not in BLANK_IMAGES):
                images.append(_parse_member(member, parts[2]))
    return images


def _parse_member(member: str, galaxy_class: str) -> GalaxyImage:
    fields = member.rsplit("/", 1)[-1].split("_")
    try:
        ra, dec = float(fields[0]), float(fields[1])
    except (IndexError, ValueError):
        ra, dec = float("nan"), float("nan")
    return GalaxyImage(member, galaxy_class, ra, dec)


def write_first_benchmark(out_dir: Path, anomaly_class: str = ANOMALY_CLASS,
                          anomaly_fraction: float | None = 0.05, labelled_anomalies: int = 10,
                          labelled_normal: int = 30, seed: int = 0) -> Path:
    """Extract a FIRST benchmark into ``out_dir`` and write its manifest CSV.

    ``anomaly_class`` images are the anomalies, subsampled so they make up
    ``anomaly_fraction`` of the pool (``None``: all of them, their natural
    share); the other three classes are normal.  ``labelled_anomalies`` and
    ``labelled_normal`` random images start labelled.  Returns the manifest path.
    """
    if anomaly_class not in CLASSES:
        raise ValueError(f"anomaly_class must be one of {CLASSES}; got {anomaly_class!r}")
    rng = np.random.default_rng(seed)
    images = list_first_images()
    normal = [im for im in images if im.galaxy_class != anomaly_class]
    anomalies = [im for im in images if im.galaxy_class == anomaly_class]
    if anomaly_fraction is not None:
        wanted = int(round(anomaly_fraction * len(normal) / (1 - anomaly_fraction)))
        keep = rng.choice(len(anomalies), size=min(wanted, len(anomalies)), replace=False)
        anomalies = [anomalies[i] for i in sorted(keep)]
    initial = {}
    for group, count, label in ((anomalies, labelled_anomalies, "anomaly"),
                                (normal, labelled_normal, "normal")):
        for i in rng.choice(len(group), size=min(count, len(group)), replace=False):
            initial[group[i].member] = label
    out_dir = Path(out_dir)
    _extract([im.member for im in normal + anomalies], out_dir / "images")
    manifest = out_dir / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "is_anomaly", "initial_label", "ra", "dec", "galaxy_class"])
        for image in normal + anomalies:
            writer.writerow([f"images/{image.galaxy_class}/{image.file_name}",
                             int(image.galaxy_class == anomaly_class),
                             initial.get(image.member, ""), image.ra, image.dec,
                             image.galaxy_class])
    return manifest


def _extract(members: list[str], target: Path) -> None:
    with zipfile.ZipFile(first_archive()) as handle:
        for member in members:
            parts = member.split("/")
            destination = target / parts[2] / parts[3]
            if destination.exists():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(handle.read(member))


def read_first_sample(n_images: int = 300, anomaly_class: str = "Bent", anomaly_fraction: float = 0.05,
                      seed: int = 0) -> tuple[np.ndarray, list[GalaxyImage]]:
    """A small random sample of the FIRST images, read into memory (for napari's sample data).

    ``anomaly_fraction`` of the ``n_images`` are of ``anomaly_class``, the rest
    of the other classes; the result is sorted by file name so the anomalies
    are spread through the stack.

    Returns
    -------
    ``(N, 300, 300)`` uint8 images and the matching ``GalaxyImage`` records.
    """
    import io

    from PIL import Image

    if anomaly_class not in CLASSES:
        raise ValueError(f"anomaly_class must be one of {CLASSES}; got {anomaly_class!r}")
    rng = np.random.default_rng(seed)
    images = list_first_images()
    anomalies = [im for im in images if im.galaxy_class == anomaly_class]
    normal = [im for im in images if im.galaxy_class != anomaly_class]
    n_anomalies = min(len(anomalies), max(1, int(round(anomaly_fraction * n_images))))
    n_normal = min(len(normal), n_images - n_anomalies)
    chosen = ([anomalies[i] for i in rng.choice(len(anomalies), n_anomalies, replace=False)]
              + [normal[i] for i in rng.choice(len(normal), n_normal, replace=False)])
    chosen.sort(key=lambda im: im.file_name)
    with zipfile.ZipFile(first_archive()) as handle:
        stack = np.stack([np.asarray(Image.open(io.BytesIO(handle.read(im.member))).convert("L"))
                          for im in chosen])
    return stack, chosen
