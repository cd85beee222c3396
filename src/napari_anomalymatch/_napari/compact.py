"""Keeping the dock narrow: short browse buttons and combo boxes sized to their field, not their longest entry.

At napari's default dock width (about 430 px at 1600x1000 and at 1280x800)
a form row must fit beside its label column; magicgui's "Choose directory"
buttons and wide combo boxes pushed the Data panel past it.
"""

from __future__ import annotations

from typing import Any

BROWSE = "Browse…"
COMBO_CHARACTERS = 8  # a combo box needs room for this many characters at least


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
