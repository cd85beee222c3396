"""The dock's training takes the session's write lock, as the command line does."""

from __future__ import annotations

from napari_anomalymatch.core.folder.lock import SessionLock

from .conftest import label_both_classes, notifications_during


def test_the_docks_training_is_refused_while_another_process_writes_and_labelling_goes_on(
        qtbot, widget, controller, blobs):
    label_both_classes(controller, blobs[1])
    session = controller.session

    def train() -> None:
        controller.train_cycle()
        qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)

    with SessionLock(session.path, "anomalymatch train"):  # the command line training the same session
        errors = notifications_during(train)
        image_id = session.collection.id_of(0)
        session.label(image_id, "unsure")  # labelling is its own transaction: it goes on
    assert any("being changed by 'anomalymatch train' (process" in e for e in errors), errors
    assert session.cycle == 0 and session.labels.get(image_id) == 2
