"""A field keeps the keys it edits with: typing in any editable control of any panel changes no label,
undoes nothing, moves no review, and leaves exactly what was typed in the control."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDoubleSpinBox,
    QLineEdit,
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from napari_anomalymatch._napari.editing import is_text_field, spin_box_of

# values typed into spin boxes: the first inside a box's range is used
TYPED_NUMBERS = ("20", "320", "50000", "3", "0.75", "0.5")
TYPED_TEXT = "ansz tgxfor"  # every review letter


def focus_on(qtbot, native) -> None:
    """Give ``native`` the keyboard focus, as a click on it would."""
    native.window().activateWindow()
    native.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is native)


def type_keys(qtbot, *keys: str) -> None:
    """Press keys (Qt key names such as "Left", or text) on whatever has the keyboard focus, as a person would."""
    for key in keys:
        target = QApplication.focusWidget()
        code = getattr(Qt.Key, f"Key_{key}", None) if len(key) > 1 else None
        if code is not None:
            qtbot.keyClick(target, code)
        else:
            qtbot.keyClicks(target, key)


def bring_to_front(native) -> bool:
    """Show the panel and section (tabs) ``native`` is on; returns whether it is then visible."""
    child, parent = native, native.parentWidget()
    while parent is not None:
        if isinstance(parent, QStackedWidget) and isinstance(parent.parentWidget(), QTabWidget):
            parent.parentWidget().setCurrentWidget(child)
        child, parent = parent, parent.parentWidget()
    return native.isVisible()


def editable_controls(widget) -> list[object]:
    """Every enabled spin box and text field of every panel (and of each panel's sections) in view."""
    found = []
    for child in widget.findChildren(QWidget):
        editable = isinstance(child, QAbstractSpinBox) or (is_text_field(child) and spin_box_of(child) is None)
        if editable and child.isEnabled() and bring_to_front(child):
            found.append(child)
    return found


def _number_for(box) -> str:
    return next(text for text in TYPED_NUMBERS if box.minimum() <= float(text) <= box.maximum())


def _review_state(controller) -> tuple:
    return (controller.current.position, [(e.image_id, e.label, e.source) for e in controller.session.labels.history()])


@pytest.fixture
def labelled(qtbot, widget, controller):
    """Three labels given (an undo would show) and the review at the fourth candidate."""
    widget.viewer.window._qt_window.resize(1600, 1000)
    for key in "ans":
        controller.label(key)
    return controller


def test_every_editable_control_keeps_its_editing_keys(qtbot, widget, labelled):
    controller = labelled
    before = _review_state(controller)
    controls = editable_controls(widget)
    kinds = {type(native) for native in controls}
    assert {QDoubleSpinBox, QLineEdit} < kinds and len(controls) > 20  # and superqt's integer spin box
    for native in controls:
        bring_to_front(native)
        focus_on(qtbot, native)
        box = spin_box_of(native)
        if box is not None:
            text = _number_for(box)
            type_keys(qtbot, "End", "Up", "Down", "PageUp", "PageDown", "End")
            type_keys(qtbot, *["Backspace"] * len(box.lineEdit().text()), "Delete", text)
            type_keys(qtbot, "Left", "Left", "Right", "Right", "Home", "End")
            assert box.lineEdit().text() == text, box.objectName() or box
            type_keys(qtbot, "Return")
            assert box.value() == pytest.approx(float(text))
        else:
            original = native.text()
            type_keys(qtbot, "End", *["Backspace"] * len(original), TYPED_TEXT, "Backspace", "Left", "Home", "q",
                      "PageUp", "PageDown", "Up", "Down", "End", "Delete", "Escape")
            assert native.text() == "q" + TYPED_TEXT[:-1], native
            native.setText(original)  # as it was, before the focus moves on (a finished edit applies)
        assert _review_state(controller) == before, f"a key typed in {native} reached the review"


def test_the_tag_entry_keeps_every_key(qtbot, widget, labelled):
    controller = labelled
    before = _review_state(controller)
    controller.open_tag_entry()
    entry = controller._tag_entry
    qtbot.waitUntil(lambda: entry.hasFocus())
    type_keys(qtbot, TYPED_TEXT, "Backspace", "Left", "Home", "q", "PageUp", "PageDown", "End", "Delete")
    assert entry.text() == "q" + TYPED_TEXT[:-1]
    assert _review_state(controller) == before


def test_iterations_are_edited_not_undone_and_applied_on_enter(qtbot, widget, labelled):
    """The issue's case: at the end of 'Iterations per cycle' (100), Backspace x3, 20, Enter."""
    controller = labelled
    before = _review_state(controller)
    widget.show_panel("Train")
    iterations = widget.train_panel.form.iterations
    iterations.value = 100
    assert controller.config.train.iterations == 100
    focus_on(qtbot, iterations.native)
    type_keys(qtbot, "End", "Backspace", "Backspace", "Backspace", "2")
    assert controller.config.train.iterations == 100  # not applied while typing (2 would be)
    type_keys(qtbot, "0", "Return")
    assert iterations.value == 20 and controller.config.train.iterations == 20
    assert _review_state(controller) == before


def test_a_letter_in_a_spin_box_still_labels(qtbot, widget, labelled):
    controller = labelled
    widget.show_panel("Train")
    focus_on(qtbot, widget.train_panel.form.seed.native)
    type_keys(qtbot, "a")
    assert controller.current.position == 4 and controller.session.labels.history()[-1].label == 1
    type_keys(qtbot, "z")
    assert controller.current.position == 3 and len(controller.session.labels.history()) == 5


def test_a_typed_model_name_is_applied_once_finished(qtbot, widget, labelled):
    controller = labelled
    widget.show_panel("Train")
    field = widget.train_panel.form.model_name
    focus_on(qtbot, field.native)
    type_keys(qtbot, "End", *["Backspace"] * len(field.value), "resnet18")
    assert controller.config.model.name != "resnet18"  # not letter by letter (r, re, res ...)
    type_keys(qtbot, "Return")
    assert controller.config.model.name == "resnet18"
