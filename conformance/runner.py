"""Running one case of one rule against an adapter, and explaining a failure."""

from __future__ import annotations

import sys
import traceback
from typing import Any

from conformance import runtime
from conformance.runtime import ConformanceFailure
from conformance.specs import Rule
from conformance.strategies import Case
from conformance.templates import TEMPLATES


class RuleFailure(AssertionError):
    """A rule's check diverged, or the engine raised where the rule expected none.

    Carries what a report needs: the kind of divergence, the failing script line, the script.
    """

    def __init__(self, rule: Rule, case: Case, kind: str, message: str, line: str, script: str) -> None:
        super().__init__(f"[{kind}] {message}\n  at: {line}")
        self.rule, self.case, self.kind, self.detail, self.line, self.script = rule, case, kind, message, line, script


def script_for(rule: Rule, case: Case) -> str:
    return TEMPLATES[rule.template].script(rule, case)


def run_case(adapter: Any, rule: Rule, case: Case, device: str) -> None:
    """Run one case; raise ``RuleFailure`` if the engine breaks the rule."""
    script = script_for(rule, case)
    namespace = runtime.bind(adapter, case.dtype, device, dict(rule.tolerances))
    filename = f"<rule {rule.id}>"
    try:
        exec(compile(script, filename, "exec"), namespace)
    except ConformanceFailure as exc:
        raise RuleFailure(rule, case, exc.kind, exc.detail, _failing_line(script, filename), script) from exc
    except Exception as exc:  # the engine misbehaved: this rule fails, the run goes on
        message = f"{type(exc).__name__}: {exc}"
        raise RuleFailure(rule, case, "unexpected_error", message, _failing_line(script, filename), script) from exc


def _failing_line(script: str, filename: str) -> str:
    """The script line the exception passed through last (checks are one line each)."""
    lines = script.splitlines()
    for frame in reversed(traceback.extract_tb(sys.exc_info()[2])):
        if frame.filename == filename and frame.lineno and frame.lineno <= len(lines):
            return lines[frame.lineno - 1].strip()
    return "?"
