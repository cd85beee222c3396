"""The README and docs/: tables rendered from benchmarks/results/, links that resolve, the hub's summary."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _render_docs():
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "benchmarks" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_docs", module)
    spec.loader.exec_module(module)
    return module


render_docs = _render_docs()


def test_documents_match_the_result_files():
    stale = render_docs.stale(render_docs.documents(ROOT))
    assert not stale, f"{[str(p) for p in stale]} out of date: run python benchmarks/render_docs.py"


def test_every_result_block_is_rendered_somewhere():
    names = {m["name"] for path in DOCUMENTS for m in render_docs.BLOCK.finditer(path.read_text())}
    assert names == set(render_docs.BLOCKS)


def test_check_finds_a_figure_typed_into_a_block(tmp_path):
    document = tmp_path / "docs" / "benchmarks.md"
    document.parent.mkdir()
    shutil.copy(ROOT / "docs" / "benchmarks.md", document)
    results = tmp_path / "benchmarks" / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    assert render_docs.stale([document], results) == []
    text = document.read_text()
    block = next(render_docs.BLOCK.finditer(text))
    digit = re.search(r"\d", text[block.start("body"):]).start() + block.start("body")
    document.write_text(text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:])
    assert render_docs.stale([document], results) == [document]
    rendered = render_docs.render(document.read_text(), document, results)
    assert rendered == text


def test_a_block_without_its_result_file_names_the_file(tmp_path):
    document = tmp_path / "README.md"
    document.write_text("<!-- results:speed -->\n<!-- /results -->\n")
    with pytest.raises(FileNotFoundError, match="speed.json"):
        render_docs.render(document.read_text(), document, tmp_path / "results")


def test_an_unknown_block_is_refused_with_the_known_names(tmp_path):
    document = tmp_path / "README.md"
    with pytest.raises(KeyError, match="quality-summary"):
        render_docs.render("<!-- results:qualty -->\n<!-- /results -->\n", document)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_point_to_files_that_exist(document):
    targets = [t for t in LINK.findall(document.read_text()) if not re.match(r"[a-z]+:|#", t)]
    assert targets, f"{document} has no relative links to check"
    missing = [t for t in targets if not (document.parent / t.split("#")[0]).exists()]
    assert not missing, f"{document}: links to missing files {missing}"


def test_readme_is_short_and_opens_with_the_hub_summary():
    tomllib = pytest.importorskip("tomllib")
    readme = (ROOT / "README.md").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert len(readme.splitlines()) <= 200
    assert readme.split("\n\n")[1].strip() == project["description"]
    assert "Framework :: napari" in project["classifiers"]
    assert {"Homepage", "Source Code", "Documentation", "Bug Tracker"} <= set(project["urls"])


def test_readme_shows_the_two_set_up_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up on a fresh machine")[1].split("\n## ")[0]
    assert re.findall(r"```bash\n(.*?)\n```", setup) == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text().splitlines()


def test_review_latency_shows_the_gaps_during_a_cycle_once_recorded(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    path = results / "review_latency.json"
    data = json.loads(path.read_text())
    data["load_average"] = {"before": [1.25, 1.0, 0.5], "after": [2.0, 1.5, 1.0]}
    for entry in data["results"]:
        entry["training_cycle"] = {"timer_ms": 50, "run_seconds": 61.0, "median_gap_ms": 50.1,
                                   "p95_gap_ms": 60.2, "max_gap_ms": 187.5}
    path.write_text(json.dumps(data))
    text = render_docs.review_latency(render_docs.Links(tmp_path / "README.md", results))
    assert "| 64 px | 61 | 50.1 | 60.2 | 187.5 |" in text
    assert "before: 1.2, 1.0, 0.5" in text


def test_readme_key_table_lists_every_review_key():
    from napari_anomalymatch._napari.keys import REVIEW_KEYS

    readme = (ROOT / "README.md").read_text()
    table = readme.split("| key | action |")[1].split("\n\n")[0]
    spelled = {"Right": "→", "Left": "←"}
    missing = [key for key in REVIEW_KEYS if spelled.get(key, key) not in table]
    assert not missing, f"README's key table does not mention {missing}"
