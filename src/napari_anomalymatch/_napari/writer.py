"""napari writer: a session's labels and scores, from the review's layers.

Saving the *AnomalyMatch candidate* (or gallery) layer writes the session's
latest ranking: id, path, score, rank, label (anomaly/normal/unsure/
unlabelled), cycle, RA/Dec and the cross-match's columns, in the format the file suffix names.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import ConfigError
from ..core.review.export import export_session
from ..core.session import Session
from .layers import SOURCE_KEY


def write_ranking(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write the ranking of the session a review layer belongs to.

    Raises
    ------
    ConfigError
        For a layer that is not one of AnomalyMatch's review layers.
    NotTrainedError
        When the session has not been scored.
    """
    session_path = (meta.get("metadata") or {}).get(SOURCE_KEY, {}).get("session")
    if not session_path:
        raise ConfigError(
            f"layer {meta.get('name', '?')!r} is not an AnomalyMatch review layer; select the "
            "'AnomalyMatch candidate' layer to save a session's labels and scores")
    with Session.open(session_path) as session:
        return [str(export_session(session, path))]
