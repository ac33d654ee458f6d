"""Findings: the file format, narrow excuses in real runs, and every shipped engine's results explained."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance import templates
from conformance.verdict import findings
from tests.results_fixtures import PASSING_RULE, ROOT, run_suite

RULE = "broadcasting.grad.sum-to-input-shape"
GAP = "tests.broken.broadcasting:MulRefusesEmpty"
GAP_AND_BUG = "tests.broken.broadcasting:MulRefusesEmptyAndDoublesZeroD"
FINDING = f"""
engine = "ENGINE"
versions = ["2.13.0"]

[[finding]]
id = "mul-refuses-empty"
title = "mul raises on a size-0 operand"
class = "bug"
upstream = "not reported"
repro = '''
import torch
torch.ones(0) * torch.ones(1)
'''

[[finding.excuse]]
rules = ["{RULE}"]
kinds = ["unexpected_error"]
when = "EMPTY"
"""


def write(tmp_path: Path, text: str, engine: str = "torch") -> Path:
    path = tmp_path / "findings.toml"
    path.write_text(textwrap.dedent(text).replace("ENGINE", engine))
    return path


@pytest.fixture(scope="module")
def rules() -> list:
    return templates.load()


def load(path: Path, rules: list) -> findings.Findings:
    return findings.load(path, rules, templates.draws_arrays)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (f'rules = ["{RULE}"]', 'rules = ["broadcasting.*"]', "is a pattern: name each rule"),
        (f'rules = ["{RULE}"]', 'rules = ["broadcasting.gone"]', "no rule of the suite"),
        ('kinds = ["unexpected_error"]', 'kinds = ["adapter"]', "must list kinds from"),
        ('kinds = ["unexpected_error"]', "", "must list kinds from"),
        ('when = "EMPTY"', 'when = "np.load(X)"', "np.load is not in the language"),
        ('when = "EMPTY"', 'when = "Z > 0"', "unknown name 'Z'"),
        ('when = "EMPTY"', 'dtypes = ["bfloat16"]', "must list dtypes the rules run in"),
        ('class = "bug"', 'class = "feature"', "'class': must be one of"),
        ('upstream = "not reported"', 'upstream = "reported"', "needs the issue, PR or docs URL"),
        ('id = "mul-refuses-empty"', 'id = "Mul Refuses"', "lower-kebab"),
        ('title = "mul raises on a size-0 operand"', 'title = ""', "one line"),
        ("repro = '''", "reproduction = '''", "unknown field"),
        ('engine = "torch"', "", "a findings file has `engine = NAME`"),
        ('versions = ["2.13.0"]', "", "must list the engine versions"),
    ],
)
def test_a_malformed_findings_file_names_the_finding_and_field(
    tmp_path: Path, rules: list, old: str, new: str, message: str
) -> None:
    text = FINDING.replace("ENGINE", "torch")
    assert old in text
    with pytest.raises(findings.FindingsError, match=message.replace("(", r"\(").replace("*", r"\*")):
        load(write(tmp_path, text.replace(old, new)), rules)


def test_an_entry_without_a_finding_is_refused(tmp_path: Path, rules: list) -> None:
    """The expected-failures format (one rule, one reason, no root cause) is no longer accepted."""
    path = write(tmp_path, f'[[expected]]\nrule = "{RULE}"\nreason = "known"\n')
    with pytest.raises(findings.FindingsError, match="unknown keys \\['expected'\\]"):
        load(path, rules)


def test_a_condition_needs_a_rule_that_draws_arrays(tmp_path: Path, rules: list) -> None:
    text = FINDING.replace(RULE, "properties.model.stateful")
    with pytest.raises(findings.FindingsError, match="draws no arrays"):
        load(write(tmp_path, text), rules)


def test_excuses_by_rule_kind_and_condition(tmp_path: Path, rules: list) -> None:
    known = load(write(tmp_path, FINDING), rules)
    (excuse,) = known.excuses(RULE, "float32")
    assert known.excuses(PASSING_RULE.replace("sum-to-input-shape", "implicit-sum"), "float32") == ()
    assert known.diverging("float32") == {RULE}, "the programs leave the form out, conditional excuse or not"

    class Case:
        arrays = {"a": np.ones((2, 1)), "b": np.ones(())}
        result = (2, 1)
        dtype = "float32"

    assert not excuse.holds(Case)
    Case.result = (2, 0)
    assert excuse.holds(Case), "a size-0 result"
    Case.arrays, Case.result = {"a": np.ones((2, 0)), "b": np.ones(())}, (2, 0)
    assert excuse.holds(Case), "a size-0 operand"


def _run(tmp_path: Path, backend: str, *args: str) -> tuple[int, str, dict]:
    return run_suite(tmp_path, f"{backend}", *args, rules=(RULE,))


def test_a_finding_excuses_its_cases_and_the_rule_keeps_gating(tmp_path: Path) -> None:
    """A known gap on one class of cases (size-0 operands), listed with its condition, holds the gate; a second,
    wrong-value bug of the same rule on other cases breaks it; without the condition's finding the gap breaks it."""
    path = write(tmp_path, FINDING)
    code, output, doc = _run(tmp_path, GAP, f"--findings={path}")
    assert code == 0, output
    statuses = {r["status"] for r in doc["results"]}
    assert statuses == {"expected_failure"}, output
    record = doc["results"][0]
    (struck,) = record["expected"]["findings"]
    assert struck["id"] == "torch/mul-refuses-empty" and struck["cases"] > 0
    assert record["failure"]["kind"] == "unexpected_error", "an expected failure records how it failed"
    assert doc["gate"]["findings"][0]["id"] == "torch/mul-refuses-empty"

    code, output, doc = _run(tmp_path, GAP_AND_BUG, f"--findings={path}")
    assert code == 1, output
    assert {r["status"] for r in doc["results"]} == {"failed"}
    assert {r["failure"]["kind"] for r in doc["results"]} == {"value"}, "the second bug, not the known gap"

    code, output, doc = _run(tmp_path, GAP)
    assert code == 1 and {r["status"] for r in doc["results"]} == {"failed"}, output

    elsewhere = write(tmp_path, FINDING.replace('when = "EMPTY"', 'when = "SCALAR"'))
    code, output, doc = _run(tmp_path, GAP, f"--findings={elsewhere}")
    assert code == 1, "a condition that does not cover the failing cases excuses nothing"


def test_a_finding_that_strikes_nothing_is_stale(tmp_path: Path) -> None:
    path = write(tmp_path, FINDING)
    code, output, doc = _run(tmp_path, "torch", f"--findings={path}")
    assert code == 0 and {r["status"] for r in doc["results"]} == {"unexpectedly_passed"}, output
    code, output, doc = _run(tmp_path, "torch", f"--findings={path}", "--strict-expected")
    assert code == 1 and len(doc["gate"]["broken_by"]) == 2, output
    chance = write(tmp_path, FINDING.replace('class = "bug"', 'class = "bug"\nnondeterministic = true'))
    code, output, doc = _run(tmp_path, "torch", f"--findings={chance}", "--strict-expected")
    assert code == 0 and {r["status"] for r in doc["results"]} == {"passed"}, output


@pytest.mark.parametrize(
    ("backend", "text", "message"),
    [
        ("torch", FINDING.replace(RULE, "broadcasting.*"), "is a pattern"),
        ("torch", FINDING.replace('engine = "ENGINE"', 'engine = "jax"'), "findings of engine 'jax'"),
        ("torch-func", FINDING.replace(RULE, "accumulation.backward.adds"), "so the excuse is stale"),
    ],
)
def test_bad_findings_are_usage_errors(tmp_path: Path, backend: str, text: str, message: str) -> None:
    path = write(tmp_path, text, engine=backend)
    code, output, doc = _run(tmp_path, backend, f"--findings={path}")
    assert code == 4 and message in output and doc is None, output


SHIPPED = sorted((ROOT / "specs" / "findings").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_non_passing_check_of_a_shipped_engine_belongs_to_one_finding(path: Path, rules: list) -> None:
    """The committed results of each engine (reports/results/NAME.json) are explained finding by finding."""
    known = load(path, rules)
    assert known.engine == path.stem
    doc = json.loads((ROOT / "reports" / "results" / f"{path.stem}.json").read_text())
    assert findings.coverage(known, doc) == []
    for finding in known.findings:
        if finding.klass == "bug" and finding.upstream == "not reported":
            assert finding.report, f"{finding.id}: a bug nobody reported needs its upstream-ready report"
            doc, _, anchor = finding.report.partition("#")
            assert anchor in (ROOT / doc).read_text(), f"{finding.id}: no section {anchor!r} in {doc}"
