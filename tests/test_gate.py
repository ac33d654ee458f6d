"""The gate: expected-failures files, levels, and the exit code of real runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from conformance import specs
from conformance.collector import status_of
from conformance.failures import CheckFailure
from conformance.gate import Expectation, Gate, GateError, load_expectations, parse_levels
from conformance.runner import Outcome
from tests.results_fixtures import BROKEN_RULE, PASSING_RULE, SPEC, broken_backend, run_suite


def _expectations(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "expected-failures.toml"
    path.write_text(body)
    return path


def _entry(rule: str, reason: str = "known gap", extra: str = "") -> str:
    return f'[[expected]]\nrule = "{rule}"\nreason = "{reason}"\n{extra}\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_entry("broadcasting.no-such-rule"), "matches no rule of the suite"),
        (_entry(BROKEN_RULE, extra='dtype = "bfloat16"'), "does not run in dtype 'bfloat16'"),
        (_entry(BROKEN_RULE, reason=""), "'reason' must be one line"),
        (_entry(BROKEN_RULE, reason="two\\nlines"), "'reason' must be one line"),
        (_entry(BROKEN_RULE, extra='owner = "me"'), "a table with keys from"),
        (_entry(BROKEN_RULE) + _entry(BROKEN_RULE), "duplicate entry"),
        ('rule = "x"\n', "expected only \\[\\[expected\\]\\] tables"),
        ("[[expected]\n", "Expected"),
        ('[[expected]]\ncheck = "test_model"\nreason = "r"\n', "a table with keys from"),
        (_entry(BROKEN_RULE, extra='status = "failed"'), "'status' must be one of \\['timeout', 'crashed'\\]"),
        (_entry("broadcasting.*"), "matches no rule of the suite"),
        (_entry("nowhere.*", extra='status = "timeout"'), "rule pattern 'nowhere.\\*' matches no rule"),
        (_entry("broadcasting.*", extra='status = "timeout"\ndtype = "bfloat16"'), "does not run in dtype"),
    ],
)
def test_invalid_expected_failures_files(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(GateError, match=message):
        load_expectations(_expectations(tmp_path, body), specs.load([SPEC]))


def test_property_checks_are_expected_to_fail_by_rule_id(tmp_path: Path) -> None:
    body = _entry("properties.model.stateful", reason="no enable_grad")
    entries = load_expectations(_expectations(tmp_path, body), specs.load())
    assert Gate(expectations=tuple(entries)).expected("properties.model.stateful", "float32") is entries[0]


def test_expectations_and_levels() -> None:
    rule_wide = Expectation(BROKEN_RULE, None, "everywhere")
    one_dtype = Expectation(BROKEN_RULE, "float32", "only float32")
    gate = Gate(("required",), (rule_wide, one_dtype))
    assert gate.expected(BROKEN_RULE, "float32") is one_dtype
    assert gate.expected(BROKEN_RULE, "float64") is rule_wide
    assert gate.expected(PASSING_RULE, "float64") is None
    assert gate.failing("float64") == {BROKEN_RULE}
    assert parse_levels("required, extension,required") == ("required", "extension")
    with pytest.raises(GateError, match="unknown levels"):
        parse_levels("required,mandatory")


def test_a_fault_that_strikes_by_chance_is_excused_for_its_status_alone() -> None:
    """A pattern entry with a status excuses only that status, on the rules it matches: any other failure of
    those rules is not excused, and it lists no rule as failing (``failing``, which the programs leave out)."""
    hang = Expectation("broadcasting.*", None, "spins by chance", status="timeout")
    rule_entry = Expectation(BROKEN_RULE, None, "fails")
    gate = Gate(("required",), (hang,))
    assert gate.expected(BROKEN_RULE, "float64", "timeout") is hang
    assert gate.expected(BROKEN_RULE, "float64", "crashed") is None
    assert gate.expected(BROKEN_RULE, "float64") is None, "an ordinary failure is not excused"
    assert gate.expected("properties.model.stateful", "float64", "timeout") is None, "outside the pattern"
    assert gate.failing("float64") == frozenset()
    both = Gate(("required",), (hang, rule_entry))
    assert both.expected(BROKEN_RULE, "float64", "timeout") is rule_entry, "the rule's own entry wins"


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
        ("unexpectedly_passed", "extension", True, True),
    ],
)
def test_what_breaks_the_gate(status: str, level: str, strict: bool, breaks: bool) -> None:
    assert Gate(("required",), (), strict).breaks({"status": status, "level": level}) is breaks


def test_status_of() -> None:
    rule = specs.load([SPEC])[0]
    assert status_of(Outcome(rule, "float32", missing=["higher_order"]), True, False) == "unsupported"
    assert status_of(Outcome(rule, "float32"), False, True) == "passed"
    assert status_of(Outcome(rule, "float32"), True, True) == "unexpectedly_passed"
    assert status_of(Outcome(rule, "float32"), False, False) == "error"
    assert status_of(None, False, False) == "error"
    mistake = CheckFailure("adapter", "the adapter's numpy() returned a list", "?", "")
    assert status_of(Outcome(rule, "float32", failure=mistake), False, False) == "error", "never the engine's failure"


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
    assert "2 failures at levels outside the gate are reported but do not break it" in output


def test_expected_failures_hold_the_gate_and_unexpected_passes_are_reported(tmp_path: Path) -> None:
    path = _expectations(tmp_path, _entry(BROKEN_RULE, extra='link = "https://example.org/1"') + _entry(PASSING_RULE))
    code, output, doc = run_suite(tmp_path, broken_backend(), f"--expected-failures={path}")
    assert code == 0, output
    assert _statuses(doc) == {BROKEN_RULE: {"expected_failure"}, PASSING_RULE: {"unexpectedly_passed"}}
    assert "2 xfailed" in output and "2 xpassed" in output
    record = next(r for r in doc["results"] if r["id"] == BROKEN_RULE)
    assert record["expected"] == {"reason": "known gap", "link": "https://example.org/1"}
    assert record["failure"]["kind"], "an expected failure still records how it failed"

    code, output, doc = run_suite(tmp_path, broken_backend(), f"--expected-failures={path}", "--strict-expected")
    assert code == 1, output
    assert doc["gate"]["broken_by"] == [
        f"{PASSING_RULE}[float32]: unexpectedly_passed",
        f"{PASSING_RULE}[float64]: unexpectedly_passed",
    ]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--gate-levels=mandatory", "unknown levels"),
        ("--expected-failures={stale}", "matches no rule of the suite"),
    ],
)
def test_invalid_gate_options_are_usage_errors(tmp_path: Path, option: str, message: str) -> None:
    stale = _expectations(tmp_path, _entry("broadcasting.gone"))
    code, output, doc = run_suite(tmp_path, "torch", option.format(stale=stale))
    assert code == pytest.ExitCode.USAGE_ERROR and message in output and doc is None


def test_an_expected_failure_the_engine_cannot_run_is_stale(tmp_path: Path) -> None:
    """torch-func has no stateful layer: an entry for a rule that needs it claims what no run can show."""
    path = _expectations(tmp_path, _entry(PASSING_RULE))
    code, output, doc = run_suite(tmp_path, "torch-func", f"--expected-failures={path}")
    assert code == pytest.ExitCode.USAGE_ERROR and doc is None
    assert f"rule {PASSING_RULE!r}: torch-func cannot run it on cpu (it lacks stateful" in output


def test_an_expected_failure_is_not_shrunk(rules: dict[str, specs.Rule]) -> None:
    """Its deviation is known: the check still fails, on the first case drawn, without the shrinking."""
    from conformance import runner
    from tests.broken.broadcasting import MatmulSqueezes

    rule = rules["broadcasting.grad.matmul-batch"]  # its explicit example passes: a drawn case fails
    gate = settings.get_profile("conformance-gate")
    shrunk = runner.check(MatmulSqueezes(), rule, "float64", "cpu", overrides=gate)
    kept = runner.check(MatmulSqueezes(), rule, "float64", "cpu", overrides=gate, shrink=False)
    assert shrunk.failure is not None and kept.failure is not None
    assert kept.examples < shrunk.examples, (kept.examples, shrunk.examples)
