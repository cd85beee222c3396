"""The dock fits napari's default dock width and shows nothing as 'nan'."""

from __future__ import annotations

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
