"""Running one rule in one dtype against an adapter: the single path from a rule to its outcome.

``missing`` says why a rule cannot run on an engine (a capability, an op, the device); ``check``
assembles the Hypothesis test (the template's strategy, the rule's explicit examples, the seed and
settings), runs it, and returns an ``Outcome`` carrying the shrunk failure, the number of cases
and the script of the rule's first explicit example. The pytest plugin turns an outcome into a
skip or a failure; the results collector records it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure

from conformance import templates
from conformance.draw.model import ModelTemplate
from conformance.draw.strategies import CASES_PER_EXAMPLE, example_case
from conformance.execute import runtime
from conformance.execute.failures import CheckFailure, execute
from conformance.spec.literal import Script
from conformance.spec.specs import Rule
from conformance.templates import TEMPLATES, Template
from conformance.verdict.findings import NO_FINDINGS, Excuse, Excused, Findings
from conformance.vocabulary import OPS


@dataclass
class Outcome:
    """What one (rule, dtype) check found, beyond pytest's passed/failed/skipped."""

    rule: Rule
    dtype: str
    missing: list[str] = field(default_factory=list)
    """Capabilities, ops (``op:NAME``) or the device the engine lacks: the rule is unsupported."""
    failure: CheckFailure | None = None
    """The first divergence no finding excuses (shrunk): the rule failed."""
    excuses: tuple[Excuse, ...] = ()
    """The findings' excuses that name this check."""
    excused: dict[str, int] = field(default_factory=dict)
    """Finding key -> cases it set aside (failed as it explains, or met its hang's condition)."""
    expected: CheckFailure | None = None
    """The first excused divergence, as drawn: what the report shows of an expected failure."""
    examples: int = 0
    """Cases run: explicit, generated and shrinking."""
    engine_seconds: float | None = None
    """Time inside the engine: the scripts' calls into the adapter and its ops (``Stopwatch``)."""
    example_script: str | None = None
    """The script of the rule's first explicit example, as it ran."""
    repro_path: Path | None = None
    repro: Any = None
    """The repro's parts (``conformance.execute.repro.Repro``), set with ``repro_path`` when the check failed."""
    replay: str = ""


def rule_seed(rule: Rule, dtype: str) -> int:
    """The gate's seed for one rule: a digest of its id and dtype, so the cases it draws depend only on
    the rule, the spec and Hypothesis, never on the suite's incidental source code."""
    return int.from_bytes(hashlib.sha256(f"{rule.id}/{dtype}".encode()).digest()[:8], "big")


def missing(adapter: Any, rule: Rule, dtype: str, device: str) -> list[str]:
    """Why ``adapter`` cannot run ``rule`` in ``dtype`` on ``device``; empty when it can."""
    needs = [*templates.needs(rule), dtype]
    lacks = [n for n in needs if n not in adapter.capabilities]
    called = TEMPLATES[rule.template].ops(rule)
    lacks += [f"op:{name}" for name in sorted(called) if not hasattr(adapter.ops, name)]
    form = ".".join(rule.id.split(".")[1:3]) if rule.area == "ops" else None
    for capability, gaps in getattr(adapter, "op_gaps", {}).items():
        if capability in needs:
            lacks += [f"{capability}:{name}" for name in sorted(gaps) if name in called or name == form]
    if device not in adapter.devices():
        lacks.append(f"device:{device}")
    return lacks


class Stopwatch:
    """Time spent inside the engine: each outermost call a script makes into the adapter or its ops,
    summed (a call the engine makes back into the script, like ``vjp``'s function, counts as the engine's).

    The checks' own reads of the adapter (``numpy``, ``dtype`` in ``expect_close``) are not counted, so
    the figure is a lower bound of the engine's share. Costs one Python call per engine call.
    """

    ENGINE = frozenset({*OPS, *runtime.STATEFUL, "tensor"})

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def timed(self, namespace: dict[str, Any]) -> dict[str, Any]:
        """``namespace`` with its engine calls timed."""
        return {k: self._wrap(v) if k in self.ENGINE and callable(v) else v for k, v in namespace.items()}

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self._depth -= 1

        return timed


class InFlight:
    """The case a check is running, written down before it runs: if the engine crashes the process
    or hangs, the controller still knows the script that did it and can write its repro.

    One file per worker, kept open and overwritten in place with a pickle of the case and its script:
    a write per case must cost microseconds, so the script's text is rendered only when it is read.
    """

    def __init__(self, path: Path | None) -> None:
        self.fd = None if path is None else os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)

    def write(self, rule: Rule, dtype: str, case: Any, script: Script | str) -> None:
        if self.fd is not None:
            data = pickle.dumps((rule.id, dtype, case, script))
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))

    @staticmethod
    def read(path: Path) -> dict[str, str] | None:
        """The rule id, dtype, case (as printed) and script text last written to ``path``, if any."""
        try:
            rule, dtype, case, script = pickle.loads(path.read_bytes())
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):
            return None
        text = script if isinstance(script, str) else script.text()
        return {"rule": rule, "dtype": dtype, "case": case if isinstance(case, str) else repr(case), "script": text}

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def check(
    adapter: Any,
    rule: Rule,
    dtype: str,
    device: str,
    seed: int | None = None,
    overrides: settings | None = None,
    inflight: Path | None = None,
    shape_pool: int | None = None,
    findings: Findings = NO_FINDINGS,
) -> Outcome:
    """Run ``rule`` in ``dtype`` through Hypothesis; the outcome holds the shrunk failure, if any.

    ``seed`` None is the gate's seed, fixed per rule (and derandomized shape pools: ``Given.seed``);
    ``overrides`` replaces the loaded profile.
    ``shape_pool`` draws the shapes from that many shape sets fixed per rule (``Given.shape_pool``).
    ``findings`` excuse cases: one that fails as a finding explains, or meets the condition of a finding's
    hang, is set aside and counted, and the rule goes on drawing; random programs leave out the op forms whose
    rules a finding excuses a divergence of (``Findings.diverging``, ``Given.known``).
    """
    excuses = findings.excuses(rule.id, dtype)
    outcome = Outcome(rule, dtype, missing=missing(adapter, rule, dtype, device), excuses=excuses)
    template = TEMPLATES[rule.template]
    if outcome.missing:
        return outcome
    excused = Excused(excuses, outcome.excused)
    tolerances = dict(rule.tolerances)
    where = InFlight(inflight)
    drawn_with = seed if seed is not None else rule_seed(rule, dtype)
    if isinstance(template, ModelTemplate):

        def progress(script: str | None) -> None:
            if script is None:
                outcome.examples += 1
            else:
                where.write(rule, dtype, f"{script.count(chr(10))} steps", script)

        test = template.test(adapter, rule, dtype, device, drawn_with, overrides, progress)
    else:
        drawing = drawn_rule(adapter, rule, shape_pool, seed, findings.diverging(dtype))
        test = _property(adapter, drawing, dtype, device, template, outcome, where, tolerances, excused)
        if overrides is not None:
            test = overrides(test)
        test = hypothesis.seed(drawn_with)(test)
    try:
        test()
    except CheckFailure as failure:
        failure.tolerances = tolerances
        if isinstance(template, ModelTemplate) and excused.after(None, failure.kind) is not None:
            outcome.expected = failure  # the stateful model stops at its failure: excused whole, by its kind
        else:
            outcome.failure = failure
    except FlakyFailure as flaky:  # a case failed, then passed when Hypothesis replayed it: still the engine's
        failure = next((e for e in flaky.exceptions if isinstance(e, CheckFailure)), None)
        if failure is None:
            raise
        failure.detail = f"nondeterministic: failed, then passed when rerun on the same case\n{failure.detail}"
        failure.tolerances = tolerances
        outcome.failure = failure
    finally:
        where.close()
    return outcome


def drawn_rule(
    adapter: Any, rule: Rule, shape_pool: int | None, seed: int | None, known: frozenset[str] = frozenset()
) -> Rule:
    """``rule`` with what its cases are drawn from in this run: the shape pool, the seed, the engine's ops (random
    programs use only those) and the rules its findings excuse a divergence of (``Given``)."""
    gaps = {name for names in getattr(adapter, "op_gaps", {}).values() for name in names}
    # what a capability of the engine does not reach is left out, like a form whose rules a finding excuses
    has = frozenset(name for name in OPS if hasattr(adapter.ops, name) and name not in gaps)
    known = known | {f"ops.{name}." for name in gaps if "." in name}
    return replace(rule, given=replace(rule.given, shape_pool=shape_pool, seed=seed, ops=has, known=known))


def given_batches(rule: Rule, dtype: str, body: Callable[[tuple[Any, ...]], None]) -> Callable[[], None]:
    """``body`` as a Hypothesis test of batches of ``CASES_PER_EXAMPLE`` cases of ``rule`` in ``dtype``."""
    template = TEMPLATES[rule.template]
    test = given(st.tuples(*[template.strategy(rule, [dtype])] * CASES_PER_EXAMPLE))(body)
    # Every rule shares the runner's inner function: key Hypothesis's database per rule (and spare it reading the
    # function's source to make a key, a few milliseconds per check).
    test._hypothesis_internal_database_key = f"{rule.id}/{dtype}".encode()  # type: ignore[attr-defined]
    return test


def _property(
    adapter: Any,
    rule: Rule,
    dtype: str,
    device: str,
    template: Template,
    outcome: Outcome,
    where: InFlight,
    tolerances: dict[str, tuple[float, float]],
    excused: Excused,
) -> Callable[[], None]:
    """The Hypothesis test of a rule whose template draws cases and writes one script per case; a case a finding
    excuses is set aside (before it runs for a hang or crash, after it fails for a divergence) and the test goes on."""
    explicit = [template.example(rule, example_case(rule.given, raw, dtype)) for raw in rule.examples]
    first = explicit[0] if explicit else None
    filename = f"<rule {rule.id}>"
    stopwatch = Stopwatch()
    bound = stopwatch.timed(runtime.bind(adapter, dtype, device, tolerances))

    def prop(batch: tuple[Any, ...]) -> None:
        for case in batch:
            outcome.examples += 1
            if excused.excuses and excused.before(case) is not None:
                continue
            script = template.script(rule, case)
            if case is first:
                outcome.example_script = script.text()
            where.write(rule, dtype, case, script)
            try:
                execute(script, dict(bound), filename, case, dtype)
            except CheckFailure as failure:
                if excused.after(case, failure.kind) is None:
                    raise
                if outcome.expected is None:
                    failure.tolerances = tolerances
                    outcome.expected = failure
            finally:
                outcome.engine_seconds = stopwatch.seconds

    test = given_batches(rule, dtype, prop)
    for case in reversed(explicit):
        test = example((case,))(test)
    return test


def example_script(rule: Rule, dtype: str) -> str | None:
    """The script of the rule's first explicit example, for a rule that did not run (unsupported)."""
    if not rule.examples or isinstance(TEMPLATES[rule.template], ModelTemplate):
        return None
    template = TEMPLATES[rule.template]
    try:
        return template.script(rule, template.example(rule, example_case(rule.given, rule.examples[0], dtype))).text()
    except Exception as exc:  # the rule's own check reports this; the results must still be written
        return f"# the example's script could not be built: {type(exc).__name__}: {exc}"
