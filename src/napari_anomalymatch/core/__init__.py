"""The GUI-free engine: data, model, training, scoring and sessions.

Nothing here imports napari, Qt or magicgui.  Import the modules you need,
e.g. ``from napari_anomalymatch.core.session import Session``.
"""
