"""Collecting a conformance run's results under pytest: the results file, the report and the gate.

A pytest plugin of its own (registered by ``conformance.pytest_plugin.plugin``), active when ``conformance.pytest_plugin.plugin``
has set up a run. Each rule test's outcome is recorded where the test ran (``pytest_runtest_makereport``)
and carried to the controller in ``report.user_properties`` (under ``PROPERTY``), which pytest-xdist
serializes with the report. The controller also records what never reported an outcome: a check
whose worker crashed or hung (xdist's crash report; the in-flight file of that worker gives its
script), and every collected check that never ran (an interrupted run). Then it builds the
document (``conformance.verdict.results``), applies the gate and sets the exit code, so the printed gate
line, the JSON, the HTML and the exit code always say the same.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import time
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest

import conformance
from conformance import templates
from conformance.draw.strategies import Case
from conformance.execute import repro, runner
from conformance.execute.failures import CheckFailure
from conformance.pytest_plugin import plugin
from conformance.spec import specs
from conformance.verdict import explore, findings, results
from conformance.verdict.gate import JUDGED, Gate, GateError, parse_levels

PROPERTY = "conformance"
"""Name of the user property that carries a result record from the test's process to the controller."""
_OUTPUTS = ("results_json", "report_html", "explore_out")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The results, report and gate options, in the plugin's "conformance" group."""
    group = parser.getgroup("conformance")
    group.addoption("--results-json", type=Path, help="write the run's results as JSON (docs/results-schema.md)")
    group.addoption("--report-html", type=Path, help="write the run's HTML report (one self-contained file)")
    group.addoption(
        "--gate-levels",
        default=",".join(specs.LEVELS),
        help="comma-separated levels whose failures break the gate and the exit code (default: all of them; a rule "
        "the engine cannot run is unsupported, never a failure)",
    )
    group.addoption(
        "--gate-conventions",
        action="store_true",
        help="gate the convention rules too (ties split, clamp bounds): for an engine that claims PyTorch parity",
    )
    group.addoption(
        "--findings", type=Path, help="TOML file of the backend's findings, its known divergences (specs/findings/)"
    )
    group.addoption(
        "--strict-expected",
        action="store_true",
        help="a finding that strikes none of the checks it names breaks the gate (unless it is nondeterministic)",
    )
    group.addoption(
        "--explore-out",
        type=Path,
        help="write each new shrunk counterexample as a spec example (use with --conformance-profile=thorough)",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """After ``conformance.pytest_plugin.plugin`` has set up the run: collect its results, apply the gate."""
    if plugin.STASH in config.stash:
        config.pluginmanager.register(Collector(config), "conformance-results-collector")


def _writable(path: Path) -> str | None:
    """Why ``path`` cannot be written at the end of the run, or None: checked before any test runs."""
    path = Path(path)
    if path.is_dir():
        return "is a directory"
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        return f"{parent} is not a directory"
    target = path if path.exists() else parent
    return None if os.access(target, os.W_OK) else f"{target} is not writable"


def status_of(outcome: runner.Outcome | None, passed: bool, known: Mapping[str, findings.Finding]) -> str:
    """The result status, from the check's outcome (its failure, the cases findings excused) and pytest's verdict."""
    if outcome is not None and outcome.missing:
        return "unsupported"
    if outcome is not None and outcome.failure is not None:
        return "error" if outcome.failure.kind == "adapter" else "failed"
    if outcome is not None and outcome.excused:
        return "expected_failure"
    if passed:
        named = {e.finding for e in outcome.excuses} if outcome is not None else set()
        stale = any(not known[key].nondeterministic for key in named if key in known)
        return "unexpectedly_passed" if stale else "passed"
    return "error"


def expected_record(keys: Iterable[str], counts: Mapping[str, int], known: Mapping[str, findings.Finding]) -> dict:
    """The ``expected`` object of a result: the findings that name the check, with the cases each set aside."""
    named = [known[k] for k in dict.fromkeys(keys) if k in known]
    return {
        "findings": [{"id": f.key, "title": f.title, "class": f.klass, "cases": counts.get(f.key, 0)} for f in named],
        "reason": "; ".join(f.title for f in named),
        "link": next((link for f in named for link in f.links), None),
    }


def relative(text: str) -> str:
    """``text`` with the paths under the working directory made relative to it: an engine's message may quote its
    own traceback, and a results file committed from a checkout must not name the machine it was made on."""
    return text.replace(f"{Path.cwd()}{os.sep}", "")


def failure_record(failure: CheckFailure, outcome: runner.Outcome) -> dict[str, Any]:
    """The ``failure`` object of a result: the divergence, the shrunk case, the repro's own parts."""
    parts = outcome.repro
    return {
        "kind": failure.kind,
        "message": relative(failure.detail),
        "line": failure.line,
        "case": repr(failure.case),
        "counterexample": explore.counterexample(failure.case) if isinstance(failure.case, Case) else None,
        "script": failure.script,
        "repro_path": None if outcome.repro_path is None else str(outcome.repro_path),
        "repro": None if parts is None else {"head": parts.head, "script": parts.script},
        "replay": outcome.replay,
    }


def _peak_rss_mb() -> float:
    """The peak resident memory of this process (the worker that ran the check) so far, in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


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
            known = findings.NO_FINDINGS
            if path := config.getoption("findings"):
                known = findings.load(path, [*specs.load(), *self.run.rules], templates.draws_arrays)
                self._check_findings(path, known)
            levels = parse_levels(config.getoption("gate_levels"))
            self.gate = self.run.gate = Gate(
                levels, known, config.getoption("strict_expected"), config.getoption("gate_conventions")
            )
        except (GateError, findings.FindingsError) as exc:
            raise pytest.UsageError(str(exc)) from exc
        self.known = self.gate.findings.by_key()
        for option in _OUTPUTS:
            path = config.getoption(option)
            why = None if path is None else _writable(path)
            if why:
                raise pytest.UsageError(f"--{option.replace('_', '-')} {path}: cannot be written ({why})")
        self.rules = {(r.id, d): r for r in self.run.rules for d in r.dtypes}
        self.results: dict[str, dict[str, Any]] = {}
        self.collected: set[str] = set()
        self.started: dict[str, float] = {}
        self.unrecorded_failures = 0
        self.began = time.monotonic()
        self.doc: dict[str, Any] | None = None
        self.written: list[str] = []

    # -- on every process that runs tests ----------------------------------------------------------
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        param = _rule_param(item)
        if param is None or not (call.when == "call" or (call.when == "setup" and report.failed)):
            return report
        rule, dtype = param
        outcome = item.stash.get(plugin.OUTCOME, None)
        status = status_of(outcome, call.when == "call" and call.excinfo is None, self.known)
        facts: dict[str, Any] = {"duration_s": round(report.duration, 4), "peak_rss_mb": _peak_rss_mb()}
        if outcome is not None and outcome.excuses:
            facts["expected"] = expected_record((e.finding for e in outcome.excuses), outcome.excused, self.known)
        if outcome is not None:
            facts["missing"] = list(outcome.missing)
            facts["examples_run"] = outcome.examples or None
            if outcome.engine_seconds is not None:
                facts["engine_s"] = round(outcome.engine_seconds, 4)
            facts["example_script"] = outcome.example_script or runner.example_script(rule, dtype)
            if outcome.failure or outcome.expected:
                facts["failure"] = failure_record(outcome.failure or outcome.expected, outcome)
        if status == "error":
            facts["error"] = relative(
                outcome.failure.detail if outcome and outcome.failure else report.longreprtext[-4000:]
            )
        report.user_properties.append((PROPERTY, results.record(rule, dtype, status, **facts)))
        return report

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The checks this run must report (after ``-k``/``-m`` deselection): any left without a result never ran."""
        self.collected.update(item.nodeid for item in session.items if _rule_param(item) is not None)

    def _check_findings(self, path: Path, known: findings.Findings) -> None:
        """Findings of another engine are a mistake; an excuse of a rule the engine cannot even run (it lacks a
        capability, an op, the device) is stale: it claims a deviation no run can show, and would hide the rule
        once the engine grows it."""
        if known.engine != self.run.adapter.name:
            raise GateError(
                f"{path}: findings of engine {known.engine!r}, but the backend is {self.run.adapter.name!r}"
            )
        rules = {r.id: r for r in [*specs.load(), *self.run.rules]}
        for finding in known.findings:
            for excuse in finding.excuses:
                for rule_id in sorted(excuse.rules):
                    rule = rules[rule_id]
                    lacks = [runner.missing(self.run.adapter, rule, d, self.run.device) for d in rule.dtypes]
                    if all(lacks):
                        raise GateError(
                            f"{path}: finding {finding.id!r}: {self.run.adapter.name} cannot run rule {rule_id!r} on"
                            f" {self.run.device} (it lacks {', '.join(lacks[0])}), so the excuse is stale: remove it"
                        )

    # -- on the controller -------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collected.update(i for i in ids if self._param_of(i) is not None)

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.started.setdefault(nodeid, time.monotonic())

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recorded = [value for name, value in report.user_properties if name == PROPERTY]
        if recorded:
            self.results[report.nodeid] = recorded[-1]
        elif report.failed and report.when not in ("setup", "call", "teardown"):
            lost = self.results[report.nodeid] = self._lost(report)  # xdist's report of a crashed worker
            if lost.get("status") == "expected_failure":  # pytest's own tally says xfailed, as the gate does
                report.outcome, report.wasxfail = "skipped", lost["expected"]["reason"]
        elif report.failed:
            self.unrecorded_failures += 1

    def _param_of(self, nodeid: str) -> tuple[specs.Rule, str] | None:
        """The (rule, dtype) of a rule test's node id: ``...::test_rule[RULE-DTYPE]``."""
        if "::test_rule[" not in nodeid:
            return None
        param = nodeid.rsplit("[", 1)[1].rstrip("]")
        rule_id, _, dtype = param.rpartition("-")
        rule = self.rules.get((rule_id, dtype))
        return None if rule is None else (rule, dtype)

    def _lost(self, report: pytest.TestReport) -> dict[str, Any]:
        """The record of a check whose worker died: a hang past the limit, or a crash."""
        param = self._param_of(report.nodeid)
        if param is None:
            self.unrecorded_failures += 1
            return {}
        rule, dtype = param
        elapsed = time.monotonic() - self.started.get(report.nodeid, time.monotonic())
        timed_out = bool(self.run.timeout) and elapsed >= 0.95 * self.run.timeout
        status = "timeout" if timed_out else "crashed"
        detail = (
            f"the check ran past --check-timeout={self.run.timeout:g} s and its worker was stopped"
            if timed_out
            else f"the process running the check died ({report.longreprtext.strip()})"
        )
        facts: dict[str, Any] = {"duration_s": round(elapsed, 4), "error": detail}
        worker = getattr(getattr(report, "node", None), "gateway", None)
        inflight = self.run.inflight(getattr(worker, "id", "main"))
        last = runner.InFlight.read(inflight)
        if last and last.get("rule") == rule.id and last.get("dtype") == dtype:
            failure = CheckFailure(status, detail, "?", last["script"], last["case"], dtype, dict(rule.tolerances))
            outcome = runner.Outcome(rule, dtype, failure=failure, replay=self.run.replay(rule, dtype))
            outcome.repro_path, outcome.repro = repro.write(
                self.run.repro_dir, self.run.adapter, rule, failure, self.run.device, outcome.replay
            )
            facts["failure"] = failure_record(failure, outcome)
        excuses = self.gate.findings.excuses(rule.id, dtype)
        whole = [e.finding for e in excuses if status in e.kinds and e.when is None]
        if excuses:  # a known hang or crash of the whole check is a known divergence like any other
            facts["expected"] = expected_record(
                [*whole, *(e.finding for e in excuses)], dict.fromkeys(whole, 1), self.known
            )
        if whole:
            status = "expected_failure"
        return results.record(rule, dtype, status, **facts)

    def document(self, incomplete: str | None) -> dict[str, Any]:
        """The whole results file of the run."""
        records = sorted(self.results.values(), key=results.sort_key)
        adapter = type(self.run.adapter)
        return {
            "schema": results.SCHEMA,
            "schema_version": results.SCHEMA_VERSION,
            "suite_version": conformance.__version__,
            "spec_version": self.run.spec_version,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "backend": {
                "name": self.run.adapter.name,
                "version": self.run.adapter.engine_version(),
                "adapter": f"{adapter.__module__}:{adapter.__qualname__}",
            },
            "device": self.run.device,
            "dtypes": list(self.run.dtypes),
            "profile": self.run.profile,
            "seed": self.run.seed,
            "shape_pool": self.run.shape_pool,
            "isolated": self.run.isolated,
            "platform": {
                "python": platform.python_version(),
                "system": platform.platform(),
                "machine": platform.machine(),
                "numpy": np.__version__,
                "hypothesis": hypothesis.__version__,
                "pytest": pytest.__version__,
            },
            "duration_s": round(time.monotonic() - self.began, 3),
            "incomplete": incomplete,
            "gate": self.gate.verdict(records, incomplete),
            "summary": results.summary(records),
            "repro_library": repro.library(self.run.adapter) if any(r["failure"] for r in records) else None,
            "results": records,
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return
        for nodeid in sorted(self.collected - set(self.results)):
            param = self._param_of(nodeid)
            if param is not None:
                self.results[nodeid] = results.record(*param, "not_run")
        not_run = sum(r["status"] == "not_run" for r in self.results.values())
        incomplete = None
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            incomplete = f"interrupted; {not_run} checks never ran"
        elif not_run:
            incomplete = f"{not_run} checks never ran"
        self.doc = self.document(incomplete)
        self._write_outputs()
        if session.exitstatus not in (
            pytest.ExitCode.OK,
            pytest.ExitCode.TESTS_FAILED,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            return  # interrupted, or an internal or usage error: pytest's code already says the run failed
        if not any(r["status"] in JUDGED for r in self.results.values()):
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        elif self.unrecorded_failures or not self.doc["gate"]["holds"]:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            session.exitstatus = pytest.ExitCode.OK

    def _write_outputs(self) -> None:
        assert self.doc is not None
        if path := self.config.getoption("results_json"):
            results.write(path, self.doc)
            self.written.append(f"results: {path}")
        if path := self.config.getoption("report_html"):
            from conformance.report import render

            render.write(path, [self.doc])
            self.written.append(f"report: {path}")
        if path := self.config.getoption("explore_out"):
            rules = {r.id: r for r in self.run.rules}
            found = [
                (rules[r["id"]], r["failure"])
                for r in self.doc["results"]
                if r["failure"] and r["failure"]["counterexample"]
            ]
            header = f"new counterexamples on {self.run.adapter.name}, profile {self.run.profile}, seed {self.run.seed}"
            self.written.append(f"explore: {explore.write(path, header, found)} new examples in {path}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.doc is None:
            return
        gate, counts = self.doc["gate"], self.doc["summary"]
        tr = terminalreporter
        tr.section(f"conformance gate (levels: {', '.join(gate['levels'])})")
        tally = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items() if n) or "no results"
        if gate["holds"]:
            tr.write_line(f"gate HOLDS: {tally}", green=True)
        else:
            tr.write_line(f"gate BROKEN by {len(gate['broken_by'])}: {tally}", red=True)
            for line in gate["broken_by"]:
                tr.write_line(f"  {line}")
        outside = [r for r in self.doc["results"] if r["status"] in ("failed", "error") and not self.gate.breaks(r)]
        if outside:
            tr.write_line(f"{len(outside)} failures outside the gate (levels, conventions) are reported, not gated:")
            for r in outside:
                tr.write_line(f"  {r['id']}[{r['dtype']}] ({r['level']}): {r['status']}")
        for line in self.written:
            tr.write_line(line)
