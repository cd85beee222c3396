"""napari-anomalymatch: find rare objects in large image collections from a few labels.

The engine lives in ``napari_anomalymatch.core`` (no Qt); the napari plugin in
``napari_anomalymatch._napari``; the command line in ``napari_anomalymatch.cli``.
Importing this package loads nothing heavy.
"""

__version__ = "0.1.0"
