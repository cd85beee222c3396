"""The Train panel's progress bar: moving from the press of Train, then every stage of the cycle."""

from __future__ import annotations

from .conftest import label_both_classes


def _record_bar(widget) -> list[tuple[str, int, int]]:
    """The bar's (text, maximum, value) after each progress event (the panel draws it first)."""
    bar, seen = widget.train_panel.progress, []
    widget.controller.progress.connect(lambda _: seen.append((bar.format(), bar.maximum(), bar.value())))
    return seen


def test_the_bar_moves_at_once_and_names_every_stage_of_a_cycle(widget, controller, blobs):
    label_both_classes(controller, blobs[1])
    panel, seen = widget.train_panel, _record_bar(widget)
    panel.train_button.clicked.emit()
    assert not panel.progress.isHidden() and panel.progress.format() == "starting"  # before any event
    controller.wait()
    texts = [text for text, _, _ in seen]
    assert texts[0] == "loading images %v/%m" and seen[0][1] == 16
    assert texts.index("building the model") < texts.index("fitting the head to 5 labelled images")
    assert [(v, m) for text, m, v in seen if text == "cycle 1: iteration %v/%m"] == [(1, 2), (2, 2)]
    assert texts.index("fitting the scoring head to the trained model") < texts.index("scoring %v/%m")
    assert seen[-1] == ("scoring %v/%m", 16, 16)
    assert panel.progress.isHidden()

    seen.clear()
    panel.train_button.clicked.emit()
    controller.wait()
    assert seen[0] == ("loading images %v/%m", 16, 16)  # every image was decoded by the first cycle
    assert "building the model" not in [text for text, _, _ in seen]


def test_the_live_loss_plot_is_laid_out_once_per_size(qtbot):
    """A live draw skips the constrained layout (half its cost); a new size lays it out again."""
    from types import SimpleNamespace

    from matplotlib.layout_engine import ConstrainedLayoutEngine

    from napari_anomalymatch._napari.plots import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(400, 200)
    plot.show()
    plot.add(SimpleNamespace(loss=1.0, sup_loss=0.6, unsup_loss=0.4, mask_ratio=0.5))
    plot.canvas.draw()
    assert not isinstance(plot.figure.get_layout_engine(), ConstrainedLayoutEngine)  # frozen after the draw
    before = plot.loss_axes.get_position().bounds
    plot.resize(700, 350)
    qtbot.waitUntil(lambda: plot.loss_axes.get_position().bounds != before or
                    isinstance(plot.figure.get_layout_engine(), ConstrainedLayoutEngine), timeout=5000)
    plot.canvas.draw()
    assert not isinstance(plot.figure.get_layout_engine(), ConstrainedLayoutEngine)
    assert plot.loss_axes.get_position().bounds != before  # margins in figure fractions follow the new size
