"""Shared fixtures: small real files written by the tests, and data shipped in wheels."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from napari_anomalymatch.core.config import (
    DataConfig,
    ModelConfig,
    NormalisationConfig,
    ScoreConfig,
    SessionConfig,
    TrainConfig,
)

ASTROPY_FITS = Path(__import__("astropy").__file__).parent / "io" / "fits"
M13 = ASTROPY_FITS / "hdu" / "compressed" / "tests" / "data"


@pytest.fixture(scope="session")
def m13_dir() -> Path:
    """The folder of astropy's M13 FITS images (plain and tile-compressed)."""
    assert (M13 / "m13.fits").exists(), "astropy's wheel should ship m13.fits"
    return M13


def write_pngs(folder: Path, images: np.ndarray, names: list[str] | None = None) -> list[Path]:
    """Write uint8/uint16 arrays (N, H, W[, C]) as PNG files and return their paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / (names[i] if names else f"img_{i:03d}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def blob_images(n: int, size: int = 32, anomaly_every: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grey uint8 images of a faint round blob; every ``anomaly_every``-th one is a bright ring."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    radius = np.hypot(yy, xx)
    images = np.empty((n, size, size), dtype=np.uint8)
    truth = np.zeros(n, dtype=bool)
    for i in range(n):
        noise = rng.normal(20, 5, (size, size))
        if i % anomaly_every == 0:
            truth[i] = True
            signal = 200 * np.exp(-((radius - size / 4) ** 2) / 4)
        else:
            signal = 120 * np.exp(-(radius**2) / (2 * (size / 10) ** 2))
        images[i] = np.clip(noise + signal, 0, 255).astype(np.uint8)
    return images, truth


def write_label_file(path: Path, truth: np.ndarray, n_anomalies: int = 2, n_normal: int = 3) -> Path:
    """A label CSV (id, label) for the first anomalies and normal images of ``write_pngs``' names."""
    rows = [[f"img_{i:03d}.png", "anomaly"] for i in np.flatnonzero(truth)[:n_anomalies]]
    rows += [[f"img_{i:03d}.png", "normal"] for i in np.flatnonzero(~truth)[:n_normal]]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "label"], *rows])
    return path


@pytest.fixture
def blob_folder(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A folder of 40 PNG blobs (8 rings = anomalies) and the truth."""
    images, truth = blob_images(40)
    write_pngs(tmp_path / "blobs", images)
    return tmp_path / "blobs", truth


@pytest.fixture
def blob_manifest(tmp_path: Path) -> Path:
    """An evaluate manifest over 80 PNG blobs (16 rings): 2 anomalies and 4 normal images labelled."""
    images, truth = blob_images(80)
    paths = write_pngs(tmp_path / "bench" / "images", images)
    manifest = tmp_path / "bench" / "manifest.csv"
    labelled_anomalies = set(np.flatnonzero(truth)[:2])
    labelled_normal = set(np.flatnonzero(~truth)[:4])
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "is_anomaly", "initial_label"])
        for i, path in enumerate(paths):
            initial = "anomaly" if i in labelled_anomalies else "normal" if i in labelled_normal else ""
            writer.writerow([f"images/{path.name}", int(truth[i]), initial])
    return manifest


TINY_TRAINING = {"iterations": 2, "batch_size": 4, "unlabelled_ratio": 1, "unlabelled_pool_size": 16}


def rare_bar_folder(folder: Path, n: int = 40, anomalies: tuple[int, ...] = (7, 23, 31), size: int = 32,
                    seed: int = 0) -> tuple[Path, np.ndarray]:
    """PNGs of faint noise; the images ``anomalies`` also hold a bright bar. Returns the folder and truth."""
    rng = np.random.default_rng(seed)
    images = rng.normal(40, 10, (n, size, size))
    truth = np.zeros(n, dtype=bool)
    truth[list(anomalies)] = True
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images[truth] += 200 * ((np.abs(yy) < 2) & (np.abs(xx) < size / 3))
    write_pngs(folder, np.clip(images, 0, 255).astype(np.uint8))
    return folder, truth


def tiny_config(source: str | Path = "", crop: float | str = 1.0, image_size: int = 32) -> SessionConfig:
    """Settings that train and score the blob images in a few seconds; by default on the whole
    image, which the panels' pixel arithmetic in the napari tests assumes."""
    data = DataConfig(source=str(source), normalisation=NormalisationConfig(crop=crop))
    return SessionConfig(data=data, model=ModelConfig(image_size=image_size),
                         train=TrainConfig(**TINY_TRAINING),
                         score=ScoreConfig(batch_size=16, part_size=16, num_workers=0))


class SampPeer:
    """A second SAMP client (standing in for TOPCAT/Aladin) that records what it receives."""

    MTYPES = ("table.load.votable", "coord.pointAt.sky")

    def __init__(self, lockfile: Path) -> None:
        from napari_anomalymatch.core.review.samp import samp_module

        samp = samp_module()
        self.lockfile = lockfile
        self.received: list[tuple[str, dict]] = []
        self.client = samp.SAMPIntegratedClient(name="peer", addr="127.0.0.1")
        self.client.connect(hub_params=samp.lockfile_helpers.read_lockfile(str(lockfile)))
        for mtype in self.MTYPES:
            self.client.bind_receive_notification(mtype, self._record)

    def _record(self, private_key, sender_id, mtype, params, extra) -> None:
        self.received.append((mtype, params))

    def wait_for(self, mtype: str, timeout: float = 10.0) -> dict:
        """The params of the first ``mtype`` message received (waiting up to ``timeout`` s)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [params for kind, params in self.received if kind == mtype]
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {mtype} message within {timeout} s; received {self.received}")

    def select_rows(self, table_id: str, rows: list[int]) -> None:
        """Select ``rows`` of a table, as TOPCAT does when rows are picked in a plot."""
        self.client.notify_all({"samp.mtype": "table.select.rowList",
                                "samp.params": {"table-id": table_id, "row-list": [str(r) for r in rows]}})


@pytest.fixture
def samp_hub(tmp_path, monkeypatch):
    """A SAMP hub of its own on localhost (no web profile), found through SAMP_HUB: the user's
    hub, if any, is never touched.  Yields a connected ``SampPeer``."""
    from napari_anomalymatch.core.review.samp import samp_module

    samp = samp_module()
    lockfile = tmp_path / "samp-hub.lock"
    hub = samp.SAMPHubServer(web_profile=False, lockfile=str(lockfile), addr="127.0.0.1")
    hub.start(wait=False)
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{lockfile}")
    peer = SampPeer(lockfile)
    try:
        yield peer
    finally:
        if peer.client.is_connected:
            peer.client.disconnect()
        hub.stop()
