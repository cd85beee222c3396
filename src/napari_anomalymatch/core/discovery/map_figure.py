"""Drawing the embedding map with matplotlib: the napari dock's canvas and ``anomalymatch map``'s file.

The points are coloured by anomaly score (the highest drawn on top) or by label (the labelled
images larger and on top of the unlabelled ones).  Nothing here needs Qt: the dock passes its
Qt canvas's axes, the command line an Agg figure's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..io.base import ImageCollection
from ..labels import ANOMALY, NORMAL, UNLABELED, UNSURE, LabelStore
from ..scoring.runs import ScoreRuns
from .embedding_map import EmbeddingMap

COLOUR_BY = ("score", "label")
LABEL_STYLE = {  # label code: (name, colour, marker size)
    UNLABELED: ("unlabelled", "#8a8d93", 3.0),
    NORMAL: ("normal", "#3ca0ff", 14.0),
    UNSURE: ("unsure", "#f0c43c", 14.0),
    ANOMALY: ("anomaly", "#e63232", 18.0),
}
SCORE_COLOURMAP = "plasma"
FOREGROUND = "#d1d2d4"


@dataclass(frozen=True)
class MapColouring:
    """What each mapped image is coloured by: its score (NaN: not scored) and its label code."""

    by: str
    scores: np.ndarray
    labels: np.ndarray


def map_colouring(runs: ScoreRuns, labels: LabelStore, collection: ImageCollection, embedding_map: EmbeddingMap,
                  by: str = "score") -> MapColouring:
    """Scores (of the newest complete of a session's ``runs``) and labels of its mapped images."""
    if by not in COLOUR_BY:
        raise ConfigError(f"the map is coloured by one of {list(COLOUR_BY)}; got {by!r}")
    found = runs.scores()
    n = len(collection)
    scores = found[1] if found is not None else np.full(n, np.nan, dtype=np.float32)
    codes = np.full(n, UNLABELED, dtype=np.int8)
    current = labels.current(include_unsure=True)
    if current:
        codes[collection.indices_of(list(current))] = list(current.values())
    return MapColouring(by, np.asarray(scores[embedding_map.indices], dtype=np.float32),
                        codes[embedding_map.indices])


def draw_map(axes: Any, embedding_map: EmbeddingMap, colouring: MapColouring,
             highlighted: np.ndarray | None = None) -> Any:
    """Draw the map on matplotlib ``axes``; ``highlighted``: positions in the map (a selection)
    ringed in white.  Returns the colour mappable (score colouring) or None."""
    axes.clear()
    axes.set_xticks([])
    axes.set_yticks([])
    xy = embedding_map.xy
    mappable = _draw_by_score(axes, xy, colouring) if colouring.by == "score" else _draw_by_label(axes, xy, colouring)
    if highlighted is not None and len(highlighted):
        axes.scatter(xy[highlighted, 0], xy[highlighted, 1], s=22, facecolors="none", edgecolors="white",
                     linewidths=0.6)
    return mappable


def _draw_by_score(axes: Any, xy: np.ndarray, colouring: MapColouring) -> Any:
    scores = colouring.scores
    missing = ~np.isfinite(scores)
    if missing.any():
        axes.scatter(xy[missing, 0], xy[missing, 1], s=3, c=LABEL_STYLE[UNLABELED][1], linewidths=0)
    order = np.flatnonzero(~missing)[np.argsort(scores[~missing], kind="stable")]  # highest on top
    if not len(order):
        return None
    return axes.scatter(xy[order, 0], xy[order, 1], s=4, c=scores[order], cmap=SCORE_COLOURMAP,
                        vmin=0.0, vmax=1.0, linewidths=0)


def _draw_by_label(axes: Any, xy: np.ndarray, colouring: MapColouring) -> None:
    for code in (UNLABELED, NORMAL, UNSURE, ANOMALY):  # labelled images drawn last, on top
        chosen = colouring.labels == code
        if chosen.any():
            name, colour, size = LABEL_STYLE[code]
            axes.scatter(xy[chosen, 0], xy[chosen, 1], s=size, c=colour, linewidths=0,
                         label=f"{name} ({int(chosen.sum()):,})")
    legend = axes.legend(loc="best", fontsize=7, markerscale=1.5, frameon=False)
    for text in legend.get_texts():
        text.set_color(FOREGROUND)


def render_map(embedding_map: EmbeddingMap, colouring: MapColouring, path: Path, title: str) -> Path:
    """Write the map to an image file (the format follows the suffix: .png, .pdf, .svg)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 6.0), facecolor="#262930", layout="constrained")
    axes = figure.subplots()
    axes.set_facecolor("#262930")
    mappable = draw_map(axes, embedding_map, colouring)
    if mappable is not None:
        bar = figure.colorbar(mappable, ax=axes, shrink=0.8)
        bar.set_label("anomaly score", color=FOREGROUND)
        bar.ax.tick_params(colors=FOREGROUND, labelsize=7)
    axes.set_title(title, color=FOREGROUND, fontsize=9)
    figure.savefig(path, dpi=150, facecolor=figure.get_facecolor())
    return path
