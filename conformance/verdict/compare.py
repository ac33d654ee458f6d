"""What changed between two runs of one engine: ``python -m conformance compare OLD.json NEW.json``.

The gate says whether one run holds; a release of an engine, or a change to its adapter, is judged by what it
moved: which rules and dtypes newly fail or newly pass, which changed otherwise (a capability declared or
dropped), which appeared or went with the spec, and which known gaps were listed or struck off. Like
``conformance.verdict.results`` this is pure data (no pytest, no Hypothesis), so reading two runs needs no test tooling.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conformance
from conformance.verdict import results

PASSING = frozenset({"passed", "unexpectedly_passed"})
"""The engine did what the rule says (an unexpected pass is a pass where a finding foresaw a failure)."""
FAILING = frozenset({"failed", "error", "crashed", "timeout"})
"""The engine or its adapter did not, and no finding excused it."""
SECTIONS = {
    "newly_failing": "newly failing",
    "newly_passing": "newly passing",
    "changed": "status changed otherwise",
    "added": "rules added",
    "gone": "rules gone",
    "findings_added": "findings added",
    "findings_gone": "findings gone",
}
"""The kinds of change, in the order they are shown: the ones a reviewer acts on first."""


@dataclass(frozen=True)
class Run:
    """Which run a side of the comparison is, and its verdict: enough to tell two releases apart."""

    name: str
    backend: str
    version: str
    device: str
    created: str | None
    spec_version: str
    holds: bool
    broken_by: tuple[str, ...]
    incomplete: str | None
    summary: dict[str, int]


@dataclass(frozen=True)
class Change:
    """One (rule, dtype) whose status differs; ``None`` for the side that lacks it."""

    rule: str
    dtype: str
    level: str
    old: str | None
    new: str | None
    detail: str
    """Why, in one line: the divergence or error of the failing side, or the capability the engine lacks."""


@dataclass(frozen=True)
class Listed:
    """A finding of a run's findings file; findings are the same when their ids are (the title may be reworded)."""

    id: str
    title: str
    klass: str
    upstream: str


@dataclass(frozen=True)
class Comparison:
    """Every change from ``old`` to ``new``, by kind (``SECTIONS``), each sorted by rule id then dtype."""

    old: Run
    new: Run
    newly_failing: tuple[Change, ...]
    newly_passing: tuple[Change, ...]
    changed: tuple[Change, ...]
    added: tuple[Change, ...]
    gone: tuple[Change, ...]
    findings_added: tuple[Listed, ...]
    findings_gone: tuple[Listed, ...]
    unchanged: int
    """Results present in both runs with the same status."""

    def counts(self) -> dict[str, int]:
        return {key: len(getattr(self, key)) for key in SECTIONS}


def kind(old: str, new: str) -> str:
    """The section of a status change. An expected failure is a known gap: next to a real failure it counts as
    passing (the failure is excused now, or was), next to a pass as failing (the rule no longer holds, or now does)."""
    holding = PASSING | {"expected_failure"}
    if (old in holding and new in FAILING) or (old in PASSING and new == "expected_failure"):
        return "newly_failing"
    if (old in FAILING and new in holding) or (old == "expected_failure" and new in PASSING):
        return "newly_passing"
    return "changed"


def _first_line(text: Any) -> str:
    return next((line.strip() for line in str(text or "").splitlines() if line.strip()), "")


def detail(result: Mapping[str, Any] | None) -> str:
    """Why a result is what it is, in one line (empty for a plain pass)."""
    if not result:
        return ""
    if result.get("failure"):
        return f"[{result['failure'].get('kind')}] {_first_line(result['failure'].get('message'))}"
    if result.get("error"):
        return _first_line(result["error"])
    return "lacks " + ", ".join(result["missing"]) if result.get("missing") else ""


def _run(name: str, doc: Mapping[str, Any]) -> Run:
    gate = doc["gate"]
    return Run(
        name=name,
        backend=doc["backend"]["name"],
        version=doc["backend"]["version"],
        device=doc["device"],
        created=doc.get("created"),
        spec_version=doc["spec_version"],
        holds=gate["holds"],
        broken_by=tuple(gate.get("broken_by") or ()),
        incomplete=doc.get("incomplete"),
        summary=dict(doc["summary"]),
    )


def _findings(doc: Mapping[str, Any]) -> dict[str, Listed]:
    return {f["id"]: Listed(f["id"], f["title"], f["class"], f["upstream"]) for f in doc["gate"].get("findings") or ()}


def compare(old: Mapping[str, Any], new: Mapping[str, Any], old_name: str = "old", new_name: str = "new") -> Comparison:
    """The changes from results document ``old`` to ``new`` (both as ``results.load`` returns them)."""
    before = {(r["id"], r["dtype"]): r for r in old["results"]}
    after = {(r["id"], r["dtype"]): r for r in new["results"]}
    found: dict[str, list[Change]] = {key: [] for key in SECTIONS if not key.startswith("findings")}
    unchanged = 0
    for key in sorted(before.keys() | after.keys(), key=lambda k: results.sort_key({"id": k[0], "dtype": k[1]})):
        was, now = before.get(key), after.get(key)
        if was and now and was["status"] == now["status"]:
            unchanged += 1
            continue
        section = "added" if not was else "gone" if not now else kind(was["status"], now["status"])
        level = (now or was or {})["level"]
        why = detail(now) or detail(was)
        statuses = (was["status"] if was else None, now["status"] if now else None)
        found[section].append(Change(key[0], key[1], level, *statuses, why))
    listed, listing = _findings(old), _findings(new)
    order = sorted(listed.keys() | listing.keys())
    return Comparison(
        old=_run(old_name, old),
        new=_run(new_name, new),
        **{key: tuple(changes) for key, changes in found.items()},
        findings_added=tuple(listing[k] for k in order if k not in listed),
        findings_gone=tuple(listed[k] for k in order if k not in listing),
        unchanged=unchanged,
    )


def _run_line(side: str, run: Run) -> str:
    gate = "holds" if run.holds else f"broken ({len(run.broken_by)} breaking)"
    incomplete = f", incomplete: {run.incomplete}" if run.incomplete else ""
    return f"{side}: {run.backend} {run.version} on {run.device}, created {run.created} ({run.name}): gate {gate}{incomplete}"


def line(item: Change | Listed) -> str:
    """One change as ``RULE[DTYPE]: OLD -> NEW  why``, or one finding with its class, upstream status and title."""
    if isinstance(item, Listed):
        return f"{item.id} ({item.klass}, {item.upstream}): {item.title}"
    why = f"  {item.detail}" if item.detail else ""
    return f"{item.rule}[{item.dtype}]: {item.old or 'absent'} -> {item.new or 'absent'}{why}"


def text(comparison: Comparison) -> str:
    """The comparison for a terminal or a CI log: header, one section per kind of change present, then counts."""
    c = comparison
    lines = [_run_line("old", c.old), _run_line("new", c.new)]
    if c.old.spec_version != c.new.spec_version:
        lines.append(f"spec versions differ ({c.old.spec_version} -> {c.new.spec_version}): rules may be added or gone")
    counts = c.counts()
    for key, title in SECTIONS.items():
        if counts[key]:
            lines += ["", f"{title} ({counts[key]}):", *(f"  {line(item)}" for item in getattr(c, key))]
    if any(counts.values()):
        changed = ", ".join(f"{SECTIONS[key]} {n}" for key, n in counts.items() if n)
        lines += ["", f"{changed}; unchanged {c.unchanged}"]
    else:
        lines.append(f"nothing changed: the same status for all {c.unchanged} results, and the same findings")
    return "\n".join(lines) + "\n"


def data(comparison: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data (documented in docs/results-schema.md)."""
    doc = dataclasses.asdict(comparison)
    return {"schema": "autograd-conformance-compare", "schema_version": 1, **doc, "counts": comparison.counts()}


def html(comparison: Comparison) -> str:
    """A self-contained page (the report's CSS inlined, nothing external), from ``report/compare.j2``."""
    import jinja2

    from conformance.report.render import STATUS_MARKS

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("conformance.report", "."), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    sections = [
        {"key": key, "title": title, "rows": getattr(comparison, key)}
        for key, title in SECTIONS.items()
        if getattr(comparison, key)
    ]
    return env.get_template("compare.j2").render(
        c=comparison,
        sections=sections,
        marks=STATUS_MARKS,
        suite_version=conformance.__version__,
        generated=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")


def write_json(path: Path, comparison: Comparison) -> None:
    write(path, json.dumps(data(comparison), indent=1) + "\n")
