"""Saliency of a session's candidates, aligned to how the review shows them, and as PNGs.

The map of ``core.scoring.saliency`` is made at the model's input (the session's normalised,
centrally cropped image resized to ``model.image_size``) and resized back to the cropped
image's own size, which is what the review draws: so map pixel ``(y, x)`` lies over displayed
pixel ``(y, x)``. ``explain_top`` writes, for the top of the ranking, the candidate as the
review draws it and the candidate under its map (``overlay``), with an index CSV.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, NotTrainedError, SessionError
from ..scoring.saliency import saliency_maps as model_saliency
from ..session import FILTERS, Session
from ..transforms import to_model_input
from .display import DisplayRenderer
from .state import read_review_state

# matplotlib's 'inferno' at 11 even steps (what napari's 'inferno' also shows), so the PNGs
# need no matplotlib; values between are interpolated linearly.
INFERNO = np.array([[0, 0, 4], [22, 11, 57], [66, 10, 104], [106, 23, 110], [147, 38, 103],
                    [188, 55, 84], [221, 81, 58], [243, 120, 25], [252, 165, 10], [246, 215, 70],
                    [252, 255, 164]], dtype=np.float32) / 255
OVERLAY_OPACITY = 0.6  # how opaque the colour is where the map is 1 (it fades to 0 with the map)
INDEX_FILE = "saliency.csv"


def saliency_maps(session: Session, indices: np.ndarray | list[int], method: str = "gradient",
                  batch_size: int = 16) -> list[np.ndarray]:
    """The saliency maps of images ``indices`` with the session's latest model (``method``:
    see ``core.scoring.saliency``).

    Returns
    -------
    One float32 ``(H, W)`` array in [0, 1] per image, ``(H, W)`` the size of the image as
    the review shows it (the session's central crop at full resolution).

    Raises
    ------
    NotTrainedError
        When the session has no model yet.
    ConfigError
        An unknown ``method``.
    """
    import torch

    if session.cycle == 0:
        raise NotTrainedError(f"{session.path}: no model yet, so nothing to explain; run "
                              f"'anomalymatch train {session.path}' first")
    indices = [int(i) for i in indices]
    if not indices:
        return []
    shown = session.normaliser(session.collection.read(indices))  # (N, H, W, C): the review's crop
    scorer = session.trainer.scoring_model
    maps = model_saliency(scorer, to_model_input(shown, session.config.model.image_size),
                             batch_size, method)
    resized = torch.nn.functional.interpolate(maps[:, None], size=shown.shape[1:3], mode="bilinear",
                                              align_corners=False)
    peaks = resized.amax((2, 3), keepdim=True)
    resized = torch.where(peaks > 0, resized / peaks.clamp_min(1e-30), resized)  # a peak of 1 again
    return [m[0].clamp(0, 1).numpy().astype(np.float32) for m in resized]


def colourise(saliency: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3)`` float32 inferno colours."""
    steps = np.linspace(0.0, 1.0, len(INFERNO))
    values = np.clip(saliency, 0.0, 1.0)
    return np.stack([np.interp(values, steps, INFERNO[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def overlay(rgb: np.ndarray, saliency: np.ndarray, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """The uint8 ``(H, W, 3)`` image under its map: inferno colour, as opaque as ``opacity``
    times the map's value, so where the map is 0 the image shows unchanged."""
    if rgb.shape[:2] != saliency.shape:
        raise ConfigError(f"a {saliency.shape} saliency map does not fit a {rgb.shape[:2]} image")
    alpha = (opacity * np.clip(saliency, 0.0, 1.0))[..., None]
    mixed = (1 - alpha) * (rgb.astype(np.float32) / 255) + alpha * colourise(saliency)
    return (np.clip(mixed, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def explain_top(session: Session, out: str | Path, top: int, which: str = "unlabelled",
                method: str = "gradient") -> Path:
    """Write ``<rank>_<id>_candidate.png`` and ``<rank>_<id>_saliency.png`` for the ``top``
    candidates of the latest complete ranking (``which`` images, most anomalous first), and
    ``saliency.csv`` listing them (rank, id, score, cycles, files); returns the CSV's path.

    Raises
    ------
    ConfigError
        ``top`` below 1 or an unknown ``which``.
    NotTrainedError
        No complete ranking yet, or no model.
    SessionError
        ``out`` cannot be written.
    """
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ConfigError(f"the number of candidates to explain must be an integer >= 1; got {top!r}")
    if which not in FILTERS:
        raise ConfigError(f"which must be one of {list(FILTERS)}; got {which!r}")
    found = session.runs.scores()
    if found is None:
        notice = session.runs.notice()
        raise NotTrainedError(f"{session.path}: no ranking yet ({notice or 'nothing scored'}); run "
                              f"'anomalymatch score {session.path}' first")
    scores_cycle, scores = found
    out = _writable_folder(Path(out))
    indices = session.ranking("score", which)[:top]
    renderer = DisplayRenderer(read_review_state(session.path).display, session.normaliser,
                               session.collection.shape[2])
    rows = []
    for start in range(0, len(indices), 16):
        chunk = indices[start:start + 16]
        rendered = renderer.render(session.collection.read(chunk))
        maps = saliency_maps(session, chunk, method)
        for offset, (index, rgb, saliency) in enumerate(zip(chunk, rendered, maps, strict=True)):
            rank, image_id = start + offset + 1, session.collection.id_of(int(index))
            stem = f"{rank:0{len(str(top))}d}_{_safe_name(image_id)}"
            _write_png(out / f"{stem}_candidate.png", rgb)
            _write_png(out / f"{stem}_saliency.png", overlay(rgb, saliency))
            rows.append([rank, image_id, f"{float(scores[index]):.6g}", scores_cycle, session.cycle,
                         f"{stem}_candidate.png", f"{stem}_saliency.png"])
    index_file = out / INDEX_FILE
    with open(index_file, "w", newline="") as handle:
        csv.writer(handle).writerows([["rank", "id", "score", "scores_cycle", "model_cycle", "candidate",
                                       "saliency"], *rows])
    return index_file


def _writable_folder(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SessionError(f"{out}: cannot make the output folder ({err.strerror}); choose another "
                           "with --out") from None
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise SessionError(f"{out}: not a writable folder; choose another with --out")
    return out


def _safe_name(image_id: str) -> str:
    """An id as one file name, its image suffix left out (the rank keeps names apart): path
    separators and odd characters become '_'."""
    stem = image_id.rsplit(".", 1)[0] if "." in image_id[-6:] else image_id
    name = "".join(c if c.isalnum() or c in "-._" else "_" for c in stem)
    return name.strip("._") or "image"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb).save(path)
