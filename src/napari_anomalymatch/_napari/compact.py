"""Keeping the dock narrow and tidy: short browse buttons, combo boxes sized to their field, status lines
that wrap at the dock's width, and panels packed at the top.

At napari's default dock width (about 430 px at 1600x1000 and at 1280x800)
a form row must fit beside its label column; magicgui's "Choose directory"
buttons and wide combo boxes pushed the Data panel past it.
"""

from __future__ import annotations

from typing import Any

BROWSE = "Browse…"
COMBO_CHARACTERS = 8  # a combo box needs room for this many characters at least


def status_label(value: str = "") -> Any:
    """A magicgui ``Label`` that wraps at the full width of its panel.

    A plain word-wrapped QLabel asks only for a "reasonable" width, so a long
    status line became a narrow column in the middle of the dock.
    """
    from magicgui.widgets import Label
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value=value)
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    return label


def pack_to_top(container: Any) -> None:
    """Keep a magicgui container's rows together at the top; the spare height of the dock goes below them.

    Without this a short panel spread its rows over the whole dock height.
    """
    container.native.layout().addStretch(1)


def compact_file_edit(file_edit: Any) -> Any:
    """Give a magicgui ``FileEdit`` a short button (its usual text becomes the tooltip); returns it."""
    button = file_edit.choose_btn
    if button.text != BROWSE:
        button.tooltip = button.text
        button.text = BROWSE
    return file_edit


def compact_combo_boxes(container: Any) -> None:
    """Let every combo box of a magicgui container (and its sub-containers) shrink to its field."""
    from magicgui.widgets import ComboBox, Container
    from qtpy.QtWidgets import QComboBox

    for widget in container:
        if isinstance(widget, Container):
            compact_combo_boxes(widget)
        elif isinstance(widget, ComboBox):
            widget.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            widget.native.setMinimumContentsLength(COMBO_CHARACTERS)


def align_form_labels(root: Any) -> None:
    """Give each magicgui form under ``root`` one label column, as wide as its widest label in the dock's font.

    magicgui measures labels in the application's font, not napari's larger
    one (and not at all for widgets given to the constructor), so the fields
    of a form started at ragged places.  Call this once the dock is styled.
    """
    from qtpy.QtWidgets import QWidget

    for form in [root, *root.findChildren(QWidget)]:
        labels = _row_labels(form)
        if labels:
            width = max(label.sizeHint().width() for label in labels)
            for label in labels:
                label.setMinimumWidth(width)


def _row_labels(form: Any) -> list[Any]:
    """The labels of a magicgui form's rows: each row a horizontal pair (QLabel, field)."""
    from qtpy.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout

    layout = form.layout()
    if not isinstance(layout, QVBoxLayout):
        return []
    labels = []
    for i in range(layout.count()):
        row = layout.itemAt(i).widget()
        pair = row.layout() if row is not None else None
        if isinstance(pair, QHBoxLayout) and pair.count() == 2 and isinstance(pair.itemAt(0).widget(), QLabel):
            label = pair.itemAt(0).widget()
            label.ensurePolished()  # the dock's style sheet sets the font
            labels.append(label)
    return labels
