"""Results documents for the tests of results, gate and report: from real runs, or made up.

Real runs go through a subprocess, as CI runs the suite, on one small spec file and a few rules,
so the exit code, the options and pytest-xdist are exercised as they are in use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conformance.verdict import results
from conformance.verdict.gate import JUDGED
from tests.broken import all_broken

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "broadcasting.toml"
BROKEN_RULE = "broadcasting.forward.trailing-alignment"
"""A required rule some broken adapter breaks (the tests look the adapter up, so renames do not matter)."""
PASSING_RULE = "broadcasting.grad.sum-to-input-shape"
"""A required rule that the same broken adapter leaves passing."""


def broken_backend(rule_id: str = BROKEN_RULE) -> str:
    """``module:Class`` of a broken adapter that breaks ``rule_id`` but not ``PASSING_RULE``."""
    cls = next(c for c in all_broken() if rule_id in c.breaks and PASSING_RULE not in c.breaks)
    return f"{cls.__module__}:{cls.__qualname__}"


def run_suite(
    tmp_path: Path, backend: str, *args: str, rules: tuple[str, ...] = (BROKEN_RULE, PASSING_RULE), spec: Path = SPEC
):
    """Run ``pytest conformance`` on ``rules``; returns (exit code, output, results document or None)."""
    out = tmp_path / f"results-{len(list(tmp_path.glob('results-*.json')))}.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "conformance",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--backend={backend}",
        f"--specs={spec}",
        "-k",
        " or ".join(rules),
        f"--results-json={out}",
        f"--repro-dir={tmp_path / 'repro'}",
        *args,
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    doc = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, doc


def made_up_doc(name: str, statuses: dict[tuple[str, str], str], **overrides: Any) -> dict[str, Any]:
    """A results document for backend ``name`` with the given (rule id, dtype) -> status."""
    records = []
    for (rule_id, dtype), status in statuses.items():
        failed = status in ("failed", "expected_failure")
        records.append(
            {
                "id": rule_id,
                "area": rule_id.split(".")[0],
                "level": "recommended" if ".rec-" in rule_id else "required",
                "convention": False,
                "statement": f"The rule {rule_id} <holds> & more.",
                "references": ["https://example.org/spec"],
                "dtype": dtype,
                "status": status,
                "missing": ["higher_order"] if status == "unsupported" else [],
                "expected": {
                    "findings": [{"id": f"{name}/known-gap", "title": "known gap", "class": "bug", "cases": 1}],
                    "reason": "known gap",
                    "link": None,
                }
                if status in ("expected_failure", "unexpectedly_passed")
                else None,
                "examples_run": 3,
                "duration_s": 0.01,
                "example": {"shapes": {"x": [2]}},
                "example_script": "x = tensor(X)\n",
                "failure": {
                    "kind": "value",
                    "message": "values differ",
                    "line": "expect_close(out, EXPECTED)",
                    "case": "Case(dtype='float32', x=[1.] (shape (1,)))",
                    "counterexample": {"dtype": dtype, "values": {"x": [1.0]}, "shapes": {}, "result": [1]},
                    "script": "out = neg(x)\nexpect_close(out, EXPECTED)\n",
                    "repro_path": f".conformance/repro/{rule_id}-{dtype}.py",
                    "repro": {
                        "head": f'"""head {rule_id}"""\n',
                        "script": f"# ---- the check's script, on the shrunk case ----\nout = neg(x)  # {rule_id}\n",
                    },
                    "replay": f"pytest conformance --backend={name} -k {rule_id}",
                }
                if failed
                else None,
                "error": "Traceback: boom" if status == "error" else None,
            }
        )
    gate_broken = [f"{r['id']}[{r['dtype']}]: {r['status']}" for r in records if r["status"] in ("failed", "error")]
    if records and not any(r["status"] in JUDGED for r in records):
        gate_broken.append("nothing was checked")
    doc = {
        "schema": results.SCHEMA,
        "schema_version": results.SCHEMA_VERSION,
        "suite_version": "0.1.0",
        "spec_version": "abc",
        "created": "2025-01-01T00:00:00+00:00",
        "backend": {"name": name, "version": "1.0", "adapter": f"engines.{name}:Adapter"},
        "device": "cpu",
        "dtypes": sorted({dtype for _, dtype in statuses}),
        "profile": "gate",
        "seed": None,
        "platform": {"python": "3.11", "system": "Linux", "machine": "x86_64"},
        "duration_s": 1.0,
        "incomplete": None,
        "isolated": True,
        "repro_library": "# ---- inlined from runtime ----\nSHARED = 1\n",
        "gate": {
            "levels": ["required"],
            "conventions": False,
            "strict_expected": False,
            "findings": [
                {
                    "id": f"{name}/known-gap",
                    "title": "known gap",
                    "class": "bug",
                    "upstream": "not reported",
                    "links": [],
                    "versions": ["1.0"],
                    "nondeterministic": False,
                    "report": None,
                    "repro": "import engine\n",
                    "excuses": [],
                }
            ]
            if any(r["expected"] for r in records)
            else [],
            "holds": not gate_broken,
            "broken_by": gate_broken,
        },
        "summary": results.summary(records),
        "results": records,
    }
    return {**doc, **overrides}
