"""napari-anomalymatch: find rare objects in large image collections from a few labels.

The engine lives in ``napari_anomalymatch.core`` (no Qt); the napari plugin in
``napari_anomalymatch._napari``; the command line in ``napari_anomalymatch.cli``.
Importing this package loads nothing heavy: ``open_plugin`` and
``AnomalyMatchApp`` (the scripted plugin) are imported when first used.
"""

from typing import Any

__version__ = "0.1.0"

_SCRIPTED = ("open_plugin", "AnomalyMatchApp")


def __getattr__(name: str) -> Any:
    if name in _SCRIPTED:
        from ._napari import api  # deferred: napari, Qt and torch load only for the plugin

        return getattr(api, name)
    raise AttributeError(f"module 'napari_anomalymatch' has no attribute {name!r}")
