"""Import boundaries: the engine and the command line never load Qt or napari."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE_MODULES = [
    "napari_anomalymatch",
    "napari_anomalymatch.core.session",
    "napari_anomalymatch.core.evaluate",
    "napari_anomalymatch.core.scoring",
    "napari_anomalymatch.core.io.fits",
    "napari_anomalymatch.core.io.hdf5",
    "napari_anomalymatch.core.io.zarr",
    "napari_anomalymatch.core.report",
    "napari_anomalymatch.core.io.sharded",
    "napari_anomalymatch.core.scoretables",
    "napari_anomalymatch.core.distributed",
    "napari_anomalymatch.cli",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_imports_no_gui(module):
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'magicgui', "
        "'vispy') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_package_import_is_light():
    code = (
        "import sys, napari_anomalymatch\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'h5py', 'astropy', 'zarr') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dask_and_pyarrow_stay_optional_imports():
    code = (
        "import sys, napari_anomalymatch.core.distributed, napari_anomalymatch.core.scoretables\n"
        "import napari_anomalymatch.core.session, napari_anomalymatch.cli\n"
        "loaded = sorted(m for m in ('distributed', 'dask', 'pyarrow') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
