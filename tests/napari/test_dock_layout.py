"""The dock fits napari's default dock width and shows nothing as 'nan'."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

from napari_anomalymatch._napari.layers import text_overlay

from .conftest import tiny_config


@pytest.mark.parametrize("size", [(1600, 1000), (1280, 800)])
def test_no_panel_needs_a_horizontal_scroll_bar(qtbot, viewer, widget, blobs, tmp_path, size):
    viewer.window.resize(*size)
    long_folder = tmp_path / ("a-long-folder-name-as-real-paths-have" * 2)
    widget.controller.load(long_folder / "session", blobs[0], config=tiny_config())
    widget.data_panel.session_dir.value = str(long_folder / "session")
    for index in range(widget.tabs.count()):
        widget.tabs.setCurrentIndex(index)
        for _ in range(5):
            QApplication.processEvents()
        area = widget.tabs.widget(index)
        title = widget.tabs.tabText(index)
        assert area.horizontalScrollBar().maximum() == 0, f"{title} panel is wider than the dock"
        assert area.widget().minimumSizeHint().width() <= area.viewport().width(), title


def test_nothing_is_shown_as_nan_before_scoring(widget, controller):
    assert "nan" not in widget.review_panel.candidate.value.lower()
    assert "nan" not in text_overlay(controller.viewer).text.lower()
    assert "no score yet" in widget.review_panel.candidate.value


def settle_on(widget, title: str) -> None:
    widget.show_panel(title)
    for _ in range(5):
        QApplication.processEvents()


def left_in_window(magicgui_widget) -> int:
    native = magicgui_widget.native
    return native.mapTo(native.window(), native.rect().topLeft()).x()


def test_status_lines_use_the_width_of_their_panel(viewer, widget, controller):
    viewer.window.resize(1280, 800)
    long_line = "a status line long enough to wrap at the dock's width, " * 3
    lines = {"Data": widget.data_panel.status, "Train": widget.train_panel.status,
             "Review": widget.review_panel.candidate, "Metrics": widget.metrics_panel.summary,
             "Display": widget.display_panel.message}
    for title, label in lines.items():
        label.value = long_line
        settle_on(widget, title)
        panel = widget.tabs.currentWidget().widget()
        assert label.native.width() >= 0.85 * panel.width(), f"{title}: status wrapped into a narrow column"


def test_the_fields_of_a_form_start_in_one_column(viewer, widget, controller):
    data, display, train = widget.data_panel, widget.display_panel, widget.train_panel.form
    forms = {"Data": [data.session_dir, data.reader, data.source, data.hdu, data.array_name, data.ids_name],
             "Display": [display.stretch, display.brightness, display.unsharp_radius, display.lupton_q],
             "Train": [train.iterations, train.confidence_threshold, train.pool_size, train.device]}
    for title, fields in forms.items():
        settle_on(widget, title)
        starts = {field.label: left_in_window(field) for field in fields}
        assert len(set(starts.values())) == 1, f"{title}: fields start at {starts}"


def everything_in_view(viewer) -> bool:
    """Whether the candidate and gallery lie wholly inside what the canvas shows."""
    (top, left), (bottom, right) = np.asarray(viewer.layers.extent.world)[:, -2:]
    height, width = viewer.window._qt_viewer.canvas.size
    zoom, (y, x) = viewer.scene.camera.zoom, viewer.scene.camera.center[-2:]
    half_height, half_width = height / 2 / zoom, width / 2 / zoom
    return y - half_height <= top and bottom <= y + half_height and x - half_width <= left and right <= x + half_width


def test_on_a_laptop_screen_the_review_needs_no_scrolling_and_stays_in_view(qtbot, viewer, widget, controller):
    viewer.window.resize(1280, 800)
    for title in ("Data", "Train", "Display", "Metrics", "Map", "Review"):
        widget.show_panel(title)
        qtbot.waitUntil(lambda: everything_in_view(viewer))
    area = widget.tabs.currentWidget()
    qtbot.waitUntil(lambda: area.verticalScrollBar().maximum() == 0)  # labels, moves and sections in view
    viewer.window._qt_window.resize(1100, 700)  # a smaller canvas (as a wider layer list makes it): refitted
    qtbot.waitUntil(lambda: viewer.window._qt_viewer.canvas.size[1] < 700)
    qtbot.waitUntil(lambda: everything_in_view(viewer))
    controller.toggle_gallery()
    controller.toggle_gallery()
    assert everything_in_view(viewer)


def test_the_canvas_glyphs_are_rendered_while_idle_before_a_caption_needs_them(qtbot, viewer, widget, controller):
    """vispy renders each glyph the first time it is drawn (~10 ms each on the GUI thread): the dock
    renders them between events, so the first caption does not freeze the viewer."""
    from napari_anomalymatch._napari.compat import canvas_text_font
    from napari_anomalymatch._napari.glyphs import CHARACTERS

    qtbot.waitUntil(lambda: widget.glyphs.done, timeout=60_000)
    font = canvas_text_font(viewer)
    assert font is not None  # napari 0.9 keeps one font per canvas; the warmer found it
    loaded = set(font._glyphs)  # vispy's cache of rendered glyphs
    assert set(CHARACTERS) <= loaded
    caption = text_overlay(viewer).text
    assert caption and set(caption.replace("\n", "")) <= loaded  # what the first candidate shows needs none
