"""The manifest: valid, and every python_name importable without a viewer."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import napari_anomalymatch

MANIFEST = Path(napari_anomalymatch.__file__).parent / "napari.yaml"


def manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_file(MANIFEST)


def python_names() -> list[str]:
    return [command.python_name for command in manifest().contributions.commands]


def test_manifest_is_valid_and_lists_every_contribution():
    m = manifest()
    assert m.name == "napari-anomalymatch"
    contributions = m.contributions
    assert contributions.readers and contributions.writers and contributions.widgets
    assert contributions.sample_data
    patterns = set(contributions.readers[0].filename_patterns)
    assert {"*.fits", "*.fit", "*.fits.gz", "*.fz", "*.h5", "*.hdf5", "*.zarr"} <= patterns
    assert ".csv" in contributions.writers[0].filename_extensions
    m.validate_imports()  # raises if a python_name does not resolve


@pytest.mark.parametrize("python_name", python_names())
def test_python_name_points_straight_at_a_plugin_module(python_name):
    module_name, attribute = python_name.split(":")
    assert module_name.startswith("napari_anomalymatch._napari.")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_scripted_api_is_reachable_from_the_package():
    from napari_anomalymatch._napari.api import AnomalyMatchApp, open_plugin

    assert napari_anomalymatch.open_plugin is open_plugin
    assert napari_anomalymatch.AnomalyMatchApp is AnomalyMatchApp
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = napari_anomalymatch.nothing
