"""Rendering results documents into the HTML report.

The report is one file with its CSS and JS inlined and no external reference, so it opens offline
and travels as a CI artifact. It merges several runs (``results.merge``) into one matrix of
rules x (engine, dtype); everything the filters act on is in ``data-*`` attributes of the markup.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

import conformance
from conformance.spec import specs
from conformance.verdict import results

STATUS_MARKS = {
    "passed": "✓",
    "failed": "✗",
    "expected_failure": "x",
    "unexpectedly_passed": "!",
    "unsupported": "\u2013",
    "error": "E",
    "crashed": "☠",
    "timeout": "⌛",
    "not_run": "?",
}
"""A glyph per status: statuses stay distinct without colour (and in print)."""
CONFORMING = frozenset({"passed", "unexpectedly_passed"})
TRIAGED = ("failed", "crashed", "timeout", "error", "not_run", "expected_failure", "unexpectedly_passed")
"""Statuses that get a triage card, most urgent first."""
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("conformance.report", "."),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _labels(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column labels: the backend name, qualified by adapter class and device only when ambiguous."""
    names = Counter(d["backend"]["name"] for d in docs)
    labels = []
    for d in docs:
        label = d["backend"]["name"]
        if names[label] > 1:
            adapter = d["backend"]["adapter"].rpartition(":")[2]
            label += f" ({adapter}, {d['device']})" if d["device"] != "cpu" else f" ({adapter})"
        labels.append(label)
    return labels


def _rate(counts: Mapping[str, int]) -> dict[str, Any]:
    """Conformance of a group of results: conforming / applicable (unsupported ones are not applicable)."""
    applicable = sum(counts.values()) - counts.get("unsupported", 0)
    conforming = sum(counts.get(s, 0) for s in CONFORMING)
    return {
        "counts": dict(counts),
        "applicable": applicable,
        "conforming": conforming,
        "percent": None if applicable == 0 else round(100 * conforming / applicable, 1),
        "total": sum(counts.values()),
    }


def model(docs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What the template shows, computed once here so the template only lays it out."""
    runs = results.merge(docs)
    labels = _labels(runs)
    engines = [{"index": i, "label": labels[i], **run} for i, run in enumerate(runs)]
    columns = [{"engine": e, "dtype": dtype} for e in engines for dtype in e["dtypes"]]
    cells: dict[tuple[str, int, str], dict[str, Any]] = {}
    docs_of_rule: dict[str, dict[str, Any]] = {}
    for e in engines:
        for r in e["results"]:
            cells[r["id"], e["index"], r["dtype"]] = r
            docs_of_rule.setdefault(r["id"], r)
    ordered = sorted(docs_of_rule.values(), key=lambda r: (r["area"], specs.LEVELS.index(r["level"]), r["id"]))
    rules = []
    for doc in ordered:
        row = [cells.get((doc["id"], c["engine"]["index"], c["dtype"])) for c in columns]
        rules.append({**doc, "cells": row, "statuses": sorted({c["status"] for c in row if c})})
    areas = sorted({r["area"] for r in ordered})
    by_group: dict[tuple[str, str | None, int], Counter[str]] = defaultdict(Counter)
    for e in engines:
        for r in e["results"]:
            for level in (r["level"], None):
                by_group[r["area"], level, e["index"]][r["status"]] += 1
                by_group["", level, e["index"]][r["status"]] += 1
    rates = {key: _rate(counts) for key, counts in by_group.items()}
    shared: dict[str, str] = {}
    triage = _triage(engines, shared)
    findings = {e["index"]: _findings(e) for e in engines}
    return {
        "suite_version": conformance.__version__,
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "engines": engines,
        "columns": columns,
        "rules": rules,
        "areas": areas,
        "levels": specs.LEVELS,
        "rates": rates,
        "statuses": results.STATUSES,
        "marks": STATUS_MARKS,
        "triage": triage,
        "findings": findings,
        "shared": {key: text for text, key in shared.items()},
    }


DEVIATIONS = ("failed", "crashed", "timeout", "error")
"""Statuses of a deviation no finding explains: a new bug of the engine (or a mistake of its adapter)."""


def _findings(engine: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's findings, each with the checks it explained and those where it is stale, then the deviations no
    finding explains (one line per rule): what an engine author acts on, before the rules."""
    defined = {f["id"]: {**f, "checks": [], "stale": []} for f in engine["gate"].get("findings") or ()}
    unexplained: dict[str, dict[str, Any]] = {}
    for r in engine["results"]:
        for struck in (r["expected"] or {}).get("findings") or ():
            if struck["id"] not in defined:
                continue
            if r["status"] == "expected_failure" and struck["cases"]:
                defined[struck["id"]]["checks"].append(r)
            elif r["status"] == "unexpectedly_passed":
                defined[struck["id"]]["stale"].append(r)
        if r["status"] in DEVIATIONS:
            failure = r["failure"] or {}
            why = (failure.get("message") or r["error"] or "").split("\n")[0]
            entry = unexplained.setdefault(
                r["id"], {"rule": r, "dtypes": [], "statuses": set(), "why": why, "repro": failure.get("repro_path")}
            )
            entry["dtypes"].append(r["dtype"])
            entry["statuses"].add(r["status"])
    found = sorted(defined.values(), key=lambda f: (f["class"] != "bug", f["upstream"] != "not reported", f["id"]))
    counts = Counter(f["class"] for f in found)
    return {
        "findings": found,
        "bugs": counts["bug"],
        "designs": counts["design"],
        "unreported": sum(f["class"] == "bug" and f["upstream"] == "not reported" for f in found),
        "explained": sum(len(f["checks"]) for f in found),
        "unexplained": [{**u, "statuses": sorted(u["statuses"])} for u in unexplained.values()],
    }


def findings_cell(run: Mapping[str, Any]) -> str:
    """The README's findings column: bugs (not reported upstream) and designs."""
    f = _findings(run)
    return f"{f['bugs']} bugs ({f['unreported']} not reported), {f['designs']} design" if f["findings"] else "none"


def readme_table(docs: Iterable[Mapping[str, Any]]) -> str:
    """A Markdown table of the engines: version, and conformance per level (passed / applicable), unsupported apart."""
    runs = results.merge(docs)
    head = "| engine | version | findings | " + " | ".join(specs.LEVELS) + " | unsupported | gate |\n"
    head += "|---|---|---|" + "---:|" * len(specs.LEVELS) + "---:|---|\n"
    rows = []
    for run in runs:
        cells = []
        for level in specs.LEVELS:
            rate = _rate(Counter(r["status"] for r in run["results"] if r["level"] == level))
            cells.append(f"{rate['conforming']}/{rate['applicable']}" if rate["applicable"] else "n/a")
        unsupported = sum(r["status"] == "unsupported" for r in run["results"])
        gate = "holds" if run["gate"]["holds"] else "broken"
        rows.append(
            f"| {run['backend']['name']} | {run['backend']['version']} | {findings_cell(run)} | {' | '.join(cells)}"
            f" | {unsupported} | {gate} |"
        )
    return head + "\n".join(rows) + "\n"


def _triage(engines: Sequence[Mapping[str, Any]], shared: dict[str, str]) -> list[dict[str, Any]]:
    """Failure cards: one group per kind of first divergence, one card per rule, one entry per engine x dtype.

    ``shared`` collects the repro parts common to many scripts (text -> key), so the report holds each once.
    """
    cards: dict[tuple[str, str], dict[str, Any]] = {}
    for e in engines:
        for r in e["results"]:
            if r["status"] not in TRIAGED:
                continue
            failure = r["failure"] or {}
            kind = failure.get("kind") or r["status"]
            card = cards.setdefault((kind, r["id"]), {"kind": kind, "rule": r, "entries": []})
            parts = failure.get("repro") or {}
            library = e.get("repro_library") or ""
            key = shared.setdefault(library, f"repro-lib-{len(shared)}") if library else ""
            repro = {"head": parts.get("head", ""), "shared": key, "tail": parts.get("script", "")}
            card["entries"].append({"engine": e, "result": r, "failure": failure, "repro": repro})
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for card in cards.values():
        card["engines"] = sorted({entry["engine"]["index"] for entry in card["entries"]})
        card["statuses"] = sorted({entry["result"]["status"] for entry in card["entries"]})
        groups[card["kind"]].append(card)
    order = {kind: i for i, kind in enumerate(["not_run", "error", *results.KINDS, "unexpectedly_passed"])}
    return [
        {"kind": kind, "cards": sorted(group, key=lambda c: (min(map(TRIAGED.index, c["statuses"])), c["rule"]["id"]))}
        for kind, group in sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order)))
    ]


def render(docs: Iterable[Mapping[str, Any]]) -> str:
    return _ENV.get_template("report.html.j2").render(**model(docs))


def write(path: Path, docs: Iterable[Mapping[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(docs), encoding="utf-8")
