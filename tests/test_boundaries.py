"""Import boundaries: the engine and the command line never load Qt or napari."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE_MODULES = [
    "napari_anomalymatch",
    "napari_anomalymatch.core.session",
    "napari_anomalymatch.core.evaluation.protocol",
    "napari_anomalymatch.core.scoring.run",
    "napari_anomalymatch.core.io.fits",
    "napari_anomalymatch.core.io.hdf5",
    "napari_anomalymatch.core.io.zarr",
    "napari_anomalymatch.core.evaluation.report",
    "napari_anomalymatch.core.review.queue",
    "napari_anomalymatch.core.review.display",
    "napari_anomalymatch.core.review.tiles",
    "napari_anomalymatch.core.evaluation.testset",
    "napari_anomalymatch.core.io.lazy",


    "napari_anomalymatch.core.io.sharded",
    "napari_anomalymatch.core.scoring.tables",
    "napari_anomalymatch.core.scoring.cluster",
    "napari_anomalymatch.core.discovery.search",
    "napari_anomalymatch.cli",
]
GUI_PACKAGES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy", "superqt",
                "psygnal")
SOURCE = Path(__file__).resolve().parents[1] / "src" / "napari_anomalymatch"


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


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_plugin_package_imports_gui_libraries():
    offenders = {}
    for path in SOURCE.rglob("*.py"):
        if "_napari" in path.relative_to(SOURCE).parts:
            continue
        gui = _imported_roots(path) & set(GUI_PACKAGES)
        if gui:
            offenders[str(path.relative_to(SOURCE))] = sorted(gui)
    assert not offenders, offenders
    assert any("qtpy" in _imported_roots(p) for p in (SOURCE / "_napari").glob("*.py"))  # the scan sees imports


def test_plugin_imports_go_one_way():
    for path in (SOURCE / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert "_napari" not in node.module and node.module != "cli", (path, node.module)


def test_dask_and_pyarrow_stay_optional_imports():
    code = (
        "import sys, napari_anomalymatch.core.scoring.cluster, napari_anomalymatch.core.scoring.tables\n"
        "import napari_anomalymatch.core.session, napari_anomalymatch.cli\n"
        "loaded = sorted(m for m in ('distributed', 'dask', 'pyarrow') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _module_name(path: Path) -> str:
    parts = ("napari_anomalymatch", *path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imported_modules(path: Path, known: set[str], type_checking: bool = False) -> set[str]:
    """The package's modules ``path`` imports anywhere (module level or in a function).

    Imports under ``if TYPE_CHECKING:`` never run and are left out, unless ``type_checking``.
    """
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text())]
    while pending:
        node = pending.pop()
        if _is_type_checking_block(node) and not type_checking:
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {target} | {f"{target}.{alias.name}" for alias in node.names}
        pending.extend(ast.iter_child_nodes(node))
    return (found & known) - {name}


def _import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other round a circle (Tarjan's strongly connected parts)."""
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        order[module] = lowest[module] = len(order)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in order:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], order[imported])
        if lowest[module] == order[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return circles


def test_import_circles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _import_circles(graph) == [["a", "b", "c"]]


def test_no_import_circles():
    """Not even one held apart by ``TYPE_CHECKING``: a module that names another's type for its
    arguments and is imported back by it is two modules calling into each other."""
    paths = {_module_name(p): p for p in SOURCE.rglob("*.py")}
    graph = {name: _imported_modules(path, set(paths), type_checking=True) for name, path in paths.items()}
    assert sum(map(len, graph.values())) > 100  # the scan sees the package's imports
    assert _import_circles(graph) == []


def _function_level_imports(path: Path) -> list[ast.ImportFrom]:
    """The imports of the package's own modules made inside a function of ``path``."""
    found = []
    for function in ast.walk(ast.parse(path.read_text())):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [node for node in ast.walk(function) if isinstance(node, ast.ImportFrom)
                      and (node.level or (node.module or "").startswith("napari_anomalymatch"))]
    return found


def _says_why_deferred(lines: list[str], node: ast.ImportFrom) -> bool:
    """A comment with "defer" on the import, or on the line above the run of imports it is in."""
    first = node.lineno - 1
    while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
        first -= 1
    above = lines[first - 1].strip() if first else ""
    comments = [above] if above.startswith("#") else []
    comments += [line.partition("#")[2] for line in lines[node.lineno - 1:node.end_lineno]]
    return any("defer" in comment.lower() for comment in comments)


def test_function_level_imports_say_why():
    """The package's own modules are imported at the top, where a reader sees what a module needs;
    inside a function only to defer a heavy dependency, saying so."""
    unexplained = []
    for path in sorted(SOURCE.rglob("*.py")):
        lines = path.read_text().splitlines()
        unexplained += [f"{path.relative_to(SOURCE)}:{node.lineno}: {lines[node.lineno - 1].strip()}"
                        for node in _function_level_imports(path) if not _says_why_deferred(lines, node)]
    assert unexplained == []


def test_a_function_level_import_without_a_reason_is_found(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("def f():\n    from .a import b\n\n\ndef g():\n    # deferred: loads torch\n"
                      "    from .c import d\n    from .e import f\n\n\ndef h():\n    import os\n")
    lines = module.read_text().splitlines()
    assert [_says_why_deferred(lines, node) for node in _function_level_imports(module)] == [False, True, True]


# The engine's parts, bottom to top: a module may import only its own layer and those below.
# Shared ground is every top-level core module except the session, with core.io, core.config and
# core.labels; the session layer is the session handle and its folder (core.folder), which hand
# learning, scoring and discovery their parts.
CORE_LAYERS = ("ground", "learning", "scoring", "discovery", "session", "review", "evaluation")
SESSION_PACKAGES = ("napari_anomalymatch.core.session", "napari_anomalymatch.core.folder")


def _core_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["napari_anomalymatch", "core"]:
        return None
    if module in SESSION_PACKAGES or module.startswith(tuple(f"{name}." for name in SESSION_PACKAGES)):
        return "session"
    if len(parts) > 3 and parts[2] in CORE_LAYERS:
        return parts[2]
    return "ground"  # core itself, its top-level modules, core.io, core.config and core.labels


def test_core_layers_import_downwards_only():
    paths = {_module_name(p): p for p in (SOURCE / "core").rglob("*.py")}
    assert {_core_layer(name) for name in paths} == set(CORE_LAYERS)  # every layer is seen
    upward = sorted(
        (name, imported)
        for name, path in paths.items()
        for imported in _imported_modules(path, set(paths))
        if CORE_LAYERS.index(_core_layer(imported)) > CORE_LAYERS.index(_core_layer(name)))
    assert upward == []


# Issue 32: modules short enough to read whole, a thin session handle, and few modules at the top
# of core (each job in the wing that its folder names).
CORE_MODULE_LINES = 450
SESSION_LINES = 300
TOP_LEVEL_CORE_MODULES = 12


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_core_modules_stay_short():
    long = {str(path.relative_to(SOURCE)): _lines(path) for path in sorted((SOURCE / "core").rglob("*.py"))
            if _lines(path) > CORE_MODULE_LINES}
    assert long == {}, f"split these along a seam (at most {CORE_MODULE_LINES} lines each): {long}"


def test_the_session_is_a_thin_handle():
    lines = _lines(SOURCE / "core" / "session.py")
    assert lines < SESSION_LINES, (f"core/session.py has {lines} lines; its verbs belong in the wings "
                                   "(learning, scoring, discovery), taking the parts they need")


def test_few_modules_sit_directly_in_core():
    top = sorted(path.name for path in (SOURCE / "core").glob("*.py") if path.name != "__init__.py")
    assert len(top) <= TOP_LEVEL_CORE_MODULES, f"move some into the wing their job names: {top}"


def test_the_wings_below_the_session_never_name_it():
    """Not even for a type under ``TYPE_CHECKING``: learning, scoring and discovery take the parts
    they need (collection, normaliser, runs, model), never the ``Session``."""
    paths = {_module_name(p): p for p in (SOURCE / "core").rglob("*.py")}
    below = ("learning", "scoring", "discovery")
    naming = sorted(
        (name, imported)
        for name, path in paths.items() if _core_layer(name) in below
        for imported in _imported_modules(path, set(paths), type_checking=True)
        if _core_layer(imported) == "session")
    assert naming == []
