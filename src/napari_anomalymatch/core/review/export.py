"""Writing rankings as tables: CSV, ECSV, FITS, VOTable or Parquet through astropy.

Every format keeps any Unicode id and path: CSV and ECSV are UTF-8 text,
VOTable writes ``unicodeChar``, Parquet UTF-8 strings and FITS UTF-8 bytes
in its binary-table character columns (see ``_fits_ready``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..io.base import ImageCollection
from ..labels import LABEL_NAMES, UNLABELED
from ..session import Session
from .crossmatch import read_crossmatch
from .sky import sky_positions

if TYPE_CHECKING:
    from ..discovery.embedding_map import EmbeddingMap
    from ..discovery.map_figure import MapColouring
    from ..discovery.search import SimilarImages

FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits",
           ".xml": "votable", ".vot": "votable", ".votable": "votable", ".parquet": "parquet"}


def ranking_table(collection: ImageCollection, scores: np.ndarray, labels: dict[str, int],
                  cycle: int, model_hash: str = "", indices: np.ndarray | None = None,
                  extra: dict[str, np.ndarray] | None = None):
    """An astropy ``Table`` of the ranking: id, path, score, rank, label, cycle, RA/Dec.

    ``extra`` adds columns given for every image in collection order.
    """
    from astropy.table import Table

    if indices is None:
        indices = np.arange(len(collection))
    indices = np.asarray(indices, dtype=np.int64)
    values = scores[indices].astype(np.float64)
    order = np.lexsort((indices, np.where(np.isfinite(values), -values, np.inf)))
    indices, values = indices[order], values[order]
    ids = [collection.id_of(int(i)) for i in indices]
    meta = collection.metadata(indices)
    table = Table()
    table["rank"] = np.arange(1, len(indices) + 1)
    table["id"] = ids
    table["path"] = [str(p) for p in meta.get("path", [collection.describe(int(i)) for i in indices])]
    table["score"] = values
    codes = [labels.get(i, UNLABELED) for i in ids]
    table["label"] = [LABEL_NAMES[c] for c in codes]
    table["cycle"] = np.full(len(indices), cycle, dtype=np.int32)
    if model_hash:
        table["model_hash"] = [model_hash] * len(indices)
    ra, dec = sky_positions(collection, indices, meta)
    if np.isfinite(ra).any():  # from the metadata or the ids' IAU names
        table["ra"], table["dec"] = ra, dec
        table["ra"].unit = table["dec"].unit = "deg"
    for name, values in (extra or {}).items():
        table[name] = np.asarray(values)[indices]
    table["score"].description = "P(anomaly) from the EMA model"
    return table


def write_table(table, path: str | Path) -> Path:
    """Write ``table`` in the format its suffix names."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: unknown export format; use one of {sorted(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        _write_parquet(table, path)
    elif fmt == "fits":
        _fits_ready(table).write(path, format=fmt, overwrite=True)
    else:
        table.write(path, format=fmt, overwrite=True)
    return path


def _fits_ready(table):
    """A copy of ``table`` that FITS can hold: text columns as UTF-8 bytes, header text as ASCII.

    FITS binary tables store characters as bytes with no encoding named;
    UTF-8 keeps every id and path, and astropy decodes such columns as UTF-8
    when they are read back (``Table.read`` then ``convert_bytestring_to_unicode``).
    Header values must be ASCII, so non-ASCII text in ``meta`` is written
    with backslash escapes (``données`` as ``donn\\xe9es``).
    """
    ready = table.copy(copy_data=False)
    for name in ready.colnames:
        if ready[name].dtype.kind in "UO":
            ready[name] = np.char.encode(np.asarray(ready[name], dtype=str), "utf-8")
    ready.meta = {key: value.encode("ascii", "backslashreplace").decode("ascii") if isinstance(value, str)
                  else value for key, value in table.meta.items()}
    return ready


def _write_parquet(table, path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ConfigError("writing Parquet needs pyarrow: pip install pyarrow") from err
    columns = {name: np.asarray(table[name]) for name in table.colnames}
    pq.write_table(pa.table(columns), path)


def session_table(session: Session, top: int | None = None, scored_only: bool = True):
    """A session's latest ranking as a ``Table``: every label given (incl. unsure) and, when the
    session has one, its cross-match (``known``, ``known_name``, ``known_separation_arcsec``),
    and every image's ``tags`` joined by ``;``.

    Parameters
    ----------
    top
        Only the ``top`` highest-scoring images; all of them when None.
    scored_only
        Raise without complete scores; False: the images in collection order, unscored (NaN).

    Raises
    ------
    NotTrainedError
        When nothing has been scored yet (and ``scored_only``).
    IncompleteScoresError
        When the only score runs stopped before their end (and ``scored_only``).
    """
    found = session.runs.complete_scores(session.cycle) if scored_only else session.runs.scores()
    n = len(session.collection)
    cycle, scores = found if found is not None else (0, np.full(n, np.nan, dtype=np.float32))
    indices = session.ranking("score", "all")  # the newest complete run; see ScoreRuns.notice
    if top is not None:
        indices = indices[:top]
    match = read_crossmatch(session)
    extra = match.columns(np.arange(n)) if match is not None else {}
    extra["tags"] = tag_column(session)
    table = ranking_table(session.collection, scores, session.labels.current(include_unsure=True),
                          cycle, indices=np.sort(indices), extra=extra)
    if match is not None:
        table["known_separation_arcsec"].unit = "arcsec"
        table.meta["crossmatch"] = {"catalogue": match.catalogue, "radius_arcsec": match.radius_arcsec}
    return table


def similar_table(session: Session, found: SimilarImages):
    """The images of ``found`` (``Session.similar``) as a ``Table`` like ``session_table``'s, in
    order of similarity: rank, id, path, similarity, score, label, cycle, RA/Dec, tags."""
    scored = session.runs.scores()
    n = len(session.collection)
    scores = scored[1] if scored is not None else np.full(n, np.nan, dtype=np.float32)
    similarity = np.full(n, np.nan, dtype=np.float64)
    similarity[found.indices] = found.similarities
    table = ranking_table(session.collection, similarity, session.labels.current(include_unsure=True),
                          found.cycle, indices=found.indices,
                          extra={"anomaly_score": scores, "tags": tag_column(session)})
    table.rename_column("score", "similarity")
    table["similarity"].description = "cosine similarity of the embeddings to the query images"
    table["anomaly_score"].description = "P(anomaly) from the EMA model"
    table.meta["search"] = found.method
    return table


def map_table(session: Session, embedding_map: EmbeddingMap, colouring: MapColouring):
    """The mapped images' map coordinates with their id, score and label (``anomalymatch map --out
    map.csv``), in collection order."""
    from astropy.table import Table

    ids = session.collection.ids()
    table = Table({"id": [ids[i] for i in embedding_map.indices],
                   "x": embedding_map.xy[:, 0], "y": embedding_map.xy[:, 1],
                   "anomaly_score": colouring.scores,
                   "label": [LABEL_NAMES[int(code)] for code in colouring.labels]})
    table.meta["map"] = embedding_map.describe()
    return table


def tag_column(session: Session) -> np.ndarray:
    """Every image's tags joined by ``;`` (``""`` for none), in collection order."""
    column = np.full(len(session.collection), "", dtype=object)
    tagged = session.labels.tagged()
    if tagged:
        column[session.collection.indices_of(list(tagged))] = [";".join(t) for t in tagged.values()]
    return column.astype(str)


def export_session(session: Session, path: str | Path, top: int | None = None) -> Path:
    """Write ``session_table(session, top)`` to ``path``; its suffix names the format (``FORMATS``).

    Raises
    ------
    NotTrainedError, IncompleteScoresError
        Without complete scores (see ``session_table``).
    ConfigError
        For an unknown format.
    """
    return write_table(session_table(session, top), path)
