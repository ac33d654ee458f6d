"""Conformance results as data: the JSON file of a run, its collection under pytest, loading and merging.

A pytest plugin of its own (entry point ``conformance-results``), active when ``conformance.plugin``
has set up a run. The file's schema is documented in ``docs/results-schema.md``. ``SCHEMA_VERSION`` changes when a
field changes meaning or goes away; adding a field does not change it, so readers ignore unknown keys.

Each rule test's outcome is recorded where the test ran (``pytest_runtest_makereport``) and carried
to the controller in ``report.user_properties`` (under ``PROPERTY``), which pytest-xdist serializes
with the report; the controller builds the document, applies the gate and sets the exit code.
"""

from __future__ import annotations

import datetime
import json
import platform
import time
from collections import Counter
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest

import conformance
from conformance import explore, plugin, specs
from conformance.gate import Expectation, Gate, GateError, load_expectations, parse_levels
from conformance.runner import script_for
from conformance.runtime import ConformanceFailure
from conformance.strategies import example_case
from conformance.templates import TEMPLATES

SCHEMA = "autograd-conformance-results"
SCHEMA_VERSION = 1
STATUSES = ("passed", "failed", "expected_failure", "unexpectedly_passed", "unsupported", "error")
KINDS = ConformanceFailure.KINDS
"""Kinds of first divergence (``RuleFailure.kind``), as ``conformance.runtime`` and the runner name them."""
PROPERTY = "conformance"
"""Name of the user property that carries a result record from the test's process to the controller."""
EXPECTED = pytest.StashKey[Expectation]()


class ResultsError(ValueError):
    """A file that is not a conformance results file this suite can read."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The results, report and gate options, in the plugin's "conformance" group."""
    group = parser.getgroup("conformance")
    group.addoption("--results-json", type=Path, help="write the run's results as JSON (docs/results-schema.md)")
    group.addoption("--report-html", type=Path, help="write the run's HTML report (one self-contained file)")
    group.addoption(
        "--gate-levels",
        default="required",
        help="comma-separated levels whose failures break the gate and the exit code (default: required)",
    )
    group.addoption(
        "--expected-failures", type=Path, help="TOML file of the backend's known failures (see conformance/gate.py)"
    )
    group.addoption("--strict-expected", action="store_true", help="an expected failure that passes breaks the gate")
    group.addoption(
        "--explore-out",
        type=Path,
        help="write each new shrunk counterexample as a spec example (use with --conformance-profile=thorough)",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """After ``conformance.plugin`` has set up the run: collect its results, apply the gate."""
    if plugin.STASH in config.stash:
        config.pluginmanager.register(Collector(config), "conformance-results-collector")


def record(rule: specs.Rule, dtype: str, status: str, **facts: Any) -> dict[str, Any]:
    """One (rule, dtype) result of the results file; ``facts`` fill the per-status fields."""
    return {
        "id": rule.id,
        "area": rule.area,
        "level": rule.level,
        "statement": rule.statement,
        "references": list(rule.references),
        "dtype": dtype,
        "status": status,
        "missing": [],
        "expected": None,
        "examples_run": None,
        "duration_s": None,
        "example": rule.examples[0] if rule.examples else None,
        "example_script": _example_script(rule, dtype),
        "failure": None,
        "error": None,
        **facts,
    }


def _example_script(rule: specs.Rule, dtype: str) -> str | None:
    """The script the rule runs on its first explicit example: what the report shows as the rule's example."""
    if not rule.examples:
        return None
    try:
        template = TEMPLATES[rule.template]
        return script_for(rule, template.example(rule, example_case(rule.given, rule.examples[0], dtype)))
    except Exception as exc:  # the rule's own test reports this; the results file must still be written
        return f"# the example's script could not be built: {type(exc).__name__}: {exc}"


def _failure(outcome: plugin.Outcome) -> dict[str, Any]:
    failure = outcome.failure
    assert failure is not None
    return {
        "kind": failure.kind,
        "message": failure.detail,
        "line": failure.line,
        "case": repr(failure.case),
        "counterexample": explore.counterexample(failure.case),
        "script": failure.script,
        "repro_path": None if outcome.repro_path is None else str(outcome.repro_path),
        "repro": None if outcome.repro_path is None else outcome.repro_path.read_text(encoding="utf-8"),
        "replay": outcome.replay,
    }


def status_of(outcome: plugin.Outcome | None, expected: bool, passed: bool) -> str:
    """The result status, from the test's outcome, whether it was expected to fail, and pytest's verdict."""
    if outcome is not None and outcome.missing:
        return "unsupported"
    if outcome is not None and outcome.failure is not None:
        return "expected_failure" if expected else "failed"
    if passed:
        return "unexpectedly_passed" if expected else "passed"
    return "error"


def document(run: plugin.Run, gate: Gate, results: Iterable[dict[str, Any]], duration: float) -> dict[str, Any]:
    """The whole results file of one run."""
    results = sorted(results, key=lambda r: (r["id"], specs.DTYPES.index(r["dtype"])))
    adapter = type(run.adapter)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "suite_version": conformance.__version__,
        "spec_version": run.spec_version,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "backend": {
            "name": run.adapter.name,
            "version": run.adapter.engine_version(),
            "adapter": f"{adapter.__module__}:{adapter.__qualname__}",
        },
        "device": run.device,
        "dtypes": list(run.dtypes),
        "profile": run.profile,
        "seed": run.seed,
        "platform": {
            "python": platform.python_version(),
            "system": platform.platform(),
            "machine": platform.machine(),
            "numpy": np.__version__,
            "hypothesis": hypothesis.__version__,
            "pytest": pytest.__version__,
        },
        "duration_s": round(duration, 3),
        "gate": gate.verdict(results),
        "summary": summary(results),
        "results": results,
    }


def summary(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = Counter(r["status"] for r in results)
    return {status: counts[status] for status in STATUSES}


def write(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any]:
    """A results file, checked to be one this suite's schema version describes."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ResultsError(f'{path}: not a conformance results file (no "schema": {SCHEMA!r})')
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema version {doc.get('schema_version')!r}; this suite reads {SCHEMA_VERSION}")
    return doc


def run_key(doc: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """Which engine a document is about: results of the same key merge into one."""
    backend = doc["backend"]
    return backend["name"], backend["adapter"], backend["version"], doc["device"]


def merge(docs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One document per engine (``run_key``), in order of first appearance.

    Documents of the same engine (runs split by dtype or spec file, or a rerun) are combined;
    for a (rule, dtype) present in several, the last one wins.
    """
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for doc in docs:
        key = run_key(doc)
        if key not in merged:
            merged[key] = {**doc, "results": list(doc["results"]), "gate": dict(doc["gate"])}
            continue
        into = merged[key]
        into["dtypes"] = [d for d in specs.DTYPES if d in into["dtypes"] or d in doc["dtypes"]]
        by_case = {(r["id"], r["dtype"]): r for r in [*into["results"], *doc["results"]]}
        into["results"] = sorted(by_case.values(), key=lambda r: (r["id"], specs.DTYPES.index(r["dtype"])))
        into["duration_s"] = into["duration_s"] + doc["duration_s"]
        # expected failures are already in the statuses: the first run's levels decide the rest
        gate = Gate(tuple(into["gate"]["levels"]), (), into["gate"]["strict_expected"])
        into["gate"]["broken_by"] = gate.broken_by(into["results"])
        into["gate"]["holds"] = not into["gate"]["broken_by"]
    for doc in merged.values():
        doc["summary"] = summary(doc["results"])
    return list(merged.values())


def _rule_param(item: pytest.Item) -> tuple[specs.Rule, str] | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    rule = params.get("rule")
    return (rule, params["dtype"]) if isinstance(rule, specs.Rule) else None


class Collector:
    """The pytest side: marks expected failures, records results, writes files, applies the gate."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.run: plugin.Run = config.stash[plugin.STASH]
        try:
            expectations = ()
            if path := config.getoption("expected_failures"):
                expectations = tuple(load_expectations(path, [*specs.load(), *self.run.rules]))
            levels = parse_levels(config.getoption("gate_levels"))
            self.gate = Gate(levels, expectations, config.getoption("strict_expected"))
        except GateError as exc:
            raise pytest.UsageError(str(exc)) from exc
        self.results: dict[str, dict[str, Any]] = {}
        self.unrecorded_failures = 0
        self.started = time.monotonic()
        self.doc: dict[str, Any] | None = None
        self.written: list[str] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Expected failures become xfail marks: pytest's own summary then says xfailed / XPASS."""
        for item in items:
            param = _rule_param(item)
            if param is None:  # a property check: expected to fail as a whole, by any exception
                check = self.gate.expected_check(getattr(item, "originalname", item.name))
                if check is not None:
                    item.add_marker(pytest.mark.xfail(reason=check.reason, strict=self.gate.strict_expected))
                continue
            expected = self.gate.expected(param[0].id, param[1])
            if expected is not None:
                item.stash[EXPECTED] = expected
                item.add_marker(
                    pytest.mark.xfail(
                        reason=expected.reason, strict=self.gate.strict_expected, raises=pytest.fail.Exception
                    )
                )

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        param = _rule_param(item)
        if param is None or not (call.when == "call" or (call.when == "setup" and report.failed)):
            return report
        rule, dtype = param
        outcome = item.stash.get(plugin.OUTCOME, None)
        expected = item.stash.get(EXPECTED, None)
        status = status_of(outcome, expected is not None, call.when == "call" and call.excinfo is None)
        facts: dict[str, Any] = {"duration_s": round(report.duration, 4)}
        if expected is not None:
            facts["expected"] = expected.as_dict()
        if outcome is not None:
            facts["missing"] = list(outcome.missing)
            facts["examples_run"] = outcome.examples or None
            if outcome.failure is not None:
                facts["failure"] = _failure(outcome)
        if status == "error":
            facts["error"] = report.longreprtext[-4000:]
        report.user_properties.append((PROPERTY, record(rule, dtype, status, **facts)))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recorded = [value for name, value in report.user_properties if name == PROPERTY]
        if recorded:
            self.results[report.nodeid] = recorded[-1]
        elif report.failed:
            self.unrecorded_failures += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput") or not self.results:
            return
        self.doc = document(self.run, self.gate, self.results.values(), time.monotonic() - self.started)
        if path := self.config.getoption("results_json"):
            write(path, self.doc)
            self.written.append(f"results: {path}")
        if path := self.config.getoption("report_html"):
            from conformance.report import render

            render.write(path, [self.doc])
            self.written.append(f"report: {path}")
        if path := self.config.getoption("explore_out"):
            rules = {r.id: r for r in self.run.rules}
            failures = [(rules[r["id"]], r["failure"]) for r in self.doc["results"] if r["failure"]]
            header = f"new counterexamples on {self.run.adapter.name}, profile {self.run.profile}, seed {self.run.seed}"
            self.written.append(f"explore: {explore.write(path, header, failures)} new examples in {path}")
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not self.unrecorded_failures:
            session.exitstatus = pytest.ExitCode.OK if self.doc["gate"]["holds"] else pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.doc is None:
            return
        gate, counts = self.doc["gate"], self.doc["summary"]
        tr = terminalreporter
        tr.section(f"conformance gate (levels: {', '.join(gate['levels'])})")
        tally = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items() if n)
        if gate["holds"]:
            tr.write_line(f"gate HOLDS: {tally}", green=True)
        else:
            tr.write_line(f"gate BROKEN by {len(gate['broken_by'])}: {tally}", red=True)
            for line in gate["broken_by"]:
                tr.write_line(f"  {line}")
        outside = [r for r in self.doc["results"] if r["status"] in ("failed", "error") and not self.gate.breaks(r)]
        if outside:
            tr.write_line(f"{len(outside)} failures at levels outside the gate are reported but do not break it:")
            for r in outside:
                tr.write_line(f"  {r['id']}[{r['dtype']}] ({r['level']}): {r['status']}")
        for line in self.written:
            tr.write_line(line)
