"""The embedding map costs CPU only when it is looked at, and never beside a training or scoring run."""

from __future__ import annotations

import pytest

from napari_anomalymatch.core.errors import SessionError

from .conftest import label_both_classes


def test_the_map_waits_for_its_panel_and_never_shares_the_cpu_with_a_run(qtbot, widget, controller, blobs):
    panel, maps = widget.map_panel, controller.embedding_map
    label_both_classes(controller, blobs[1], normal=2)
    widget.show_panel("Review")  # the Map panel hidden
    controller.train_cycle(iterations=1)
    assert not panel.compute_button.enabled
    with pytest.raises(SessionError, match="the map is computed when it has finished"):
        maps.compute()
    controller.wait()
    assert maps.map is None and not maps.busy  # scored, but nobody looks at the map
    assert panel.compute_button.enabled

    widget.show_panel("Map")  # shown: the map the cycle left to make is made now
    assert maps.busy
    with pytest.raises(SessionError, match="the embedding map is being computed"):
        controller.train_cycle()
    qtbot.waitUntil(lambda: not maps.busy, timeout=300_000)
    assert maps.map is not None and maps.map.cycle == 1 and len(maps.map) == 16
    widget.show_panel("Review")
    widget.show_panel("Map")  # shown again: nothing new to map
    assert not maps.busy
