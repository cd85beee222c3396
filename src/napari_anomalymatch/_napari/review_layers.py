"""The review's layers: the current candidate, large and framed by its label, the gallery, the
gallery tiles' tags (text, drawn only while a tile of the page has a tag) and (while it is switched
on) the candidate's saliency map over it.

Rendered images are cached by collection index, so stepping through
candidates only reads and renders what is not cached yet (the next few are
rendered ahead while the viewer is idle); a label change repaints a frame,
never an image.  Layer data are replaced in place (``layer.data = ...``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.io.base import ImageCollection
from ..core.review.display import DisplayRenderer
from ..core.review.queue import Candidate, ReviewQueue
from ..core.review.saliency import INFERNO, OVERLAY_OPACITY
from ..core.review.tiles import TileGrid, frame_width, framed, label_colour, resize_rgb
from .compat import batched_layer_changes
from .layers import SOURCE_KEY, text_overlay, upsert_image

if TYPE_CHECKING:
    import napari

CANDIDATE_LAYER = "AnomalyMatch candidate"
GALLERY_LAYER = "AnomalyMatch gallery"
TAGS_LAYER = "AnomalyMatch tags"
TAG_TEXT = {"string": "{tags}", "anchor": "lower_left", "color": "yellow", "size": 8}  # hangs below its point
TILE_TAG_CHARACTERS = 10  # about a tile's width at the gallery's usual zoom; the panel shows them all
SALIENCY_LAYER = "saliency"  # short: napari's layer list and controls widen to fit a long name
MAX_TILE = 128
RENDER_CACHE_BYTES = 256 * 1024 * 1024  # rendered candidates kept (uint8 RGB): 1,365 at 256 px
GALLERY_GAP = 0.05  # gap between candidate and gallery, as a fraction of the candidate's height


class ReviewLayers:
    """Draws a ``ReviewQueue``'s current candidate and gallery page into a viewer."""

    def __init__(self, viewer: napari.Viewer, columns: int = 5, rows: int = 5) -> None:
        self.viewer = viewer
        self.columns, self.rows = columns, rows
        self.collection: ImageCollection | None = None
        self.renderer: DisplayRenderer | None = None
        self.metadata: dict[str, Any] = {}
        self.gallery_visible = True
        self.grid = TileGrid(columns, rows)
        self._renders: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_length = 64
        self._tiles: dict[int, np.ndarray] = {}
        self._page: tuple[int, tuple[int, ...]] | None = None
        self._page_labels: list[int] = []
        self._page_current: int | None = None
        self._page_tags: list[tuple[str, ...]] = []
        self._canvas: np.ndarray | None = None
        self._frame, self._drawn_shape = 0, (1, 1)  # the candidate's frame width and image size
        self._canvas_watched: Any = None  # the canvas size event that refits the view

    # -- set-up ------------------------------------------------------------------------

    def attach(self, collection: ImageCollection, renderer: DisplayRenderer, metadata: dict[str, Any]) -> None:
        """Draw from ``collection`` (used only from the GUI thread) with ``renderer``."""
        self.collection = collection
        self.metadata = {SOURCE_KEY: dict(metadata)}
        h, w, _ = collection.shape
        self._cache_length = max(2 * self.grid.size, RENDER_CACHE_BYTES // (h * w * 3))
        self.grid = TileGrid(self.columns, self.rows, tile=min(h, MAX_TILE), border=max(2, min(h, MAX_TILE) // 16))
        self.set_renderer(renderer)
        self._keep_fitted()
        self._add_placeholders()

    def _add_placeholders(self) -> None:
        """Empty candidate and gallery layers from the start: their shaders compile at the session's
        first paint (100-200 ms each with a software OpenGL), not in the same turn as the first
        ranking's images."""
        names = (CANDIDATE_LAYER, GALLERY_LAYER) if self.gallery_visible else (CANDIDATE_LAYER,)
        for name in names:
            if name not in self.viewer.layers:
                upsert_image(self.viewer, name, np.zeros((1, 1, 3), dtype=np.uint8), rgb=True,
                             contrast_limits=(0, 255), metadata=self.metadata)

    def _keep_fitted(self) -> None:
        """Refit the view whenever the canvas changes size (a smaller window, a wider layer list or
        dock): at 1280 x 800 the candidate and gallery were clipped and never refitted."""
        if self._canvas_watched is None:
            self._canvas_watched = self.viewer.canvas.events.size  # after the view knows the new size
            self._canvas_watched.connect(self._refit)

    def _refit(self, *_: Any) -> None:
        if CANDIDATE_LAYER in self.viewer.layers:
            self.viewer.reset_view()

    def set_renderer(self, renderer: DisplayRenderer) -> None:
        """Use new display settings: every cached render is dropped."""
        self.renderer = renderer
        self._renders.clear()
        self._tiles.clear()
        self._page = None

    # -- rendering ---------------------------------------------------------------------

    def render(self, indices: np.ndarray | list[int]) -> list[np.ndarray]:
        """Rendered uint8 RGB images of ``indices`` (one read for those not cached)."""
        missing = sorted({int(i) for i in indices if int(i) not in self._renders})
        if missing:
            shown = self.collection.read(missing, check=False)  # as stored, blank or not
            for index, image in zip(missing, self.renderer.render(shown), strict=True):
                self._renders[index] = image
        for index in indices:
            self._renders.move_to_end(int(index))
        while len(self._renders) > self._cache_length:
            evicted, _ = self._renders.popitem(last=False)
            self._tiles.pop(evicted, None)
        return [self._renders[int(i)] for i in indices]

    def prefetch(self, indices: np.ndarray) -> bool:
        """Render the first of ``indices`` not cached yet; False when all are cached."""
        for index in indices:
            if int(index) not in self._renders:
                self.render([int(index)])
                return True
        return False

    def prefetch_tile(self, indices: np.ndarray) -> bool:
        """Make the gallery tile of the first of ``indices`` without one; False when all have one."""
        for index in indices:
            if int(index) not in self._tiles:
                self._tile(int(index))
                return True
        return False

    def _tile(self, index: int) -> np.ndarray:
        tile = self._tiles.get(index)
        if tile is None:
            tile = resize_rgb(self.render([index])[0], self.grid.tile)
            self._tiles[index] = tile
        return tile

    # -- drawing -----------------------------------------------------------------------

    def show(self, queue: ReviewQueue) -> None:
        """Draw the queue's current candidate and its gallery page."""
        candidate = queue.current
        if candidate is None:
            self._show_nothing()
            return
        before = self._candidate_shape()
        self._show_candidate(candidate)
        if self.gallery_visible:
            self._show_page(queue)
        if before is not None and before != self._candidate_shape():
            self.viewer.reset_view()  # another crop: fit the view to the new size

    def _candidate_shape(self) -> tuple[int, ...] | None:
        if CANDIDATE_LAYER not in self.viewer.layers:
            return None
        return tuple(self.viewer.layers[CANDIDATE_LAYER].data.shape)

    def _show_candidate(self, candidate: Candidate) -> None:
        image = self.render([candidate.index])[0]
        width = frame_width(image.shape[0])
        self._frame, self._drawn_shape = width, image.shape[:2]
        data = framed(image, label_colour(candidate.label), width)
        metadata = {SOURCE_KEY: {**self.metadata[SOURCE_KEY], "index": candidate.index,
                                 "id": candidate.image_id}}
        layer = upsert_image(self.viewer, CANDIDATE_LAYER, data, rgb=True, metadata=metadata)
        layer.contrast_limits = (0, 255)
        overlay = text_overlay(self.viewer)
        overlay.visible = True
        overlay.text = candidate.caption()  # two short lines: one long line was cut off at 1280x800

    def _show_page(self, queue: ReviewQueue) -> None:
        start, indices = queue.page(self.grid.size)
        key = (start, tuple(int(i) for i in indices))
        labels = queue.labels_of(indices)
        current = queue.position - start
        if key != self._page or self._canvas is None:
            self.render([i for i in indices if int(i) not in self._tiles])  # one read for the page
            tiles = np.stack([self._tile(int(i)) for i in indices])
            self._canvas = self.grid.compose(tiles, labels, current)
        else:
            for slot in range(len(indices)):
                if labels[slot] != self._page_labels[slot] or slot in (current, self._page_current):
                    self.grid.paint(self._canvas, slot, labels[slot], slot == current)
        self._page, self._page_labels, self._page_current = key, labels, current
        self._draw_gallery()
        self._draw_tags(queue.tags_of(indices))

    def _draw_gallery(self) -> None:
        candidate_height = self.viewer.layers[CANDIDATE_LAYER].data.shape[0]
        scale = candidate_height / self.grid.shape[0]
        translate = (0.0, candidate_height * (1 + GALLERY_GAP))
        layer = upsert_image(self.viewer, GALLERY_LAYER, self._canvas, rgb=True, scale=(scale, scale),
                             translate=translate, metadata=self.metadata)
        layer.contrast_limits = (0, 255)

    def _draw_tags(self, tags: list[tuple[str, ...]]) -> None:
        """Write each tagged tile's tags along its lower edge (redrawn only when they change)."""
        if tags == self._page_tags and (TAGS_LAYER in self.viewer.layers) == any(tags):
            return
        self._page_tags = tags
        self._remove(TAGS_LAYER)
        slots = [slot for slot, names in enumerate(tags) if names]
        if not slots:
            return
        gallery = self.viewer.layers[GALLERY_LAYER]
        corners = []
        for slot in slots:
            rows, cols = self.grid.cell(slot)
            corners.append(gallery.data_to_world((rows.start + self.grid.border, cols.start + self.grid.border)))
        active = self.viewer.layers.selection.active
        self.viewer.add_points(np.array(corners), name=TAGS_LAYER, size=0.01, face_color="transparent",
                               border_width=0, features={"tags": [_short(", ".join(tags[s])) for s in slots]},
                               text=TAG_TEXT, metadata=self.metadata)
        if active is not None:
            self.viewer.layers.selection.active = active  # the keys and the click stay the review's

    def _remove(self, name: str) -> None:
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)

    def _show_nothing(self) -> None:
        overlay = text_overlay(self.viewer)
        overlay.visible = True
        overlay.text = "no candidates: every image\nin this list is labelled\n(change the filter in Review)"
        for name in (CANDIDATE_LAYER, GALLERY_LAYER):
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
                layer.data = np.zeros((1, 1, 3), dtype=np.uint8)
        self._remove(TAGS_LAYER)
        self.hide_saliency()
        self._page, self._page_tags = None, []

    def set_gallery_visible(self, visible: bool, queue: ReviewQueue | None) -> None:
        """Show or hide the gallery; the view then fits what is shown."""
        self.gallery_visible = visible
        if visible and queue is not None and queue.current is not None:
            self._page = None
            self._show_page(queue)
        elif not visible and GALLERY_LAYER in self.viewer.layers:
            with batched_layer_changes(self.viewer):
                self.viewer.layers.remove(GALLERY_LAYER)
                self._remove(TAGS_LAYER)
            self._page, self._page_tags = None, []
        self.viewer.reset_view()

    def show_saliency(self, saliency: np.ndarray) -> Any:
        """Draw the current candidate's map over it (inside its frame), fading to clear where the
        map is 0; a map of another size than the drawn image (a previewed crop) is stretched to it."""
        width, inner = self._frame, self._drawn_shape
        scale = (inner[0] / saliency.shape[0], inner[1] / saliency.shape[1])
        translate = tuple(width + (s - 1) / 2 for s in scale)  # pixel centres on the image's
        layer = upsert_image(self.viewer, SALIENCY_LAYER, saliency, colormap=saliency_colormap(),
                             contrast_limits=(0.0, 1.0), opacity=OVERLAY_OPACITY, blending="translucent",
                             scale=scale, translate=translate)
        layers = self.viewer.layers
        if layers.index(layer) < layers.index(CANDIDATE_LAYER):  # the candidate was made again
            layers.move(layers.index(layer), len(layers))
        return layer

    def hide_saliency(self) -> None:
        if SALIENCY_LAYER in self.viewer.layers:
            self.viewer.layers.remove(SALIENCY_LAYER)

    def review_layers(self) -> list[Any]:
        """The candidate, gallery, tags and saliency layers now in the viewer."""
        return [self.viewer.layers[name] for name in (CANDIDATE_LAYER, GALLERY_LAYER, TAGS_LAYER, SALIENCY_LAYER)
                if name in self.viewer.layers]

    def slot_at(self, world_position: tuple[float, ...]) -> int | None:
        """The gallery slot under a world position, or None."""
        if not self.gallery_visible or GALLERY_LAYER not in self.viewer.layers or self._page is None:
            return None
        y, x = self.viewer.layers[GALLERY_LAYER].world_to_data(world_position)[-2:]
        slot = self.grid.slot_at(y, x)
        return slot if slot is not None and slot < len(self._page[1]) else None

    def remove(self) -> None:
        """Take the review's layers out of the viewer."""
        shown = [name for name in (CANDIDATE_LAYER, GALLERY_LAYER, TAGS_LAYER, SALIENCY_LAYER)
                 if name in self.viewer.layers]
        if shown:  # a batch of none would still collect
            with batched_layer_changes(self.viewer):
                for name in shown:
                    self.viewer.layers.remove(name)
        self._page_tags = []
        if self._canvas_watched is not None:
            self._canvas_watched.disconnect(self._refit)
            self._canvas_watched = None
        text_overlay(self.viewer).visible = False


def _short(text: str) -> str:
    return text if len(text) <= TILE_TAG_CHARACTERS else text[:TILE_TAG_CHARACTERS - 1] + "…"


def saliency_colormap() -> Any:
    """The core's inferno colours, clear at 0 and opaque at 1 (so low saliency hides nothing)."""
    from napari.utils.colormaps import Colormap

    alpha = np.linspace(0.0, 1.0, len(INFERNO), dtype=np.float32)[:, None]
    return Colormap(colors=np.hstack([INFERNO, alpha]), name="saliency")
