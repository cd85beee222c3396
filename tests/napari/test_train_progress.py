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
