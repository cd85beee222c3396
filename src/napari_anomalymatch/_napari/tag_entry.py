"""The small tag entry the ``t`` key opens over the canvas, completing from the tags already used.

Enter hands the typed line (``lens, merger``; ``-lens`` takes a tag away) to
a callback and closes the entry; Escape or a click elsewhere closes it
without a change.  Completion works on the tag after the last comma.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QStringListModel, Qt
from qtpy.QtWidgets import QCompleter, QLineEdit

PLACEHOLDER = "tags, e.g. lens, merger (-tag removes); Enter"


class _LastTagCompleter(QCompleter):
    """Completes the tag being typed (after the last comma), keeping those before it."""

    def splitPath(self, path: str) -> list[str]:
        return [path.rsplit(",", 1)[-1].strip()]

    def pathFromIndex(self, index: Any) -> str:
        head = self.widget().text().rsplit(",", 1)
        chosen = super().pathFromIndex(index)
        return f"{head[0]}, {chosen}" if len(head) > 1 else chosen


class TagEntry(QLineEdit):
    """A line edit laid over the top of the canvas while it is open."""

    def __init__(self, parent: Any, on_enter: Callable[[str], Any], on_close: Callable[[], Any]) -> None:
        super().__init__(parent)
        self.on_enter = on_enter
        self.on_close = on_close
        self.setPlaceholderText(PLACEHOLDER)
        self.setObjectName("anomalymatch-tag-entry")
        self.model = QStringListModel()
        completer = _LastTagCompleter(self.model, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchStartsWith)
        self.setCompleter(completer)
        self.returnPressed.connect(self._on_return)
        self.hide()

    def open(self, tags_in_use: list[str], over: Any) -> None:
        """Show empty over the top of ``over`` (the canvas), completing from ``tags_in_use``."""
        self.model.setStringList(list(tags_in_use))
        self.clear()
        origin = over.mapTo(self.parentWidget(), over.rect().topLeft())
        width = min(over.width() - 16, 420)
        self.setGeometry(origin.x() + 8, origin.y() + 8, max(width, 120), self.sizeHint().height())
        self.show()
        self.raise_()
        self.activateWindow()  # the key may have come from a floating dock
        self.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def close_entry(self) -> None:
        if self.isVisible():
            self.hide()
            self.on_close()

    def _on_return(self) -> None:
        if self.completer().popup().isVisible():
            return  # Enter picked a completion: the line is not finished yet
        text = self.text().strip()
        self.close_entry()
        if text:
            self.on_enter(text)

    def keyPressEvent(self, event: Any) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close_entry()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: Any) -> None:
        super().focusOutEvent(event)
        if not self.completer().popup().isVisible():  # the completion list takes focus for a moment
            self.close_entry()
