"""Labels: their values and words (``values``), the SQLite event store that keeps every label and
tag given (``store``, over ``sqlite``), and the checks of a store found on disk (``check``)."""

from .check import move_label_store_aside, require_label_store
from .store import LABELS_FILE, REVIEW_COLUMNS, SCHEMA_VERSION, LabelStore
from .values import (
    ANOMALY,
    LABEL_NAMES,
    MAX_TAG_CHARACTERS,
    NORMAL,
    TAG_ADDED,
    TAG_REMOVED,
    TAG_SEPARATORS,
    UNLABELED,
    UNSURE,
    LabelEvent,
    ReviewPlace,
    parse_label,
    parse_tag_edits,
    parse_tags,
)

__all__ = ["ANOMALY", "LABELS_FILE", "LABEL_NAMES", "MAX_TAG_CHARACTERS", "NORMAL", "REVIEW_COLUMNS",
           "SCHEMA_VERSION", "TAG_ADDED", "TAG_REMOVED", "TAG_SEPARATORS", "UNLABELED", "UNSURE", "LabelEvent",
           "LabelStore", "ReviewPlace",
           "move_label_store_aside", "parse_label", "parse_tag_edits", "parse_tags",
           "require_label_store"]
