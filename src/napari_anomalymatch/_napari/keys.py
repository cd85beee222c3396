"""Single-key review: the viewer's key bindings and the gallery click.

napari 0.9 ignores key bindings declared in ``napari.yaml``, so they are bound
on the viewer in code while a session is open and restored when it closes.
They are also bound on the review's own layers, whose image-layer keys (``z``
orients the plane) would otherwise come first while one of them is selected.

napari only hears keys pressed on its canvas; a key pressed while a dock
control has focus goes to that control (``a`` picks a combo box entry, ``↑``
steps a spin box).  So while a session is open an application event filter
(``KeyForwarder``) decides, for the whole window, who has a key: the focused
field keeps every key it edits with (``editing.keeps_key``: Backspace or ←
in a spin box, any key in a text field), and nothing above it gets that key
even when the field ignores it; any other review key goes to the canvas,
where napari's keymap dispatches it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

from .editing import keeps_key
from .notifications import notify_errors

if TYPE_CHECKING:
    import napari

# key -> (what it does, controller method and arguments)
REVIEW_KEYS: dict[str, tuple[str, str, tuple[Any, ...]]] = {
    "a": ("label as anomaly (then next)", "label", ("a",)),
    "n": ("label as normal (then next)", "label", ("n",)),
    "s": ("skip: label as unsure (then next)", "label", ("s",)),
    "Right": ("next candidate", "move", (1,)),
    "Left": ("previous candidate", "move", (-1,)),
    "t": ("tag the candidate (type, Enter)", "open_tag_entry", ()),
    "z": ("undo the last label or tag", "undo", ()),
    "Backspace": ("undo the last label or tag", "undo", ()),
    "Home": ("first candidate", "go_to", (0,)),
    "End": ("last candidate", "go_to_last", ()),
    "PageDown": ("next gallery page", "move_page", (1,)),
    "PageUp": ("previous gallery page", "move_page", (-1,)),
    "g": ("show or hide the gallery", "toggle_gallery", ()),
    "x": ("show or hide the saliency map", "toggle_saliency", ()),
    "f": ("more like this: the look-alikes (again: ranking)", "toggle_similar", ()),
    "o": ("open the candidate on the sky (browser)", "open_sky", ()),
    "r": ("retrain with the new labels (then rescore)", "train_cycle", ()),
}


class ReviewActions(Protocol):
    """What the keys drive (``controller.AnomalyMatchController``): a method for each key of
    ``REVIEW_KEYS``, found by name, and the gallery's click and hover."""

    def click(self, world_position: tuple[float, ...]) -> Any: ...

    def hover(self, world_position: tuple[float, ...]) -> Any: ...


class ReviewKeys:
    """Binds ``REVIEW_KEYS`` and the gallery click on one viewer."""

    def __init__(self, viewer: napari.Viewer, controller: ReviewActions) -> None:
        self.viewer = viewer
        self.controller = controller
        self._replaced: dict[str, Callable | None] = {}
        self._handlers: dict[str, Callable[[Any], None]] = {}
        self._forwarder: Any = None

    @property
    def bound(self) -> bool:
        return bool(self._replaced)

    def bind(self) -> None:
        """Bind every review key (replacing napari's own, e.g. the arrows' dims stepping)."""
        if self.bound:
            return
        for key, (_, method, args) in REVIEW_KEYS.items():
            self._handlers[key] = self._handler(method, args)
            self._replaced[key] = self.viewer.bind_key(key, self._handlers[key], overwrite=True)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self.viewer.mouse_move_callbacks.append(self._on_mouse_move)
        self._forwarder = forward_keys(self.viewer, list(REVIEW_KEYS))

    def focus_canvas(self) -> None:
        """Give the canvas the keyboard focus (not a control of a hidden panel)."""
        canvas = _canvas(self.viewer)
        if canvas is not None:
            canvas.setFocus()

    def bind_layers(self, layers: list[Any]) -> None:
        """Bind the review keys on these layers too (they are the review's own)."""
        for layer in layers:
            for key, handler in self._handlers.items():
                if layer.keymap.get(_key(key)) is not handler:
                    layer.bind_key(key, handler, overwrite=True)

    def unbind(self) -> None:
        """Remove the review keys, putting back what they replaced."""
        for key, previous in self._replaced.items():
            self.viewer.bind_key(key, previous, overwrite=True)
        self._replaced.clear()
        self._handlers.clear()
        if self._forwarder is not None:
            self._forwarder.remove()
            self._forwarder = None
        if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
        if self._on_mouse_move in self.viewer.mouse_move_callbacks:
            self.viewer.mouse_move_callbacks.remove(self._on_mouse_move)

    def _handler(self, method: str, args: tuple[Any, ...]) -> Callable[[Any], None]:
        action = notify_errors(getattr(self.controller, method))

        def on_key(viewer: Any) -> None:
            action(*args)

        on_key.__name__ = f"anomalymatch_{method}"
        return on_key

    def _on_mouse_drag(self, viewer: Any, event: Any) -> Generator[None, None, None]:
        """A click (not a drag) on a gallery tile jumps to that candidate."""
        pressed_at = tuple(event.position)
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:
            notify_errors(self.controller.click)(pressed_at)


    def _on_mouse_move(self, viewer: Any, event: Any) -> None:
        """Hovering over a gallery tile names its candidate (id, score, label, RA/Dec) in the Review panel."""
        notify_errors(self.controller.hover)(tuple(event.position))


def _key(key: str) -> Any:
    from napari.utils.key_bindings import coerce_keybinding

    return coerce_keybinding(key)


def _canvas(viewer: Any) -> Any:
    """The Qt widget of the viewer's canvas (None for a viewer without a window)."""
    qt_viewer = getattr(getattr(viewer, "window", None), "_qt_viewer", None)
    return qt_viewer.canvas.native if qt_viewer is not None else None


def forward_keys(viewer: Any, keys: list[str]) -> Any:
    """Install a ``KeyForwarder`` for ``keys`` on the running Qt application; returns it."""
    from qtpy.QtCore import QObject
    from qtpy.QtWidgets import QApplication

    class KeyForwarder(QObject):
        """Sends ``keys`` pressed on a control of the viewer's window to its canvas instead."""

        def __init__(self) -> None:
            super().__init__()
            self.canvas = _canvas(viewer)
            self.window = viewer.window._qt_window
            self.codes = {_qt_key(key) for key in keys}
            QApplication.instance().installEventFilter(self)

        def remove(self) -> None:
            QApplication.instance().removeEventFilter(self)

        def eventFilter(self, receiver: Any, event: Any) -> bool:
            if not _is_plain_key_event(event):
                return False
            if keeps_key(receiver, event.key()):
                return False  # a field editing with it
            focus = QApplication.focusWidget()
            if focus is not None and keeps_key(focus, event.key()) and _inside(focus, receiver):
                return True  # the field ignored it (PageUp in a line edit): not for napari's keymap either
            if event.key() not in self.codes or _inside(self.canvas, receiver):
                return False  # the canvas (or, passed up from it, a widget holding it): napari's own
            if not _inside(receiver, self.window):
                return False
            if event.type() == event.Type.ShortcutOverride:
                event.accept()  # a key for us, not for a shortcut of the window's menus
                return True
            from qtpy.QtGui import QKeyEvent

            copy = QKeyEvent(event.type(), event.key(), event.modifiers(), event.text(),
                             event.isAutoRepeat(), event.count())
            QApplication.sendEvent(self.canvas, copy)
            return True

    return KeyForwarder()


def _qt_key(key: str) -> int:
    from qtpy.QtCore import Qt

    return getattr(Qt.Key, f"Key_{key.upper() if len(key) == 1 else key}")


def _is_plain_key_event(event: Any) -> bool:
    """A key press, release or shortcut check with no Ctrl, Alt or Meta held."""
    from qtpy.QtCore import QEvent, Qt

    if event.type() not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.ShortcutOverride):
        return False
    held = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier
    return not event.modifiers() & held


def _inside(widget: Any, window: Any) -> bool:
    """Whether ``widget`` belongs to ``window`` (also in a floating dock, which is a window of its own)."""
    while widget is not None:
        if widget is window:
            return True
        widget = widget.parent()
    return False
