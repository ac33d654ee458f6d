"""The gate: levels, conventions, findings and the exit code of real runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.execute.failures import CheckFailure
from conformance.execute.runner import Outcome
from conformance.pytest_plugin.collector import status_of
from conformance.spec import specs
from conformance.verdict.findings import Excuse, Finding
from conformance.verdict.gate import Gate, GateError, parse_levels
from tests.results_fixtures import BROKEN_RULE, PASSING_RULE, SPEC, broken_backend, run_suite


def test_levels() -> None:
    assert parse_levels("required, extension,required") == ("required", "extension")
    with pytest.raises(GateError, match="unknown levels"):
        parse_levels("required,mandatory")


@pytest.mark.parametrize(
    ("status", "level", "strict", "breaks"),
    [
        ("failed", "required", False, True),
        ("error", "required", False, True),
        ("error", "extension", False, True),
        ("not_run", "extension", False, True),
        ("crashed", "required", False, True),
        ("timeout", "required", False, True),
        ("crashed", "extension", False, False),
        ("failed", "extension", False, False),
        ("expected_failure", "required", False, False),
        ("unsupported", "required", False, False),
        ("unexpectedly_passed", "required", False, False),
        ("unexpectedly_passed", "required", True, True),
        ("unexpectedly_passed", "extension", True, False),
    ],
)
def test_what_breaks_the_gate(status: str, level: str, strict: bool, breaks: bool) -> None:
    gate = Gate(("required",), strict_expected=strict)
    assert gate.breaks({"status": status, "level": level}) is breaks


def test_every_level_binds_by_default_and_conventions_only_when_asked() -> None:
    """A rule the engine can run binds whatever its level (a level says what an engine may lack); a convention
    (ties split, clamp bounds) binds only under --gate-conventions."""
    failed = {"status": "failed", "level": "extension"}
    assert Gate().breaks(failed) and Gate().breaks({**failed, "level": "recommended"})
    assert not Gate().breaks({**failed, "convention": True})
    assert Gate(conventions=True).breaks({**failed, "convention": True})
    conventions = {r.id for r in specs.load() if r.convention}
    assert conventions and all(r.startswith("higher_order.kink.") for r in conventions)


def _finding(nondeterministic: bool = False) -> Finding:
    excuse = Excuse("torch/gap", frozenset({BROKEN_RULE}), None, frozenset({"value"}))
    return Finding("torch", "gap", "a gap", "bug", "not reported", (), ("1",), nondeterministic, None, "x\n", (excuse,))


def test_status_of() -> None:
    rule = specs.load([SPEC])[0]
    known = {"torch/gap": _finding()}
    excuses = known["torch/gap"].excuses
    assert status_of(Outcome(rule, "float32", missing=["higher_order"]), False, known) == "unsupported"
    assert status_of(Outcome(rule, "float32"), True, known) == "passed"
    assert status_of(Outcome(rule, "float32", excuses=excuses), True, known) == "unexpectedly_passed"
    chance = {"torch/gap": _finding(nondeterministic=True)}
    assert status_of(Outcome(rule, "float32", excuses=excuses), True, chance) == "passed", "a fault by chance"
    assert status_of(Outcome(rule, "float32", excuses=excuses, excused={"torch/gap": 3}), False, known) == (
        "expected_failure"
    )
    assert status_of(Outcome(rule, "float32"), False, known) == "error"
    assert status_of(None, False, known) == "error"
    mistake = CheckFailure("adapter", "the adapter's numpy() returned a list", "?", "")
    assert status_of(Outcome(rule, "float32", failure=mistake), False, known) == "error", "never the engine's failure"


def test_a_run_that_checked_nothing_never_holds() -> None:
    gate = Gate()
    assert gate.broken_by([]) and gate.broken_by([{"id": "a.b", "dtype": "float32", "status": "unsupported"}])
    assert gate.broken_by([{"id": "a.b", "dtype": "float32", "status": "passed", "level": "required"}], "interrupted")
    assert not gate.broken_by([{"id": "a.b", "dtype": "float32", "status": "passed", "level": "required"}])


def _statuses(doc: dict) -> dict[str, set[str]]:
    return {rid: {r["status"] for r in doc["results"] if r["id"] == rid} for rid in (BROKEN_RULE, PASSING_RULE)}


def test_a_required_failure_breaks_the_gate(tmp_path: Path) -> None:
    code, output, doc = run_suite(tmp_path, broken_backend())
    assert code == 1, output
    assert "gate BROKEN by 2" in output and not doc["gate"]["holds"]
    assert doc["gate"]["broken_by"] == [f"{BROKEN_RULE}[float32]: failed", f"{BROKEN_RULE}[float64]: failed"]


def test_failures_outside_the_gate_levels_do_not_break_it(tmp_path: Path) -> None:
    code, output, doc = run_suite(tmp_path, broken_backend(), "--gate-levels=recommended,extension")
    assert code == 0, output
    assert doc["gate"]["holds"] and _statuses(doc)[BROKEN_RULE] == {"failed"}
    assert "2 failures outside the gate (levels, conventions) are reported, not gated" in output


def test_invalid_gate_options_are_usage_errors(tmp_path: Path) -> None:
    code, output, doc = run_suite(tmp_path, "torch", "--gate-levels=mandatory")
    assert code == pytest.ExitCode.USAGE_ERROR and "unknown levels" in output and doc is None


@pytest.mark.parametrize(
    ("backend", "rule_id", "spec"),
    [
        ("tests.broken.hooks:HookRemoveIgnored", "hooks.remove.stops", "hooks.toml"),
        (
            "tests.broken.custom_function:NeedsInputGradAllTrue",
            "custom_function.needs-input-grad.matches",
            "custom_function.toml",
        ),
    ],
)
def test_a_declared_capability_binds_its_rules_whatever_their_level(
    tmp_path: Path, backend: str, rule_id: str, spec: str
) -> None:
    """hooks and custom Functions are extension-level rules: an engine that declares them and gets them wrong is not
    green under the default gate."""
    code, output, doc = run_suite(tmp_path, backend, rules=(rule_id,), spec=SPEC.parent / spec)
    assert code == 1 and not doc["gate"]["holds"], output
    assert {r["level"] for r in doc["results"]} == {"extension"}
