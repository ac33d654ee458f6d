"""The HTML report: self-contained, a cell per result, triage cards by kind, and the command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conformance.report import render
from conformance.verdict import results
from tests.results_fixtures import ROOT, made_up_doc

STATUSES = {
    ("area.one", "float32"): "passed",
    ("area.one", "float64"): "failed",
    ("area.two", "float32"): "expected_failure",
    ("area.rec-three", "float32"): "unexpectedly_passed",
    ("other.four", "float32"): "unsupported",
    ("other.five", "float32"): "error",
}


def _docs() -> list[dict]:
    return [made_up_doc("alpha", STATUSES), made_up_doc("beta", {("area.one", "float32"): "failed"})]


def test_report_is_one_self_contained_file() -> None:
    html = render.render(_docs())
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", html), "no external resource of any kind"
    assert html.count("<style>") == 1 and html.count("<script>") == 1
    assert "<holds>" not in html and "&lt;holds&gt; &amp; more" in html, "text is escaped"


def test_matrix_has_a_cell_per_result_and_marks_missing_ones() -> None:
    html = render.render(_docs())
    cells = re.findall(r'<td class="cell st-([a-z_]+)" data-engine="(\d)" data-status="([a-z_]*)"', html)
    # 5 rules x (alpha: float32, float64; beta: float32)
    assert len(cells) == 15
    alpha = sorted(status for cls, engine, status in cells if engine == "0" and status)
    assert alpha == sorted(STATUSES.values())
    assert sum(1 for cls, _, status in cells if cls == "none" and not status) == 15 - len(STATUSES) - 1


def test_triage_groups_cards_by_kind_then_rule() -> None:
    model = render.model(_docs())
    groups = {g["kind"]: [c["rule"]["id"] for c in g["cards"]] for g in model["triage"]}
    assert groups == {
        "error": ["other.five"],
        "value": ["area.one", "area.two"],
        "unexpectedly_passed": ["area.rec-three"],
    }
    card = model["triage"][1]["cards"][0]
    assert [(e["engine"]["label"], e["result"]["dtype"]) for e in card["entries"]] == [
        ("alpha", "float64"),
        ("beta", "float32"),
    ]
    assert len(model["shared"]) == 1, "the part every repro shares is held once"


def test_rates_per_area_and_level_exclude_unsupported() -> None:
    rates = render.model(_docs())["rates"]
    assert rates["area", "required", 0]["conforming"] == 1 and rates["area", "required", 0]["applicable"] == 3
    assert rates["area", "recommended", 0]["percent"] == 100.0
    assert rates["other", None, 0]["applicable"] == 1 and rates["other", None, 0]["percent"] == 0.0
    assert rates["", None, 1] == {
        "counts": {"failed": 1},
        "applicable": 1,
        "conforming": 0,
        "percent": 0.0,
        "total": 1,
    }


def test_ambiguous_backend_names_are_qualified() -> None:
    docs = [
        made_up_doc("torch", {}),
        made_up_doc("torch", {}, backend={"name": "torch", "version": "1", "adapter": "b:Broken"}),
    ]
    assert render._labels(docs) == ["torch (Adapter)", "torch (Broken)"]


def test_command_line_merges_results_files(tmp_path: Path) -> None:
    paths = []
    for i, doc in enumerate([*_docs(), made_up_doc("alpha", {("area.six", "float32"): "passed"})]):
        paths.append(tmp_path / f"{i}.json")
        results.write(paths[-1], doc)
    out = tmp_path / "out" / "index.html"
    command = [sys.executable, "-m", "conformance", "report", *map(str, paths), "-o", str(out)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "alpha (7 results), beta (1 results)" in proc.stdout
    assert out.read_text().count('class="rule-row"') == 6

    paths[0].write_text("{}")
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a conformance results file" in proc.stderr


def test_report_command_imports_neither_pytest_nor_hypothesis(tmp_path: Path) -> None:
    """The report renders from the results schema alone: a reviewer needs no test tooling to read a run."""
    path = tmp_path / "r.json"
    results.write(path, made_up_doc("alpha", STATUSES))
    probe = (
        "import sys, runpy; sys.argv = ['conformance', 'report', sys.argv[1], '-o', sys.argv[2]]\n"
        "try:\n    runpy.run_module('conformance', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pytest', 'hypothesis', '_pytest') if m in sys.modules))\n"
    )
    command = [sys.executable, "-c", probe, str(path), str(tmp_path / "r.html")]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("[]"), proc.stdout + proc.stderr


def test_report_names_what_is_wrong_in_a_results_file(tmp_path: Path) -> None:
    doc = made_up_doc("alpha", {("area.one", "float32"): "passed"})
    doc["results"][0]["status"] = "fine"
    del doc["gate"]
    path = tmp_path / "bad.json"
    results.write(path, doc)
    command = [sys.executable, "-m", "conformance", "report", str(path), "-o", str(tmp_path / "x.html")]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "'gate' is missing" in proc.stderr, proc.stderr
    doc["gate"] = {"holds": True, "levels": ["required"]}
    results.write(path, doc)
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "results[0]: unknown status 'fine'" in proc.stderr, proc.stderr


def test_scoreboard_and_findings_summarise_each_engine() -> None:
    html = render.render(_docs())
    board = html.split('<section id="scoreboard">', 1)[1].split("</section>", 1)[0]
    assert board.count("<tr data-engine=") == 2 and "<th>area</th><th>other</th><th>all</th>" in board
    findings = html.split('<section id="findings">', 1)[1].split("</section>", 1)[0]
    assert "alpha 1.0: 1 findings (1 bugs, 1 not reported upstream; 0 design), 1 checks explained; 2 unexplained" in (
        findings
    )
    assert "beta 1.0: 0 findings" in findings and 'id="finding-alpha/known-gap"' in findings
    assert "known gap" in findings and "values differ" in findings and "Traceback: boom" in findings


def test_readme_table_is_generated_from_results(tmp_path: Path) -> None:
    paths = []
    for i, doc in enumerate(_docs()):
        paths.append(tmp_path / f"{i}.json")
        results.write(paths[-1], doc)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- engines:begin -->\nold\n<!-- engines:end -->\nafter\n")
    command = [sys.executable, "-m", "conformance", "report", *map(str, paths), "-o", str(tmp_path / "i.html")]
    proc = subprocess.run([*command, "--readme", str(readme)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- engines:end -->\nafter\n")
    assert "| alpha | 1.0 | 1 bugs (1 not reported), 0 design | 1/4 | 1/1 | n/a | 1 | broken |" in text, text
