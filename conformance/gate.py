"""The CI gate: which results break a run, and the expected-failures file that records known gaps.

An engine gates its CI on the levels in ``--gate-levels`` (default ``required``). Known gaps are
written down in an expected-failures file (``--expected-failures FILE``, one per backend), so the
gate stays green for them while the report still shows them, with their reason::

    [[expected]]
    rule = "broadcasting.grad.sum-to-input-shape"
    dtype = "float16"                 # optional: every dtype when absent
    reason = "sum-to-shape accumulates in float16; fixed in 0.5"
    link = "https://github.com/me/engine/issues/12"   # optional

The property checks (the stateful model, the random programs) are rules like any other, in
``specs/properties.toml``, so their entries name them by rule id.

An entry naming no rule or check (or a dtype the rule does not run in) is an error: a stale file must
not hide anything. A listed check that crashes or times out is an expected failure too (a known hang is a
known gap; its failure kind says which). An expected failure that passes is reported ``unexpectedly_passed``;
it breaks the gate under ``--strict-expected``, so the file is kept honest.

An engine fault that strikes by chance, such as a hang that depends on what its worker process ran before,
moves from rule to rule between runs; its entry names the one status it excuses and the rules it may strike
as a pattern (``fnmatch``), and excuses nothing else. A check it matches that passes is simply passed::

    [[expected]]
    rule = "ops.*"
    status = "timeout"                # or "crashed"
    reason = "sum over a size-0 array sometimes spins"
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from conformance import specs

BREAKING = frozenset({"failed", "crashed", "timeout"})
"""Statuses that break the gate when the rule's level is gated."""
ALWAYS_BREAKING = frozenset({"error", "not_run"})
"""Statuses that break the gate at any level: the check could not be judged (an adapter mistake, an
internal error) or never ran (an interrupted run), so the run says nothing about that rule."""
JUDGED = frozenset({"passed", "failed", "expected_failure", "unexpectedly_passed", "crashed", "timeout", "error"})
"""Statuses of a check that was run against the engine: a run with none of them checked nothing."""
_ENTRY_KEYS = {"rule", "dtype", "reason", "link", "status"}
CHANCE = ("timeout", "crashed")
"""The statuses an entry may excuse alone (``status``): faults of the worker process, which can strike by chance."""


class GateError(ValueError):
    """An invalid ``--gate-levels`` value or expected-failures file."""


@dataclass(frozen=True)
class Expectation:
    """One entry of an expected-failures file."""

    rule: str
    """A rule id; with ``status``, a pattern of rule ids."""
    dtype: str | None
    reason: str
    link: str | None = None
    status: str | None = None
    """None: the rule fails. One of ``CHANCE``: only that status of a matching check is excused."""

    def names(self, rule_id: str) -> bool:
        """Whether the entry is about ``rule_id``: its id, or (with ``status``) a rule its pattern matches."""
        return self.rule == rule_id if self.status is None else fnmatchcase(rule_id, self.rule)

    def covers(self, rule_id: str, dtype: str, status: str | None = None) -> bool:
        """Whether the entry excuses ``rule_id`` in ``dtype`` ending with ``status`` (None: any failure)."""
        return self.dtype in (dtype, None) and self.status in (None, status) and self.names(rule_id)

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "link": self.link}


def parse_levels(value: str) -> tuple[str, ...]:
    levels = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [v for v in levels if v not in specs.LEVELS]
    if unknown:
        raise GateError(f"--gate-levels: unknown levels {unknown}; known: {', '.join(specs.LEVELS)}")
    return levels


def load_expectations(path: Path, rules: Iterable[specs.Rule]) -> list[Expectation]:
    """Parse and check ``path`` against the catalog ``rules``; every problem names its entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GateError(f"{path}: {exc}") from exc
    if set(data) - {"expected"} or not isinstance(data.get("expected", []), list):
        raise GateError(f"{path}: expected only [[expected]] tables, got keys {sorted(data)}")
    by_id = {r.id: r for r in rules}
    entries: list[Expectation] = []
    for i, raw in enumerate(data.get("expected", [])):
        where = f"{path}: [[expected]] #{i + 1}"
        if not isinstance(raw, dict) or set(raw) - _ENTRY_KEYS:
            raise GateError(f"{where}: a table with keys from {sorted(_ENTRY_KEYS)}")
        rule, dtype, reason, link, status = (raw.get(k) for k in ("rule", "dtype", "reason", "link", "status"))
        if status is not None and status not in CHANCE:
            raise GateError(f"{where}: 'status' must be one of {list(CHANCE)} (absent: the rule fails)")
        named = Expectation(rule, dtype, "", status=status)
        targets = [r for rid, r in by_id.items() if isinstance(rule, str) and named.names(rid)]
        if not targets:
            what = "rule" if status is None else "rule pattern"
            raise GateError(f"{where}: {what} {rule!r} matches no rule of the suite (stale entry?)")
        runs = sorted({d for r in targets for d in r.dtypes})
        if dtype is not None and dtype not in runs:
            raise GateError(f"{where}: rule {rule!r} does not run in dtype {dtype!r} (it runs in {runs})")
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason.strip():
            raise GateError(f"{where}: 'reason' must be one line saying why the engine fails {rule!r}")
        if link is not None and not isinstance(link, str):
            raise GateError(f"{where}: 'link' must be a string")
        entry = Expectation(rule, dtype, reason.strip(), link, status)
        if any((e.rule, e.dtype, e.status) == (entry.rule, entry.dtype, entry.status) for e in entries):
            raise GateError(f"{where}: duplicate entry for {rule!r}" + (f" in {dtype}" if dtype else ""))
        entries.append(entry)
    return entries


@dataclass(frozen=True)
class Gate:
    """The gated levels and the known gaps: decides which results break a run."""

    levels: tuple[str, ...] = ("required",)
    expectations: tuple[Expectation, ...] = ()
    strict_expected: bool = False

    def expected(self, rule_id: str, dtype: str, status: str | None = None) -> Expectation | None:
        """The entry excusing (rule, dtype) ending with ``status`` (None: any failure, as known before the check
        runs); an entry for the rule wins over a pattern, a dtype-specific one over a rule-wide one."""
        matches = [e for e in self.expectations if e.covers(rule_id, dtype, status)]
        return min(matches, key=lambda e: (e.status is not None, e.dtype is None), default=None)

    def failing(self, dtype: str) -> frozenset[str]:
        """The rules listed as failing in ``dtype`` (not those listed for a status that strikes by chance)."""
        return frozenset(e.rule for e in self.expectations if e.status is None and e.dtype in (dtype, None))

    def breaks(self, result: Mapping[str, Any]) -> bool:
        """Whether one result (a record of the results file) breaks the gate."""
        if result["status"] == "unexpectedly_passed":
            return self.strict_expected
        if result["status"] in ALWAYS_BREAKING:
            return True
        return result["status"] in BREAKING and result["level"] in self.levels

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
            "strict_expected": self.strict_expected,
            "expected_failures": [
                {"rule": e.rule, "dtype": e.dtype, "status": e.status, **e.as_dict()} for e in self.expectations
            ],
            "holds": not broken_by,
            "broken_by": broken_by,
        }
