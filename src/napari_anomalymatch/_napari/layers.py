"""Engine results as napari layer data: lazy image stacks, and layers updated in place."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ConfigError
from ..core.io.base import ImageCollection
from ..core.io.hdf5 import write_hdf5_stack
from ..core.io.lazy import CollectionArray, chunk_length
from ..core.io.paths import FITS_SUFFIXES, has_suffix

if TYPE_CHECKING:
    import napari

LAYER_STACK_FILE = "layer-images.h5"  # a layer without a source file, stored in the session folder
SOURCE_KEY = "anomalymatch"  # layer.metadata[SOURCE_KEY]: where a layer's images come from
LIMIT_PERCENTILES = (0.5, 99.5)


def collection_layer_data(collection: ImageCollection, name: str, source: dict[str, Any]) -> list[tuple]:
    """Layer data tuples showing ``collection`` as a lazy stack (one image read per view).

    One-channel images give one grey layer; 8-bit colour images one RGB layer;
    other channel counts one layer per channel, blended additively.  Single
    images are 2-D layers.  ``source`` (path, reader, options) is kept in the
    layers' metadata so that a session can be made from them.
    """
    import dask.array as da

    n, c = len(collection), collection.shape[2]
    array = CollectionArray(collection, drop_channel=c == 1)  # one channel: N x H x W, sliced by napari
    lazy = da.from_array(array, chunks=(chunk_length(collection), *array.shape[1:]),
                         name=f"anomalymatch-{collection.fingerprint()}",
                         meta=np.empty((0,) * array.ndim, np.float32))
    data = lazy[0] if n == 1 else lazy
    limits = _channel_limits(collection.read([0], check=False)[0])  # a blank first image is still shown
    meta: dict[str, Any] = {"name": name, "metadata": {SOURCE_KEY: dict(source)}}
    if c == 1:
        meta["contrast_limits"] = limits[0]
        return [(data, meta, "image")]
    if c in (3, 4) and collection.value_range == (0.0, 255.0):
        meta.update(rgb=True, contrast_limits=(0.0, 255.0))
        return [(data, meta, "image")]
    meta.update(channel_axis=data.ndim - 1, contrast_limits=limits, blending="additive",
                name=[f"{name} [{i}]" for i in range(c)], colormap=channel_colormaps(c))
    return [(data, meta, "image")]


def channel_colormaps(n_channels: int) -> list[str]:
    """napari colormap names for the channels of multi-band images."""
    if n_channels == 3:
        return ["red", "green", "blue"]
    names = ("magenta", "green", "cyan", "yellow", "red", "blue", "gray")
    return [names[i % len(names)] for i in range(n_channels)]


def layer_source(layer: Any) -> dict[str, Any] | None:
    """The source (path, reader, options) a layer was read from by this plugin, or None."""
    source = getattr(layer, "metadata", {}).get(SOURCE_KEY)
    return dict(source) if isinstance(source, dict) and source.get("path") else None


def layer_fits_file(layer: Any) -> str:
    """The FITS file a layer was opened from (by this plugin's reader or any other), to use as a mosaic tile.

    Raises
    ------
    ConfigError
        The layer has no file behind it (only pixels, perhaps a WCS), or its file is not FITS.
    """
    source = layer_source(layer)
    path = source["path"] if source else getattr(getattr(layer, "source", None), "path", None)
    if not path:
        raise ConfigError(f"layer {layer.name!r} holds pixels but no file to cut from: open the FITS file itself "
                          "(File > Open, or drop it on the viewer), select its layer and try again")
    if not has_suffix(str(path), FITS_SUFFIXES):
        raise ConfigError(f"layer {layer.name!r} comes from {path}, not a FITS file; a mosaic tile is a FITS image "
                          f"with its WCS ({', '.join(FITS_SUFFIXES)})")
    return str(Path(path).absolute())


def write_layer_stack(layer: Any, folder: str | Path) -> dict[str, Any]:
    """Store a layer's image stack (N x H x W[ x C]) as HDF5 in ``folder``; returns the source
    (path, reader, options) a session reads it by. Its ids and RA/Dec metadata go along."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    expected = 4 if getattr(layer, "rgb", False) else 3
    if getattr(data, "ndim", 0) != expected:
        raise ConfigError(f"layer {layer.name!r} holds data of shape {tuple(data.shape)}; expected a "
                          "stack of images (N x H x W, or N x H x W x 3 for RGB)")
    ids = layer.metadata.get("ids")
    columns = {name: layer.metadata[name] for name in ("ra", "dec", "is_anomaly") if name in layer.metadata}
    path = write_hdf5_stack(Path(folder) / LAYER_STACK_FILE, data, ids=list(ids) if ids else None,
                            columns=columns)  # the sample's RA/Dec reach the exports, its truth Metrics
    return {"path": str(path), "reader": "hdf5",
            "options": {"dataset": "images", **({"ids": "ids"} if ids else {})}}


def upsert_image(viewer: napari.Viewer, name: str, data: np.ndarray, **properties: Any):
    """Set the data of image layer ``name`` in place, or add the layer; returns it.

    Pass ``rgb`` for colour data: napari guesses it only for images more than about 30 pixels
    wide, so a small crop would otherwise show as a stack of three-pixel-wide planes."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.rgb == properties.get("rgb", layer.rgb):  # rgb is fixed when a layer is made
            layer.data = data
            for key, value in properties.items():
                if key != "rgb":
                    setattr(layer, key, value)
            return layer
        viewer.layers.remove(layer)
    return viewer.add_image(data, name=name, **properties)


def _channel_limits(image: np.ndarray) -> list[tuple[float, float]]:
    limits = []
    for channel in range(image.shape[-1]):
        plane = image[..., channel]
        finite = plane[np.isfinite(plane)]
        if finite.size == 0:
            limits.append((0.0, 1.0))
            continue
        low, high = (float(v) for v in np.percentile(finite, LIMIT_PERCENTILES))
        limits.append((low, high) if high > low else (low, low + 1.0))
    return limits


def source_name(path: str | Path) -> str:
    """A layer name from a path: its file name without the image suffixes."""
    name = Path(str(path).rstrip("/")).name
    for suffix in (".gz", ".fz", ".fits", ".fit", ".fts", ".h5", ".hdf5", ".hdf", ".zarr"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or str(path)


def text_overlay(viewer: napari.Viewer) -> Any:
    """The viewer's text overlay (``viewer.canvas.overlays.text`` from napari 0.9 on)."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    return overlays.text if overlays is not None else viewer.text_overlay
