"""Running one rule in one dtype against an adapter: the single path from a rule to its outcome.

``missing`` says why a rule cannot run on an engine (a capability, an op, the device); ``check``
assembles the Hypothesis test (the template's strategy, the rule's explicit examples, the seed and
settings), runs it, and returns an ``Outcome`` carrying the shrunk failure, the number of cases
and the script of the rule's first explicit example. The pytest plugin turns an outcome into a
skip or a failure; the results collector records it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import example, given, settings

from conformance import runtime, templates
from conformance.failures import CheckFailure, execute
from conformance.model import ModelTemplate
from conformance.specs import Rule
from conformance.strategies import example_case
from conformance.templates import TEMPLATES, Template


@dataclass
class Outcome:
    """What one (rule, dtype) check found, beyond pytest's passed/failed/skipped."""

    rule: Rule
    dtype: str
    missing: list[str] = field(default_factory=list)
    """Capabilities, ops (``op:NAME``) or the device the engine lacks: the rule is unsupported."""
    failure: CheckFailure | None = None
    examples: int = 0
    """Cases run: explicit, generated and shrinking."""
    example_script: str | None = None
    """The script of the rule's first explicit example, as it ran."""
    repro_path: Path | None = None
    repro: Any = None
    """The repro's parts (``conformance.repro.Repro``), set with ``repro_path`` when the check failed."""
    replay: str = ""


def rule_seed(rule: Rule, dtype: str) -> int:
    """The gate's seed for one rule: a digest of its id and dtype, so the cases it draws depend only on
    the rule, the spec and Hypothesis, never on the suite's incidental source code."""
    return int.from_bytes(hashlib.sha256(f"{rule.id}/{dtype}".encode()).digest()[:8], "big")


def missing(adapter: Any, rule: Rule, dtype: str, device: str) -> list[str]:
    """Why ``adapter`` cannot run ``rule`` in ``dtype`` on ``device``; empty when it can."""
    needs = [*templates.needs(rule), dtype]
    lacks = [n for n in needs if n not in adapter.capabilities and n != "float32"]
    ops = adapter.ops
    lacks += [f"op:{name}" for name in sorted(TEMPLATES[rule.template].ops(rule)) if not hasattr(ops, name)]
    if device not in adapter.devices():
        lacks.append(f"device:{device}")
    return lacks


class InFlight:
    """The case a check is running, written down before it runs: if the engine crashes the process
    or hangs, the controller still knows the script that did it and can write its repro.

    One file per worker, kept open and overwritten in place: a write per case must cost microseconds.
    """

    def __init__(self, path: Path | None) -> None:
        self.fd = None if path is None else os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)

    def write(self, rule: Rule, dtype: str, case: Any, script: str) -> None:
        if self.fd is not None:
            data = json.dumps({"rule": rule.id, "dtype": dtype, "case": repr(case), "script": script}).encode()
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))

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
) -> Outcome:
    """Run ``rule`` in ``dtype`` through Hypothesis; the outcome holds the shrunk failure, if any.

    ``seed`` None is the gate's seed, fixed per rule; ``overrides`` replaces the loaded profile.
    """
    outcome = Outcome(rule, dtype, missing=missing(adapter, rule, dtype, device))
    template = TEMPLATES[rule.template]
    if outcome.missing:
        return outcome
    tolerances = dict(rule.tolerances)
    where = InFlight(inflight)
    seed = seed if seed is not None else rule_seed(rule, dtype)
    if isinstance(template, ModelTemplate):

        def progress(script: str | None) -> None:
            if script is None:
                outcome.examples += 1
            else:
                where.write(rule, dtype, f"{script.count(chr(10))} steps", script)

        test = template.test(adapter, rule, dtype, device, seed, overrides, progress)
    else:
        test = _property(adapter, rule, dtype, device, template, outcome, where, tolerances)
        if overrides is not None:
            test = overrides(test)
        test = hypothesis.seed(seed)(test)
    try:
        test()
    except CheckFailure as failure:
        failure.tolerances = tolerances
        outcome.failure = failure
    finally:
        where.close()
    return outcome


def _property(
    adapter: Any,
    rule: Rule,
    dtype: str,
    device: str,
    template: Template,
    outcome: Outcome,
    where: InFlight,
    tolerances: dict[str, tuple[float, float]],
) -> Callable[[], None]:
    """The Hypothesis test of a rule whose template draws cases and writes one script per case."""
    explicit = [template.example(rule, example_case(rule.given, raw, dtype)) for raw in rule.examples]
    first = explicit[0] if explicit else None
    filename = f"<rule {rule.id}>"

    def prop(case: Any) -> None:
        outcome.examples += 1
        script = template.script(rule, case)
        if case is first:
            outcome.example_script = script
        where.write(rule, dtype, case, script)
        namespace = runtime.bind(adapter, dtype, device, tolerances)
        execute(script, namespace, filename, case, dtype)

    # Every rule shares this inner function: key Hypothesis's database per rule.
    prop._hypothesis_internal_add_digest = f"{rule.id}/{dtype}".encode()  # type: ignore[attr-defined]
    test = given(template.strategy(rule, [dtype]))(prop)
    for case in reversed(explicit):
        test = example(case)(test)
    return test


def example_script(rule: Rule, dtype: str) -> str | None:
    """The script of the rule's first explicit example, for a rule that did not run (unsupported)."""
    if not rule.examples or isinstance(TEMPLATES[rule.template], ModelTemplate):
        return None
    template = TEMPLATES[rule.template]
    try:
        return template.script(rule, template.example(rule, example_case(rule.given, rule.examples[0], dtype)))
    except Exception as exc:  # the rule's own check reports this; the results must still be written
        return f"# the example's script could not be built: {type(exc).__name__}: {exc}"
