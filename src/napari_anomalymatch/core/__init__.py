"""The GUI-free engine: data, model, training, scoring and sessions.

Nothing here imports napari, Qt or magicgui.  Import the modules you need,
e.g. ``from napari_anomalymatch.core.session import Session``.

The shared ground is the top-level modules (errors, transforms, loading, ...), ``config/``
(the settings), ``labels/`` (the label store) and ``io/`` (the collections).  The session
(``session``, a handle on its folder, and ``folder/``) hands the wings their parts: ``learning``
(training, checkpoints, the cycle), ``scoring`` (score runs, rankings), ``discovery`` (similarity,
the map).  The parts import in one direction, with no circle even behind ``TYPE_CHECKING``
(tests/test_boundaries.py checks): ``learning`` <- ``scoring`` <- ``discovery`` <- ``session``
<- ``review`` <- ``evaluation``.

Choices that grow are registered once and read by every front end: heads (``heads``), review
orders (``scoring.orders``), reader options (``io.options``), table column names (``io.columns``)
and novelty methods (``config.NOVELTY_METHODS``).
"""
