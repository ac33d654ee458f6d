"""The results file: its schema, its collection across pytest-xdist workers, loading, merging, exploration."""

from __future__ import annotations

import json
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conformance.draw.strategies import example_case
from conformance.verdict import explore, results
from tests.results_fixtures import BROKEN_RULE, PASSING_RULE, SPEC, broken_backend, made_up_doc, run_suite

TOP_LEVEL = {
    "schema",
    "schema_version",
    "suite_version",
    "spec_version",
    "created",
    "backend",
    "device",
    "dtypes",
    "profile",
    "seed",
    "shape_pool",
    "platform",
    "duration_s",
    "incomplete",
    "isolated",
    "gate",
    "summary",
    "repro_library",
    "results",
}
RESULT = {
    "id",
    "area",
    "level",
    "statement",
    "references",
    "dtype",
    "status",
    "missing",
    "expected",
    "convention",
    "examples_run",
    "duration_s",
    "engine_s",
    "peak_rss_mb",
    "example",
    "example_script",
    "failure",
    "error",
}
FAILURE = {"kind", "message", "line", "case", "counterexample", "script", "repro_path", "repro", "replay"}


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict, Path]:
    """A serial run of a broken adapter, with a JUnit XML file beside its results."""
    tmp = tmp_path_factory.mktemp("broken")
    return (*run_suite(tmp, broken_backend(), f"--junitxml={tmp / 'junit.xml'}"), tmp)


def _comparable(doc: dict) -> list[dict]:
    """A run's results without what depends on where it wrote its files."""
    keep = [{k: r[k] for k in ("id", "dtype", "status", "examples_run", "failure")} for r in doc["results"]]
    for r in keep:
        if r["failure"]:
            r["failure"] = {**r["failure"], "repro_path": None, "repro": None}
    return keep


def test_schema_of_a_real_run(broken_run: tuple[int, str, dict, Path], rules: dict) -> None:
    _, output, doc, _ = broken_run
    assert doc is not None, output
    assert set(doc) == TOP_LEVEL
    assert (doc["schema"], doc["schema_version"]) == (results.SCHEMA, results.SCHEMA_VERSION)
    assert set(doc["backend"]) == {"name", "version", "adapter"} and doc["backend"]["adapter"] == broken_backend()
    assert set(doc["summary"]) == set(results.STATUSES) and sum(doc["summary"].values()) == len(doc["results"])
    by_case = {(r["id"], r["dtype"]): r for r in doc["results"]}
    assert set(by_case) == {(rid, dtype) for rid in (BROKEN_RULE, PASSING_RULE) for dtype in ("float32", "float64")}
    for r in doc["results"]:
        assert set(r) == RESULT
        assert r["statement"] == rules[r["id"]].statement and r["examples_run"] >= 1
        assert r["status"] == ("failed" if r["id"] == BROKEN_RULE else "passed")
    failure = by_case[BROKEN_RULE, "float32"]["failure"]
    assert set(failure) == FAILURE and failure["kind"] in results.KINDS
    assert failure["line"] in failure["script"] and failure["script"] in failure["repro"]["script"]
    repro = failure["repro"]["head"] + doc["repro_library"] + failure["repro"]["script"]
    assert repro == Path(failure["repro_path"]).read_text(encoding="utf-8"), "the parts make the repro file"
    assert "--dtypes=float32" in failure["replay"] and BROKEN_RULE in failure["replay"]


def test_counterexample_is_the_failing_case(broken_run: tuple[int, str, dict, Path], rules: dict) -> None:
    """The recorded counterexample, as a spec example, rebuilds exactly the case in the failing script."""
    rule = rules[BROKEN_RULE]
    failure = next(r["failure"] for r in broken_run[2]["results"] if r["failure"])
    case = example_case(rule.given, explore.spec_example(rule, failure["counterexample"]), "float32")
    for name, array in case.arrays.items():
        assert f"{name.upper()} = np.array({array.ravel().tolist()!r}" in failure["script"]


def test_junitxml_keeps_working(broken_run: tuple[int, str, dict, Path]) -> None:
    cases = list(ET.parse(broken_run[3] / "junit.xml").getroot().iter("testcase"))
    assert len(cases) == 4 and sum(1 for c in cases if c.find("failure") is not None) == 2


def test_xdist_records_the_same_results(broken_run: tuple[int, str, dict, Path], tmp_path: Path) -> None:
    """Under -n 2 the controller gets every record from the workers, identical to a serial run."""
    _, output, doc = run_suite(tmp_path, broken_backend(), "-n", "2")
    assert doc is not None, output
    assert _comparable(doc) == _comparable(broken_run[2])


def test_load_rejects_other_files(tmp_path) -> None:
    path = tmp_path / "r.json"
    for content, message in [
        ("{", "Expecting"),
        (json.dumps({"schema": "something else"}), "not a conformance results file"),
        (json.dumps(made_up_doc("x", {}, schema_version=99)), "schema version 99"),
    ]:
        path.write_text(content)
        with pytest.raises(results.ResultsError, match=message):
            results.load(path)
    results.write(path, made_up_doc("x", {("a.b", "float32"): "passed"}))
    assert results.load(path)["backend"]["name"] == "x"


def test_merge_combines_runs_of_one_engine_and_keeps_engines_apart() -> None:
    f32 = made_up_doc("eng", {("a.one", "float32"): "passed", ("a.two", "float32"): "failed"})
    f64 = made_up_doc("eng", {("a.one", "float64"): "passed", ("a.two", "float32"): "passed"})
    other = made_up_doc("other", {("a.one", "float32"): "unsupported"})
    merged = results.merge([f32, other, f64])
    assert [d["backend"]["name"] for d in merged] == ["eng", "other"]
    eng = merged[0]
    assert eng["dtypes"] == ["float32", "float64"]
    assert [(r["id"], r["dtype"], r["status"]) for r in eng["results"]] == [
        ("a.one", "float32", "passed"),
        ("a.one", "float64", "passed"),
        ("a.two", "float32", "passed"),  # the later run wins
    ]
    assert eng["summary"]["passed"] == 3 and eng["summary"]["failed"] == 0
    assert eng["gate"]["holds"] and eng["gate"]["broken_by"] == [], "the verdict is the merged results'"
    assert f32["dtypes"] == ["float32"] and len(f32["results"]) == 2, "merge must not modify its inputs"


def test_explore_writes_new_counterexamples_as_spec_examples(rules: dict, tmp_path) -> None:
    rule = rules[BROKEN_RULE]
    known = example_case(rule.given, rule.examples[0], "float32")
    new = {"dtype": "float32", "values": {"a": [[0.5, -1.0]], "b": [2.0]}, "shapes": {}, "result": [1, 2]}
    old = explore.counterexample(known)
    failure = {"kind": "shape", "message": "shape is (2, 1), expected (1, 2)"}
    path = tmp_path / "explore.toml"
    count = explore.write(path, "test", [(rule, {**failure, "counterexample": c}) for c in (new, old, new)])
    assert count == 1, "the rule's own example and the repeat are not new"
    entries = tomllib.loads("examples = [\n" + path.read_text() + "]")["examples"]
    assert entries == [{"values": {"a": [[0.5, -1.0]], "b": [2.0]}}]
    case = example_case(rule.given, entries[0], "float32")
    assert np.array_equal(case.arrays["a"], [[0.5, -1.0]]) and case.result == (1, 2)


def test_explore_gives_zero_size_arrays_by_shape(rules: dict) -> None:
    rule = rules[BROKEN_RULE]
    data = {"dtype": "float64", "values": {"a": [1.5]}, "shapes": {"b": [0, 1]}, "result": [0, 1]}
    entry = explore.spec_example(rule, data)
    assert entry == {"shapes": {"b": [0, 1]}, "values": {"a": [1.5]}}
    assert explore.toml_inline(entry) == "{ shapes = { b = [0, 1] }, values = { a = [1.5] } }"


def test_exploration_makes_the_gate_remember(tmp_path: Path) -> None:
    """A thorough run writes its new counterexample; pasted into the rule's examples, the gate fails on it first."""
    raw = next(r for r in tomllib.loads(SPEC.read_text())["rule"] if r["id"] == BROKEN_RULE)
    fields = "\n".join(f"{key} = {explore.toml_inline(value)}" for key, value in raw.items() if key != "examples")
    spec = tmp_path / "one.toml"
    spec.write_text(f'area = "broadcasting"\n[[rule]]\n{fields}\n')
    found = tmp_path / "found.toml"
    thorough = ("--conformance-profile=thorough", "--hypothesis-seed=0", "--dtypes=float64", f"--explore-out={found}")
    _, output, doc = run_suite(tmp_path, broken_backend(), *thorough, rules=(BROKEN_RULE,), spec=spec)
    assert "explore: 1 new examples" in output, output
    entry = [line for line in found.read_text().splitlines() if line.startswith("{")]
    spec.write_text(spec.read_text() + f"examples = [{entry[0]}]\n")
    _, output, remembered = run_suite(tmp_path, broken_backend(), "--dtypes=float64", rules=(BROKEN_RULE,), spec=spec)
    [before], [after] = doc["results"], remembered["results"]
    assert after["status"] == "failed" and after["examples_run"] == 1, "the explicit example fails first"
    assert after["failure"]["counterexample"] == before["failure"]["counterexample"]


def test_paths_under_the_checkout_are_recorded_relative() -> None:
    """An engine's message may quote its own traceback: results written from a checkout name no machine path."""
    from conformance.pytest_plugin.collector import relative

    assert relative(f'File "{Path.cwd()}/.venv/lib/x.py", line 3') == 'File ".venv/lib/x.py", line 3'
    assert relative("elsewhere: /opt/x.py") == "elsewhere: /opt/x.py"


def test_committed_reports_name_no_machine_path() -> None:
    root = Path(__file__).resolve().parents[1] / "reports"
    for path in [*root.glob("*.html"), *root.glob("results/*.json")]:
        text = path.read_text(encoding="utf-8")
        assert not any(prefix in text for prefix in (str(root.parent) + "/", "/tmp/", "/root/")), path
