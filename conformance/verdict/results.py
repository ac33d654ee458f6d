"""Conformance results as data: the schema of a run's JSON file, validating, loading and merging it.

Pure data: no pytest and no Hypothesis here, so ``python -m conformance report`` and any other
reader import only this. The pytest side that fills a document is ``conformance.pytest_plugin.collector``. The
schema is documented in ``docs/results-schema.md``. ``SCHEMA_VERSION`` changes when a field changes
meaning or goes away; adding a field does not change it, so readers ignore unknown keys.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.execute.runtime import ConformanceFailure
from conformance.spec import specs
from conformance.verdict.findings import NO_FINDINGS
from conformance.verdict.gate import Gate

SCHEMA = "autograd-conformance-results"
SCHEMA_VERSION = 3
STATUSES = (
    "passed",
    "failed",
    "expected_failure",
    "unexpectedly_passed",
    "unsupported",
    "error",
    "crashed",
    "timeout",
    "not_run",
)
KINDS = (*ConformanceFailure.KINDS, "crashed", "timeout")
"""Kinds of first divergence: the runtime's checks, and a process that crashed or hung."""
_DOCUMENT_KEYS = {
    "schema": str,
    "schema_version": int,
    "suite_version": str,
    "spec_version": str,
    "backend": dict,
    "device": str,
    "dtypes": list,
    "profile": str,
    "duration_s": (int, float),
    "gate": dict,
    "summary": dict,
    "results": list,
}
_RESULT_KEYS = {"id": str, "area": str, "level": str, "statement": str, "dtype": str, "status": str}


class ResultsError(ValueError):
    """A file that is not a conformance results file this suite can read; the message says what is wrong."""


def record(rule: specs.Rule, dtype: str, status: str, **facts: Any) -> dict[str, Any]:
    """One (rule, dtype) result of the results file; ``facts`` fill the per-status fields."""
    return {
        "id": rule.id,
        "area": rule.area,
        "level": rule.level,
        "convention": rule.convention,
        "statement": rule.statement,
        "references": list(rule.references),
        "dtype": dtype,
        "status": status,
        "missing": [],
        "expected": None,
        "examples_run": None,
        "duration_s": None,
        "engine_s": None,
        "peak_rss_mb": None,
        "example": rule.examples[0] if rule.examples else None,
        "example_script": None,
        "failure": None,
        "error": None,
        **facts,
    }


def sort_key(result: Mapping[str, Any]) -> tuple[str, int]:
    return result["id"], specs.DTYPES.index(result["dtype"])


def summary(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = Counter(r["status"] for r in results)
    return {status: counts[status] for status in STATUSES}


def write(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def problems(doc: Any) -> list[str]:
    """What makes ``doc`` not a valid results document of this schema version; empty when it is one."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return [f'not a conformance results file (no "schema": {SCHEMA!r})']
    if doc.get("schema_version") != SCHEMA_VERSION:
        return [f"schema version {doc.get('schema_version')!r}; this suite reads {SCHEMA_VERSION}"]
    found = [f"{key!r} is missing" for key in _DOCUMENT_KEYS if key not in doc]
    found += [
        f"{key!r} must be {_names(kind)}, got {type(doc[key]).__name__}"
        for key, kind in _DOCUMENT_KEYS.items()
        if key in doc and not isinstance(doc[key], kind)
    ]
    if found:
        return found
    for key in ("name", "version", "adapter"):
        if not isinstance(doc["backend"].get(key), str):
            found.append(f"'backend.{key}' must be a string")
    if not isinstance(doc["gate"].get("holds"), bool) or not isinstance(doc["gate"].get("levels"), list):
        found.append("'gate' needs 'holds' (true or false) and 'levels' (a list)")
    if not isinstance(doc["gate"].get("findings"), list):
        found.append("'gate' needs 'findings' (a list)")
    for i, result in enumerate(doc["results"]):
        where = f"results[{i}]"
        if not isinstance(result, dict):
            found.append(f"{where} must be an object")
            continue
        found += [f"{where}: {key!r} must be a string" for key in _RESULT_KEYS if not isinstance(result.get(key), str)]
        if result.get("status") not in (*STATUSES, None) and isinstance(result.get("status"), str):
            found.append(f"{where}: unknown status {result['status']!r}; known: {', '.join(STATUSES)}")
        if isinstance(result.get("dtype"), str) and result["dtype"] not in specs.DTYPES:
            found.append(f"{where}: unknown dtype {result['dtype']!r}")
        if len(found) > 20:
            return [*found, "..."]
    return found


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def load(path: Path) -> dict[str, Any]:
    """A results file, checked against this suite's schema; a ``ResultsError`` names what is wrong."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: {exc}") from exc
    found = problems(doc)
    if found:
        raise ResultsError(f"{path}: " + "; ".join(found))
    return doc


def run_key(doc: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """Which engine a document is about: results of the same key merge into one."""
    backend = doc["backend"]
    return backend["name"], backend["adapter"], backend["version"], doc["device"]


def merge(docs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One document per engine (``run_key``), in order of first appearance.

    Documents of the same engine (runs split by dtype or spec file, or a rerun) are combined;
    for a (rule, dtype) present in several, the last one wins. A merged document is incomplete
    when any of its runs was.
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
        into["results"] = sorted(by_case.values(), key=sort_key)
        into["duration_s"] = into["duration_s"] + doc["duration_s"]
        into["incomplete"] = into.get("incomplete") or doc.get("incomplete")
        # findings' excuses are already in the statuses: the first run's levels decide the rest
        g = into["gate"]
        gate = Gate(tuple(g["levels"]), NO_FINDINGS, g.get("strict_expected", False), g.get("conventions", False))
        broken = gate.broken_by(into["results"], into.get("incomplete"))
        into["gate"].update(holds=not broken, broken_by=broken)
    for doc in merged.values():
        doc["summary"] = summary(doc["results"])
    return list(merged.values())
