"""``python -m conformance compare``: every kind of change between two runs, its text, HTML and JSON, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.__main__ import main
from conformance.verdict import results
from conformance.verdict.compare import compare, html, kind, text
from tests.results_fixtures import ROOT, made_up_doc

OLD = {
    ("a.fails", "float32"): "passed",
    ("b.fails", "float32"): "expected_failure",
    ("c.fails", "float64"): "unexpectedly_passed",
    ("d.fails", "float32"): "passed",
    ("e.fixed", "float32"): "failed",
    ("f.fixed", "float32"): "expected_failure",
    ("g.fixed", "float32"): "crashed",
    ("h.other", "float32"): "passed",
    ("i.other", "float32"): "unsupported",
    ("j.other", "float32"): "failed",
    ("k.same", "float32"): "passed",
    ("k.same", "float64"): "failed",
    ("l.gone", "float32"): "passed",
}
NEW = {
    **OLD,
    ("a.fails", "float32"): "failed",
    ("b.fails", "float32"): "error",
    ("c.fails", "float64"): "timeout",
    ("d.fails", "float32"): "expected_failure",
    ("e.fixed", "float32"): "passed",
    ("f.fixed", "float32"): "passed",
    ("g.fixed", "float32"): "expected_failure",
    ("h.other", "float32"): "unsupported",
    ("i.other", "float32"): "passed",
    ("j.other", "float32"): "error",
    ("m.added", "float64"): "failed",
}
del NEW["l.gone", "float32"]


def _finding(key: str, title: str = "known") -> dict:
    return {"id": key, "title": title, "class": "bug", "upstream": "not reported"}


def _docs() -> tuple[dict, dict]:
    old = made_up_doc("alpha", OLD, created="2025-01-01T00:00:00+00:00")
    new = made_up_doc("alpha", NEW, created="2025-02-01T00:00:00+00:00")
    new["backend"] = {**new["backend"], "version": "1.1"}
    old["gate"]["findings"] = [_finding("alpha/b-fails"), _finding("alpha/spins"), _finding("alpha/gone")]
    new["gate"]["findings"] = [
        _finding("alpha/b-fails", title="reworded"),
        _finding("alpha/spins"),
        _finding("alpha/d-fails", title="new <gap>"),
    ]
    return old, new


def _rows(changes) -> list[tuple[str, str, str | None, str | None]]:
    return [(c.rule, c.dtype, c.old, c.new) for c in changes]


def test_every_kind_of_change_is_sorted_into_its_section() -> None:
    c = compare(*_docs())
    assert _rows(c.newly_failing) == [
        ("a.fails", "float32", "passed", "failed"),
        ("b.fails", "float32", "expected_failure", "error"),
        ("c.fails", "float64", "unexpectedly_passed", "timeout"),
        ("d.fails", "float32", "passed", "expected_failure"),
    ]
    assert _rows(c.newly_passing) == [
        ("e.fixed", "float32", "failed", "passed"),
        ("f.fixed", "float32", "expected_failure", "passed"),
        ("g.fixed", "float32", "crashed", "expected_failure"),
    ]
    assert _rows(c.changed) == [
        ("h.other", "float32", "passed", "unsupported"),
        ("i.other", "float32", "unsupported", "passed"),
        ("j.other", "float32", "failed", "error"),
    ]
    assert _rows(c.added) == [("m.added", "float64", None, "failed")]
    assert _rows(c.gone) == [("l.gone", "float32", "passed", None)]
    assert [e.id for e in c.findings_added] == ["alpha/d-fails"]
    assert [e.id for e in c.findings_gone] == ["alpha/gone"]
    assert c.unchanged == 2
    assert (c.old.version, c.new.version, c.old.holds, c.new.holds) == ("1.0", "1.1", False, False)


def test_each_change_says_why_from_the_side_that_has_a_reason() -> None:
    c = compare(*_docs())
    why = {ch.rule: ch.detail for ch in (*c.newly_failing, *c.newly_passing, *c.changed, *c.added)}
    assert why["a.fails"] == "[value] values differ", "the new failure"
    assert why["b.fails"] == "Traceback: boom", "the first line of the error"
    assert why["e.fixed"] == "[value] values differ", "what was fixed: the old failure"
    assert why["h.other"] == why["i.other"] == "lacks higher_order", "the capability, dropped or declared"
    assert why["c.fails"] == "", "nothing recorded, nothing said"


@pytest.mark.parametrize(
    ("old", "new", "section"),
    [
        ("passed", "crashed", "newly_failing"),
        ("unexpectedly_passed", "expected_failure", "newly_failing"),
        ("timeout", "unexpectedly_passed", "newly_passing"),
        ("unsupported", "failed", "changed"),
        ("not_run", "passed", "changed"),
        ("expected_failure", "unsupported", "changed"),
        ("crashed", "timeout", "changed"),
    ],
)
def test_kind_of_a_status_change(old: str, new: str, section: str) -> None:
    assert kind(old, new) == section


def test_text_has_a_header_a_section_per_kind_and_counts() -> None:
    out = text(compare(*_docs(), "before.json", "after.json"))
    lines = out.splitlines()
    assert (
        lines[0] == "old: alpha 1.0 on cpu, created 2025-01-01T00:00:00+00:00 (before.json): gate broken (3 breaking)"
    )
    assert lines[1].startswith("new: alpha 1.1 on cpu, created 2025-02-01T00:00:00+00:00 (after.json): gate broken")
    assert "newly failing (4):" in lines and "  a.fails[float32]: passed -> failed  [value] values differ" in lines
    assert "  i.other[float32]: unsupported -> passed  lacks higher_order" in lines
    assert "  m.added[float64]: absent -> failed  [value] values differ" in lines
    assert "  l.gone[float32]: passed -> absent" in lines
    assert "findings added (1):" in lines and "  alpha/d-fails (bug, not reported): new <gap>" in lines
    assert "  alpha/gone (bug, not reported): known" in lines
    assert lines[-1] == (
        "newly failing 4, newly passing 3, status changed otherwise 3, rules added 1, rules gone 1, "
        "findings added 1, findings gone 1; unchanged 2"
    )


def test_sections_with_nothing_are_omitted_and_no_change_is_one_line() -> None:
    old = made_up_doc("alpha", {("a.one", "float32"): "passed", ("a.two", "float32"): "failed"})
    new = made_up_doc("alpha", {("a.one", "float32"): "passed", ("a.two", "float32"): "passed"})
    out = text(compare(old, new))
    assert "newly passing (1):" in out and "newly failing" not in out and "rules added" not in out
    same = text(compare(old, old)).splitlines()
    assert len(same) == 3 and same[2].startswith("nothing changed: the same status for all 2 results")


def test_html_is_self_contained_and_shows_the_changes() -> None:
    page = html(compare(*_docs(), "before.json", "after.json"))
    assert not re.search(r"<(link|img|iframe|script)\b|\bsrc=|@import|url\(", page), "nothing external"
    assert page.count("<style>") == 1 and ".st.st-passed" in page, "the report's CSS, inlined"
    sections = re.findall(r'data-section="([a-z_]+)"', page)
    assert sections == ["newly_failing", "newly_passing", "changed", "added", "gone", "findings_added", "findings_gone"]
    for rule in ("a.fails", "d.fails", "e.fixed", "h.other", "m.added", "l.gone"):
        assert f'data-rule="{rule}"' in page
    assert 'data-finding="alpha/gone"' in page
    assert "new &lt;gap&gt;" in page and "<gap>" not in page, "text is escaped"
    assert "alpha <small>1.0</small>" in page and "alpha <small>1.1</small>" in page
    old, _ = _docs()
    assert 'id="nothing-changed"' in html(compare(old, old)) and "data-section" not in html(compare(old, old))


def _write(tmp_path: Path) -> tuple[str, str]:
    old, new = _docs()
    results.write(tmp_path / "old.json", old)
    results.write(tmp_path / "new.json", new)
    return str(tmp_path / "old.json"), str(tmp_path / "new.json")


def test_exit_code_is_zero_unless_asked_to_fail_on_new_failures(tmp_path: Path, capsys) -> None:
    old, new = _write(tmp_path)
    assert main(["compare", old, new]) == 0
    assert "newly failing (4):" in capsys.readouterr().out
    assert main(["compare", old, new, "--fail-on-new-failures"]) == 1
    assert main(["compare", old, old, "--fail-on-new-failures"]) == 0
    fixed = tmp_path / "fixed.json"
    results.write(fixed, made_up_doc("alpha", {**OLD, ("e.fixed", "float32"): "passed"}))
    assert main(["compare", old, str(fixed), "--fail-on-new-failures"]) == 0, "newly passing only"
    assert "newly passing (1):" in capsys.readouterr().out


def test_html_and_json_outputs(tmp_path: Path, capsys) -> None:
    old, new = _write(tmp_path)
    page, data = tmp_path / "out" / "compare.html", tmp_path / "out" / "compare.json"
    assert main(["compare", old, new, "--html", str(page), "--json", str(data)]) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    assert 'data-rule="a.fails"' in page.read_text()
    doc = json.loads(data.read_text())
    assert doc["schema"] == "autograd-conformance-compare" and doc["schema_version"] == 1
    assert doc["old"]["name"] == old and doc["new"]["version"] == "1.1" and doc["new"]["holds"] is False
    assert doc["counts"]["newly_failing"] == 4 and doc["unchanged"] == 2
    assert doc["newly_failing"][0] == {
        "rule": "a.fails",
        "dtype": "float32",
        "level": "required",
        "old": "passed",
        "new": "failed",
        "detail": "[value] values differ",
    }
    assert doc["findings_added"][0] == {
        "id": "alpha/d-fails",
        "title": "new <gap>",
        "klass": "bug",
        "upstream": "not reported",
    }


def test_usage_errors_name_the_file(tmp_path: Path, capsys) -> None:
    old, new = _write(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    missing = tmp_path / "none.json"
    for argv, named in (([bad, new], bad), ([old, bad], bad), ([old, missing], missing)):
        with pytest.raises(SystemExit) as info:
            main(["compare", *map(str, argv)])
        assert info.value.code == 2 and f"error: {named}: " in capsys.readouterr().err
    other = tmp_path / "other.json"
    results.write(other, made_up_doc("beta", NEW))
    with pytest.raises(SystemExit) as info:
        main(["compare", old, str(other)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"{other} is a run of backend 'beta'" in err and "--allow-different-backends" in err
    assert main(["compare", old, str(other), "--allow-different-backends"]) == 0
    assert "new: beta 1.0" in capsys.readouterr().out


def test_compare_command_imports_neither_pytest_nor_hypothesis(tmp_path: Path) -> None:
    """Like the report, a comparison reads the results schema alone: a reviewer needs no test tooling."""
    old, new = _write(tmp_path)
    probe = (
        "import sys, runpy; sys.argv = ['conformance', 'compare', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('conformance', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pytest', 'hypothesis', '_pytest') if m in sys.modules))\n"
    )
    command = [sys.executable, "-c", probe, old, new, "--html", str(tmp_path / "c.html")]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("[]"), proc.stdout + proc.stderr
