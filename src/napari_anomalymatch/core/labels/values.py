"""Label values and the words that name them, tags as typed, and the label events of a store.

``LabelStore`` (``core.labels.store``) keeps the events; these are what it takes and returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import LabelError

UNLABELED = -1
NORMAL = 0
ANOMALY = 1
UNSURE = 2
LABEL_NAMES = {UNLABELED: "unlabelled", NORMAL: "normal", ANOMALY: "anomaly", UNSURE: "unsure"}
_LABEL_WORDS = {
    "anomaly": ANOMALY, "anomalous": ANOMALY, "1": ANOMALY, "true": ANOMALY, "yes": ANOMALY,
    "normal": NORMAL, "0": NORMAL, "false": NORMAL, "no": NORMAL,
    "unsure": UNSURE, "skip": UNSURE, "2": UNSURE,
    "": UNLABELED, "-1": UNLABELED, "unlabelled": UNLABELED, "unlabeled": UNLABELED,
    "none": UNLABELED, "nan": UNLABELED,
}
TAG_ADDED, TAG_REMOVED = 1, 0  # a tag event's ``label``: whether the image has the tag afterwards
TAG_SEPARATORS = re.compile(r"[,;]")
MAX_TAG_CHARACTERS = 64


def parse_tags(values: str | Iterable[str]) -> list[str]:
    """Tags from text: ``"lens, merger"`` or ``["lens", "merger"]`` -> ``["lens", "merger"]``.

    Commas and semicolons separate tags (a semicolon joins them in exports);
    spaces around a tag are dropped, inner runs of spaces become one.

    Raises
    ------
    LabelError
        For no tag at all, an empty tag or one longer than ``MAX_TAG_CHARACTERS``.
    """
    texts = [values] if isinstance(values, str) else list(values)
    tags: list[str] = []
    for text in texts:
        for part in TAG_SEPARATORS.split(str(text)):
            tag = " ".join(part.split())
            if not tag:
                raise LabelError(f"tag {str(text)!r} holds an empty tag; expected words such as 'lens' or "
                                 "'lens, merger'")
            if len(tag) > MAX_TAG_CHARACTERS:
                raise LabelError(f"tag {tag[:20]!r}... is {len(tag)} characters long; at most "
                                 f"{MAX_TAG_CHARACTERS} are kept")
            if tag not in tags:
                tags.append(tag)
    if not tags:
        raise LabelError("no tag given; expected words such as 'lens' or 'lens, merger'")
    return tags


def parse_tag_edits(text: str) -> tuple[list[str], list[str]]:
    """What a typed tag line asks for: ``"lens, -merger"`` adds ``lens`` and removes ``merger``.

    Raises
    ------
    LabelError
        As ``parse_tags``.
    """
    add, remove = [], []
    for tag in parse_tags(text):
        if tag.startswith("-"):
            remove.extend(parse_tags(tag[1:]))
        else:
            add.append(tag)
    return add, remove


def parse_label(value: Any, where: str = "label") -> int:
    """Turn ``'anomaly'``, ``'normal'``, ``1``, ``0``, ``''`` ... into a label code."""
    if isinstance(value, bool):
        return ANOMALY if value else NORMAL
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:  # NaN
            return UNLABELED
        if float(value) in (-1.0, 0.0, 1.0, 2.0):
            return int(value)
    text = str(value).strip().lower()
    if text in _LABEL_WORDS:
        return _LABEL_WORDS[text]
    try:
        return parse_label(float(text), where)
    except ValueError:
        pass
    raise LabelError(
        f"{where}: label {str(value)!r} is not understood; expected anomaly, normal, unsure, "
        "1, 0 or empty"
    )


@dataclass(frozen=True)
class ReviewPlace:
    """Where an image stood in the review when it was labelled."""

    rank: int  # 1-based place in the review order
    score: float  # its score then (NaN: not scored)
    order: str  # the review order: score, uncertainty, random, diverse, ...


@dataclass(frozen=True)
class LabelEvent:
    """One change of one image's label."""

    seq: int
    image_id: str
    label: int
    previous: int
    time: float
    cycle: int
    source: str
    reverts: int | None
    undone: bool
    tag: str | None = None  # a tag event: ``label`` says whether the image has the tag afterwards
    review: ReviewPlace | None = None  # None: labelled outside a ranked review (import, selection, undo)
