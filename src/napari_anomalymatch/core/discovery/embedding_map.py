"""A 2-D map of the collection: UMAP of the embeddings the latest score run stored.

Up to ``MAP_SAMPLE`` images are mapped: every labelled image and a seeded random sample of the
rest (the others are left out, and ``EmbeddingMap.describe`` says so).  The embeddings are
projected to ``PCA_COMPONENTS`` principal components of their unit vectors first, so UMAP's
neighbour search runs on 50 numbers per image instead of 1,280 (Euclidean distance between unit
vectors orders pairs as cosine distance does).  The map is saved in the score run's folder, so
reopening the session shows it again and a new score run starts without one.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import ConfigError, NoEmbeddingsError, SessionError
from ..scoring.diversity import unit_rows
from ..scoring.runs import ScoreRunStatus, embedded_run
from ..scoring.store import ScoreStore

MAP_FILE = "map.npz"
MAP_SAMPLE = 50_000
PCA_COMPONENTS = 50
MIN_MAPPED = 5  # UMAP needs a few neighbours per image
READ_CHUNK = 65_536


@dataclass(frozen=True)
class MapProgress:
    """What the map computation is doing: ``reading`` (``done``/``total`` images), ``fitting`` or ``saving``."""

    stage: str
    done: int = 0
    total: int = 0
    compiles: bool = False  # fitting in a process that has not run UMAP yet: numba compiles it first


@dataclass(frozen=True)
class EmbeddingMap:
    """Where each mapped image lies on the map."""

    indices: np.ndarray  # collection indices of the mapped images, ascending
    xy: np.ndarray  # (len(indices), 2) float32
    n_images: int  # images in the collection
    n_embedded: int  # images with an embedding (the others could not be read)
    cycle: int  # the score run's cycle
    seconds: float  # time to compute it

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self) -> str:
        """One line for the screen: how many images the map shows and which are left out."""
        shown = f"{len(self):,} of {self.n_images:,} images"
        if len(self) < self.n_embedded:
            return (f"{shown}: every labelled image and a random sample of the rest "
                    f"({self.n_embedded - len(self):,} left out); cycle {self.cycle}")
        missing = self.n_images - self.n_embedded
        return f"{shown} (cycle {self.cycle})" + (f"; {missing:,} could not be read" if missing else "")

    def nearest(self, point: tuple[float, float], radius: float) -> int | None:
        """The collection index of the mapped image nearest ``point``, if within ``radius`` (map units)."""
        if not len(self):
            return None
        distances = np.hypot(self.xy[:, 0] - point[0], self.xy[:, 1] - point[1])
        best = int(np.argmin(distances))
        return int(self.indices[best]) if distances[best] <= radius else None

    def inside(self, polygon: np.ndarray) -> np.ndarray:
        """Collection indices of the mapped images inside ``polygon`` ((V, 2) vertices; a lasso)."""
        return self.indices[points_in_polygon(self.xy, np.asarray(polygon, dtype=np.float64))]

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, indices=self.indices, xy=self.xy,
                     counts=np.array([self.n_images, self.n_embedded, self.cycle]), seconds=self.seconds)

    @classmethod
    def load(cls, path: Path) -> EmbeddingMap:
        try:
            with np.load(path) as stored:
                n_images, n_embedded, cycle = (int(v) for v in stored["counts"])
                return cls(stored["indices"], stored["xy"], n_images, n_embedded, cycle, float(stored["seconds"]))
        except (OSError, KeyError, ValueError) as err:
            raise SessionError(f"{path}: the saved map cannot be read ({err}); delete the file and "
                               "compute the map again") from err


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which of ``points`` (N, 2) lie inside ``polygon`` (V, 2), by the even-odd rule."""
    inside = np.zeros(len(points), dtype=bool)
    if len(polygon) < 3:
        return inside
    x, y = points[:, 0], points[:, 1]
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
    return inside


def saved_map(runs: Iterable[ScoreRunStatus], folder: Path) -> EmbeddingMap | None:
    """The map of the newest of a session's score ``runs`` with embeddings, if it was computed
    (None otherwise, and when no run stored embeddings); ``folder``: the session's."""
    try:
        path = embedded_run(runs, folder).directory / MAP_FILE
    except NoEmbeddingsError:
        return None
    return EmbeddingMap.load(path) if path.exists() else None


def compute_map(runs: Iterable[ScoreRunStatus], folder: Path, n_images: int,
                labelled: Callable[[], np.ndarray], sample: int = MAP_SAMPLE,
                seed: int = 0) -> Generator[MapProgress, None, EmbeddingMap]:
    """Map the newest of a session's embedded score ``runs`` (see the module's doc) and save the
    map in its folder.  ``folder``: the session's; ``n_images``: its collection's size;
    ``labelled``: the collection indices of its labelled images, asked only when sampling.

    Raises
    ------
    NoEmbeddingsError
        No score run stored embeddings yet.
    ConfigError
        ``sample`` is below ``MIN_MAPPED``, or fewer images than that have an embedding.
    """
    if sample < MIN_MAPPED:
        raise ConfigError(f"the map needs a sample of at least {MIN_MAPPED} images; got {sample}")
    started = time.perf_counter()
    store = embedded_run(runs, folder)
    embeddings = store.embeddings()
    usable = yield from _usable_rows(embeddings)
    chosen = _sample(labelled, usable, sample, seed)
    if len(chosen) < MIN_MAPPED:
        raise ConfigError(f"{folder}: only {len(chosen)} images have an embedding; the map needs "
                          f"at least {MIN_MAPPED}")
    yield MapProgress("fitting", 0, len(chosen), compiles="umap" not in sys.modules)  # only layout imports it
    xy = layout(np.asarray(embeddings[chosen], dtype=np.float32), seed)
    found = EmbeddingMap(chosen, xy, n_images, len(usable), store.manifest.cycle,
                         time.perf_counter() - started)
    yield MapProgress("saving", len(chosen), len(chosen))
    _save_if_current(found, store)
    return found


def _usable_rows(embeddings: np.ndarray) -> Generator[MapProgress, None, np.ndarray]:
    """Indices of the finite embeddings (an unreadable image's row is NaN), read in chunks."""
    found = []
    for start in range(0, len(embeddings), READ_CHUNK):
        rows = np.asarray(embeddings[start:start + READ_CHUNK])
        found.append(start + np.flatnonzero(np.isfinite(rows).all(axis=1)))
        yield MapProgress("reading", min(start + READ_CHUNK, len(embeddings)), len(embeddings))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _sample(labelled: Callable[[], np.ndarray], usable: np.ndarray, sample: int, seed: int) -> np.ndarray:
    """Every labelled usable image, and a seeded random sample of the others, up to ``sample``."""
    if len(usable) <= sample:
        return usable
    keep = np.isin(usable, labelled())
    rest = usable[~keep]
    wanted = max(sample - int(keep.sum()), 0)
    picked = np.random.default_rng(seed).choice(len(rest), min(wanted, len(rest)), replace=False)
    return np.sort(np.concatenate([usable[keep], rest[picked]])).astype(np.int64)


def layout(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """UMAP coordinates (N, 2) of ``vectors`` (N, D), after PCA of their unit vectors."""
    from sklearn.decomposition import PCA

    try:
        with warnings.catch_warnings():  # umap-learn warns that its TensorFlow variant is unavailable
            warnings.simplefilter("ignore", ImportWarning)
            import umap
    except ImportError as err:
        raise ConfigError("the embedding map needs umap-learn: pip install umap-learn "
                          "(or napari-anomalymatch[map])") from err
    units = unit_rows(vectors)
    components = min(PCA_COMPONENTS, units.shape[1], len(units) - 1)
    reduced = PCA(components, random_state=seed).fit_transform(units)
    # random_state makes the map reproducible (UMAP then runs single-threaded)
    reducer = umap.UMAP(n_neighbors=min(15, len(units) - 1), min_dist=0.1, random_state=seed, n_jobs=1,
                        init="spectral" if len(units) > 50 else "random")
    return reducer.fit_transform(reduced).astype(np.float32)


def _save_if_current(found: EmbeddingMap, store: ScoreStore) -> None:
    """Save the map beside its run, unless a newer score run replaced that run's folder meanwhile."""
    try:
        same_run = ScoreStore.existing(store.directory).manifest == store.manifest
    except (OSError, SessionError):
        same_run = False
    if same_run:
        found.save(store.directory / MAP_FILE)
