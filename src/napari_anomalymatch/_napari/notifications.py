"""Engine errors shown as napari notifications (shared by the widgets, the keys and the controller)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.errors import AnomalyMatchError


def notify_errors(action: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``action`` so that an engine error becomes a napari error notification."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from napari.utils.notifications import show_error

        try:
            return action(*args, **kwargs)
        except AnomalyMatchError as err:
            show_error(str(err))
            return None

    wrapped.__name__ = getattr(action, "__name__", "action")
    wrapped.__doc__ = action.__doc__
    return wrapped
