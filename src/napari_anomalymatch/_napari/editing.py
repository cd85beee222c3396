"""Which keys a focused control keeps, and when an edited value counts as given.

A field keeps the keys it edits with: a text field (line edit, editable combo
box, text edit) every key; a spin box its caret, deletion, stepping, digit,
sign and Enter/Escape keys.  ``keys.forward_keys`` asks ``keeps_key`` before it
hands a review key to the canvas, so Backspace in *Iterations per cycle*
deletes a digit instead of undoing a label.  Any other key (a letter in a spin
box, ``a`` over a button) still reaches the review.

A spin box applies its value when the user finishes editing (Enter or focus
out), not at each keystroke: typing 20 in a box that read 1 never applies 2.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractSpinBox, QComboBox, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

_K = Qt.Key
SPIN_BOX_KEYS = frozenset({
    _K.Key_Backspace, _K.Key_Delete, _K.Key_Left, _K.Key_Right, _K.Key_Up, _K.Key_Down, _K.Key_Home,
    _K.Key_End, _K.Key_PageUp, _K.Key_PageDown, _K.Key_Return, _K.Key_Enter, _K.Key_Escape,
    _K.Key_Minus, _K.Key_Plus, _K.Key_Period, _K.Key_Comma,
    *(getattr(_K, f"Key_{digit}") for digit in range(10)),
})


def is_text_field(widget: Any) -> bool:
    """Whether ``widget`` takes typed text: a line edit (not a spin box's), an editable combo box, a text edit."""
    if isinstance(widget, (QTextEdit, QPlainTextEdit)):
        return True
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    if isinstance(widget, QLineEdit):
        return not isinstance(widget.parent(), QAbstractSpinBox)
    return False


def spin_box_of(widget: Any) -> QAbstractSpinBox | None:
    """The spin box ``widget`` is, or whose line edit it is (None for anything else)."""
    if isinstance(widget, QAbstractSpinBox):
        return widget
    if isinstance(widget, QLineEdit) and isinstance(widget.parent(), QAbstractSpinBox):
        return widget.parent()
    return None


def keeps_key(widget: Any, key: int) -> bool:
    """Whether the focused ``widget`` edits with ``key`` (a ``Qt.Key``), so no one else may have it."""
    if is_text_field(widget):
        return True
    return spin_box_of(widget) is not None and key in SPIN_BOX_KEYS


def apply_when_finished(root: QWidget) -> None:
    """Make every spin box under ``root`` give its value on Enter or focus out, not at each keystroke.

    The arrows and the mouse wheel still step it at once: each step is a finished value.
    """
    for box in root.findChildren(QAbstractSpinBox):
        box.setKeyboardTracking(False)


def edit_finished(field: Any) -> Any:
    """The signal that says a magicgui field's new value is given: a line edit's ``editingFinished``
    (its ``changed`` fires at each keystroke), any other field's ``changed``."""
    native = field.native
    return native.editingFinished if isinstance(native, QLineEdit) else field.changed
