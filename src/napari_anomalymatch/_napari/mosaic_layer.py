"""A survey mosaic tile beside the review: the tile as an image layer (a lazy pyramid of a memory map),
the review's candidates on it as points (sized by rank, coloured by label), a click on a point shows that
candidate in the review, and each step of the review centres the mosaic on the current candidate.

The mosaic has a viewer of its own, so the review's images keep theirs; the review keys (labels, next,
previous) work in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ConfigError
from ..core.io.tiles import TilePixels, band_files, read_tile
from ..core.review.mosaicpoints import MosaicPoints, candidate_points
from .keys import ReviewKeys

if TYPE_CHECKING:
    import napari

    from .controller import AnomalyMatchController

SMALLEST_LEVEL = 1024  # the pyramid halves the tile until a level is this many pixels a side
POINTS_NAME = "candidates"
FACE_OPACITY = 0.45  # the source under a point stays visible


class MosaicView:
    """One mosaic tile and the session's candidates on it, tied to the review of ``controller``."""

    def __init__(self, controller: AnomalyMatchController, path: str | Path, viewer: napari.Viewer,
                 top: int = 1000) -> None:
        self.controller, self.viewer, self.top = controller, viewer, top
        self.session = controller.session  # the session whose candidates it shows
        self.tile = read_tile(Path(path), 0)
        self._pixels = TilePixels(self.tile)
        self.image = viewer.add_image(**_image_layer(self._pixels), name=Path(path).name,
                                      metadata={"wcs": self.tile.wcs})
        self.points_layer = viewer.add_points(np.zeros((0, 2)), name=POINTS_NAME, border_width=0.2,
                                              border_width_is_relative=True)
        self.points: MosaicPoints | None = None
        self.keys = ReviewKeys(viewer, _MosaicActions(self))
        self.keys.bind()
        self.keys.bind_layers([self.image, self.points_layer])  # the points layer's own 'a' selects all
        controller.candidate_changed.connect(self._on_candidate_changed)
        controller.labels_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Place the review's first ``top`` candidates on the tile again (after new scores or labels)."""
        queue, session = self.controller.queue, self.controller.session
        if queue is None or session is None:
            return
        labelled, labels = session.labelled()
        self.points = candidate_points(self.tile, session.collection, queue.ranking, queue.scores,
                                       dict(zip(labelled.tolist(), labels.tolist())), self.top)
        layer = self.points_layer
        layer.data = self.points.positions
        layer.size = self.points.sizes
        layer.face_color = _score_colours(self.points.scores)
        layer.border_color = self.points.colours

    def pick(self, world_position: tuple[float, ...]) -> Any:
        """Show the candidate under ``world_position`` in the review (None when no point is there)."""
        if self.points is None or not len(self.points):
            return None
        position = self.points_layer.get_value(world_position, world=True)
        if position is None:
            return None
        return self.controller.show_index(int(self.points.indices[int(position)]))

    def centre_on(self, index: int) -> bool:
        """Centre the mosaic on image ``index``; False when it is not among the points."""
        place = self.points.place_of(index) if self.points is not None else None
        if place is None:
            return False
        viewer_camera(self.viewer).center = tuple(float(v) for v in place)
        return True

    def close(self) -> None:
        self.controller.candidate_changed.disconnect(self._on_candidate_changed)
        self.controller.labels_changed.disconnect(self.refresh)
        self.keys.unbind()
        self._pixels.close()

    def _on_candidate_changed(self, candidate: Any) -> None:
        if candidate is not None:
            self.centre_on(candidate.index)


def is_mosaic_session(session: Any) -> bool:
    """Whether ``session`` cuts its images from mosaic tiles (its data options name them)."""
    return session is not None and bool(session.config.data.options.get("mosaic"))


def first_tile(session: Any) -> Path:
    """The first tile of the first band of a mosaic session.

    Raises
    ------
    ConfigError
        The session's source is not a mosaic.
    SourceNotFoundError
        Its tiles are gone, naming the glob.
    """
    if not is_mosaic_session(session):
        raise ConfigError(f"{session.path}: this session's images do not come from a mosaic; open a session "
                          "made with mosaic tiles, or give the tile to show")
    return band_files(session.config.data.options["mosaic"][0], 0)[0]


def open_mosaic_view(controller: AnomalyMatchController, path: str | Path | None = None,
                     viewer: napari.Viewer | None = None) -> MosaicView:
    """Show tile ``path`` (default: the session's first tile) with the candidates on it, in ``viewer``
    (default: a new viewer, so that the review's images keep theirs)."""
    tile = Path(path) if path is not None else first_tile(controller.require_session())
    if viewer is None:
        import napari

        viewer = napari.Viewer(title=f"AnomalyMatch mosaic: {tile.name}")
    return MosaicView(controller, tile, viewer)


class _MosaicActions:
    """The review's actions for the mosaic's keys, but a click picks a point of the mosaic."""

    def __init__(self, view: MosaicView) -> None:
        self._view = view

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view.controller, name)

    def click(self, world_position: tuple[float, ...]) -> Any:
        return self._view.pick(world_position)

    def hover(self, world_position: tuple[float, ...]) -> Any:
        return None


def viewer_camera(viewer: napari.Viewer) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def _image_layer(pixels: TilePixels) -> dict[str, Any]:
    """The tile as napari reads it: a memory map halved level by level (views: nothing is read until
    shown), or the whole tile when it is compressed or scaled and has no memory map."""
    data = pixels.array()
    levels = [data]
    while max(levels[-1].shape) > SMALLEST_LEVEL and isinstance(data, np.memmap):
        levels.append(levels[-1][::2, ::2])
    finite = np.asarray(levels[-1], dtype=np.float32)
    low, high = np.nanpercentile(finite, [1.0, 99.5]) if np.isfinite(finite).any() else (0.0, 1.0)
    return {"data": levels if len(levels) > 1 else data, "multiscale": len(levels) > 1,
            "contrast_limits": (float(low), float(high) if high > low else float(low) + 1.0), "colormap": "gray"}


def _score_colours(scores: np.ndarray) -> np.ndarray:
    """Faces from dark (lowest score shown) to yellow (highest), by napari's viridis; grey when unscored."""
    from napari.utils.colormaps import ensure_colormap

    finite = np.isfinite(scores)
    colours = np.tile([0.5, 0.5, 0.5, 1.0], (len(scores), 1))
    if finite.any():
        low, high = scores[finite].min(), scores[finite].max()
        share = (scores[finite] - low) / (high - low) if high > low else np.ones(finite.sum())
        colours[finite] = ensure_colormap("viridis").map(share)
    colours[:, 3] = FACE_OPACITY
    return colours
