"""Render the canvas text's glyphs while the viewer is idle, before the first caption needs them.

vispy draws text from a signed-distance-field atlas that it fills one character at a time, the
first time each is drawn: about 10 ms of numpy per glyph on the GUI thread. The first candidate's
caption and the gallery's tags hold some 40 distinct characters, so the first ranking froze the
viewer for half a second. A timer renders them a few at a time beforehand, between events.
Matplotlib's first text of the process loads its fonts (the first loss plot froze a cycle's start
for ~0.5 s) and napari's first unit parses pint's registry (~0.4 s): one small figure is drawn off
screen and one unit parsed after the glyphs.
"""

from __future__ import annotations

import string
import time

from qtpy.QtCore import QObject, QTimer

from .compat import canvas_text_font, load_napari_units

# printable ASCII, the symbols captions use, and the tall letters vispy measures a line's height by
CHARACTERS = string.ascii_letters + string.digits + string.punctuation + " ·×→←±≥≤″°" + "ÅÉÑŐ"
SLICE_S = 0.02  # glyph rendering per timer tick: the viewer answers between slices


class GlyphWarmer(QObject):
    """Renders ``CHARACTERS`` into the viewer's text atlas in slices of ``SLICE_S`` (none where this
    napari has no shared canvas font), then draws one small matplotlib figure."""

    def __init__(self, viewer: object, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._font = canvas_text_font(viewer)
        self._pending = list(CHARACTERS) if self._font is not None else []
        self._plots_ready = False
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._render_slice)
        self._timer.start()

    @property
    def done(self) -> bool:
        return not self._pending and self._plots_ready

    def finish(self) -> None:
        """Render what is left now (before the event loop runs, as the demo starts)."""
        while self._pending:
            self._font[self._pending.pop()]
        self._finish_plots()

    def _render_slice(self) -> None:
        until = time.perf_counter() + SLICE_S
        while self._pending and time.perf_counter() < until:
            self._font[self._pending.pop()]  # renders the glyph into the atlas, once
        if not self._pending:
            self._finish_plots()

    def _finish_plots(self) -> None:
        self._timer.stop()
        if not self._plots_ready:
            self._plots_ready = True
            draw_text_offscreen()
            load_napari_units()


def draw_text_offscreen() -> None:
    """Draw a small figure with text and ticks off screen: matplotlib loads its fonts once."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1), layout="constrained")
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], label="loss")
    axes.set_xlabel("iteration")
    axes.legend(fontsize=7)
    FigureCanvasAgg(figure).draw()
