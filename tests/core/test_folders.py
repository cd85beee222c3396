"""A proposed session folder is new (or empty), named after the images, and not yet made."""

from __future__ import annotations

from napari_anomalymatch.core.io.folders import propose_session_folder


def test_a_proposed_folder_is_named_after_the_images_and_never_one_in_use(tmp_path):
    first = propose_session_folder("FIRST radio galaxies", tmp_path)
    assert first == tmp_path / "FIRST-radio-galaxies" and not first.exists()
    first.mkdir()
    assert propose_session_folder("FIRST radio galaxies", tmp_path) == first  # empty: still free
    (first / "labels.sqlite").write_bytes(b"")
    assert propose_session_folder("FIRST radio galaxies", tmp_path) == tmp_path / "FIRST-radio-galaxies-2"
    assert propose_session_folder("../..", tmp_path) == tmp_path / "session"  # no way out of the parent
