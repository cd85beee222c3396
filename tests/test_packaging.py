"""The package ships its napari manifest, registered under the napari.manifest entry point."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_entry_point_resolves_to_the_yaml():
    found = [ep for ep in entry_points(group="napari.manifest") if ep.name == "napari-anomalymatch"]
    assert found, "napari-anomalymatch is not registered under napari.manifest"
    assert found[0].value == "napari_anomalymatch:napari.yaml"


def test_npe2_validates_the_installed_manifest():
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-anomalymatch"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr).lower()


@pytest.mark.slow
def test_wheel_contains_the_manifest_and_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True)
    wheel = next(tmp_path.glob("napari_anomalymatch-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "napari_anomalymatch/napari.yaml" in names
        entry_points_txt = next(n for n in names if n.endswith("entry_points.txt"))
        text = archive.read(entry_points_txt).decode()
    assert "anomalymatch = napari_anomalymatch.cli:main" in text
    assert "napari-anomalymatch = napari_anomalymatch:napari.yaml" in text


def test_the_napari_extra_brings_a_qt_binding_and_the_demo_installs_it():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    qt = ("napari[pyqt6]", "napari[pyqt5]", "napari[pyside6]", "napari[all]", "pyqt6", "pyqt5", "pyside6")
    for extra in ("napari", "all"):
        assert any(need.lower().startswith(qt) for need in extras[extra]), f"[{extra}] has no Qt binding"
    makefile = (ROOT / "Makefile").read_text()
    assert '-e ".[demo,napari]"' in makefile  # `make demo` opens napari: it needs all the panels need
