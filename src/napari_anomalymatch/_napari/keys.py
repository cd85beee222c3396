"""Single-key review: the viewer's key bindings and the gallery click.

napari 0.9 ignores key bindings declared in ``napari.yaml``, so they are bound
on the viewer in code while a session is open and restored when it closes.
They are also bound on the review's own layers, whose image-layer keys (``z``
orients the plane) would otherwise come first while one of them is selected.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import napari

    from .controller import AnomalyMatchController

# key -> (what it does, controller method and arguments)
REVIEW_KEYS: dict[str, tuple[str, str, tuple[Any, ...]]] = {
    "a": ("label as anomaly (then next)", "label", ("a",)),
    "n": ("label as normal (then next)", "label", ("n",)),
    "s": ("skip: label as unsure (then next)", "label", ("s",)),
    "Right": ("next candidate", "move", (1,)),
    "Left": ("previous candidate", "move", (-1,)),
    "z": ("undo the last label", "undo", ()),
    "Backspace": ("undo the last label", "undo", ()),
    "g": ("show or hide the gallery", "toggle_gallery", ()),
    "r": ("retrain with the new labels (then rescore)", "train_cycle", ()),
}


class ReviewKeys:
    """Binds ``REVIEW_KEYS`` and the gallery click on one viewer."""

    def __init__(self, viewer: napari.Viewer, controller: AnomalyMatchController) -> None:
        self.viewer = viewer
        self.controller = controller
        self._replaced: dict[str, Callable | None] = {}
        self._handlers: dict[str, Callable[[Any], None]] = {}

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
        if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)

    def _handler(self, method: str, args: tuple[Any, ...]) -> Callable[[Any], None]:
        from .controller import notify_errors

        action = notify_errors(getattr(self.controller, method))

        def on_key(viewer: Any) -> None:
            action(*args)

        on_key.__name__ = f"anomalymatch_{method}"
        return on_key

    def _on_mouse_drag(self, viewer: Any, event: Any) -> Generator[None, None, None]:
        """A click (not a drag) on a gallery tile jumps to that candidate."""
        from .controller import notify_errors

        pressed_at = tuple(event.position)
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:
            notify_errors(self.controller.click)(pressed_at)


def _key(key: str) -> Any:
    from napari.utils.key_bindings import coerce_keybinding

    return coerce_keybinding(key)
