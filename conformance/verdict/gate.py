"""The CI gate: which results break a run.

A run's verdict counts every rule the engine can run (its capabilities are declared) at the gated levels
(``--gate-levels``, default all three: a level says how universal a semantics is, what an engine may lack, not
whether a declared capability's rules bind). Conventions (``convention = true`` in a rule: ties split, a clamp's
bounds) stay outside unless ``--gate-conventions``, for an engine that claims PyTorch parity.

Known divergences are findings (``conformance.verdict.findings``, ``--findings FILE``), one root cause each, whose
excuses set aside only the cases and divergences that cause produces; a result whose excused cases were all it
failed on is ``expected_failure``. One that a finding names but that struck no case is ``unexpectedly_passed``
(the finding is stale there): reported, and breaking under ``--strict-expected`` unless the finding is
``nondeterministic``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.spec import specs
from conformance.verdict.findings import NO_FINDINGS, Findings

BREAKING = frozenset({"failed", "crashed", "timeout"})
"""Statuses that break the gate when the rule is gated (its level, and not a convention unless asked for)."""
ALWAYS_BREAKING = frozenset({"error", "not_run"})
"""Statuses that break the gate at any level: the check could not be judged (an adapter mistake, an
internal error) or never ran (an interrupted run), so the run says nothing about that rule."""
JUDGED = frozenset({"passed", "failed", "expected_failure", "unexpectedly_passed", "crashed", "timeout", "error"})
"""Statuses of a check that was run against the engine: a run with none of them checked nothing."""


class GateError(ValueError):
    """An invalid ``--gate-levels`` value or findings file."""


def parse_levels(value: str) -> tuple[str, ...]:
    levels = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [v for v in levels if v not in specs.LEVELS]
    if unknown:
        raise GateError(f"--gate-levels: unknown levels {unknown}; known: {', '.join(specs.LEVELS)}")
    return levels


@dataclass(frozen=True)
class Gate:
    """The gated levels, conventions and findings: decides which results break a run."""

    levels: tuple[str, ...] = specs.LEVELS
    findings: Findings = NO_FINDINGS
    strict_expected: bool = False
    conventions: bool = False
    """Whether convention rules are gated too (``--gate-conventions``)."""

    def gated(self, result: Mapping[str, Any]) -> bool:
        """Whether a failure of this result's rule breaks the gate: its level, and a convention only if asked."""
        return result["level"] in self.levels and (self.conventions or not result.get("convention", False))

    def breaks(self, result: Mapping[str, Any]) -> bool:
        """Whether one result (a record of the results file) breaks the gate."""
        if result["status"] == "unexpectedly_passed":
            return self.strict_expected and self.gated(result)
        if result["status"] in ALWAYS_BREAKING:
            return True
        return result["status"] in BREAKING and self.gated(result)

    def broken_by(self, results: Iterable[Mapping[str, Any]], incomplete: Any = None) -> list[str]:
        """Why the gate does not hold: each breaking result, an incomplete run, a run that checked nothing."""
        results = list(results)
        broken = [f"{r['id']}[{r['dtype']}]: {r['status']}" for r in results if self.breaks(r)]
        if incomplete:
            broken.append(f"the run is incomplete: {incomplete}")
        if not any(r["status"] in JUDGED for r in results):
            broken.append("nothing was checked: no rule ran against the engine (all unsupported, or none selected)")
        return broken

    def verdict(self, results: Iterable[Mapping[str, Any]], incomplete: Any = None) -> dict[str, Any]:
        """The ``gate`` section of the results file."""
        broken_by = self.broken_by(results, incomplete)
        return {
            "levels": list(self.levels),
            "conventions": self.conventions,
            "strict_expected": self.strict_expected,
            "findings": [f.as_dict() for f in self.findings.findings],
            "holds": not broken_by,
            "broken_by": broken_by,
        }
