"""Findings: an engine's known divergences, one root cause each, and the narrow excuses they give at the gate.

A finding (``specs/findings/NAME.toml``, documented in ``specs/findings/README.md``) is what an engine author acts
on: a bug to fix or report upstream, or a documented design that differs from PyTorch's. It is also the only
thing that excuses a failure, and only narrowly: each excuse names its rules (no patterns), the kinds of
divergence the cause produces, and optionally a condition on the case (``when``, in the spec language). A case
that fails with an excused kind where the condition holds is set aside and the rule goes on drawing the rest of
its domain, so one known gap does not hide a second bug of the same rule.

``python -m conformance.verdict.findings FILE [RESULTS.json ...]`` checks a findings file, and that every non-passing
check of each results file belongs to exactly one of its findings.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conformance.execute.runtime import ConformanceFailure
from conformance.spec import language, specs

CLASSES = ("bug", "design")
UPSTREAM = ("reported", "fixed", "documented", "not reported")
CHANCE = frozenset({"crashed", "timeout"})
"""Kinds that end the worker: a case meeting the condition is set aside before it runs."""
KINDS = (*(k for k in ConformanceFailure.KINDS if k != "adapter"), *sorted(CHANCE))
"""What an excuse may explain: a check's divergences and a dead worker's statuses; never an adapter mistake."""
CASE_NAMES = frozenset({"np", "RESULT", "DTYPE", "EMPTY", "SCALAR"})
"""Names a condition may use besides the rule's drawn arrays (upper-cased)."""
NOT_PASSING = frozenset({"expected_failure", "failed", "error", "crashed", "timeout"})
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_FINDING_KEYS = {
    "id", "title", "class", "upstream", "links", "versions", "nondeterministic", "report", "repro", "excuse",
}  # fmt: skip
_EXCUSE_KEYS = {"rules", "dtypes", "kinds", "when"}


class FindingsError(ValueError):
    """A findings file that cannot be used; the message names the file, the finding and the field."""


@dataclass(frozen=True)
class Excuse:
    """What one finding excuses: these rules (and dtypes), these kinds, on the cases meeting ``when``."""

    finding: str
    """The finding's key, ``ENGINE/ID``."""
    rules: frozenset[str]
    dtypes: frozenset[str] | None
    kinds: frozenset[str]
    when: str | None = None

    def names(self, rule_id: str, dtype: str) -> bool:
        return rule_id in self.rules and (self.dtypes is None or dtype in self.dtypes)

    def holds(self, case: Any) -> bool:
        """Whether the case meets the condition (always, without one)."""
        return self.when is None or bool(eval(language.compile_expression(self.when), _scope(case)))


@dataclass(frozen=True)
class Finding:
    """One root cause of an engine's divergence, as its findings file states it."""

    engine: str
    id: str
    title: str
    klass: str
    upstream: str
    links: tuple[str, ...]
    versions: tuple[str, ...]
    nondeterministic: bool
    report: str | None
    repro: str
    excuses: tuple[Excuse, ...]

    @property
    def key(self) -> str:
        return f"{self.engine}/{self.id}"

    def as_dict(self) -> dict[str, Any]:
        """The finding as the results file records it."""
        return {
            "id": self.key,
            "title": self.title,
            "class": self.klass,
            "upstream": self.upstream,
            "links": list(self.links),
            "versions": list(self.versions),
            "nondeterministic": self.nondeterministic,
            "report": self.report,
            "repro": self.repro,
            "excuses": [
                {
                    "rules": sorted(e.rules),
                    "dtypes": None if e.dtypes is None else sorted(e.dtypes),
                    "kinds": sorted(e.kinds),
                    "when": e.when,
                }
                for e in self.excuses
            ],
        }


@dataclass(frozen=True)
class Findings:
    """An engine's findings: which excuses apply to a check, and which rules they excuse a divergence of."""

    engine: str | None = None
    findings: tuple[Finding, ...] = ()

    def excuses(self, rule_id: str, dtype: str) -> tuple[Excuse, ...]:
        return tuple(e for f in self.findings for e in f.excuses if e.names(rule_id, dtype))

    def by_key(self) -> dict[str, Finding]:
        return {f.key: f for f in self.findings}

    def diverging(self, dtype: str) -> frozenset[str]:
        """Rules a finding excuses a divergence of (on some cases or all): the random programs leave out their op
        forms. A program case carries no condition an excuse could test, so keeping the form would need an excuse
        of the whole programs rule by kind, which would blind it; the form's own rules keep gating their other
        cases. A crash or hang that strikes by chance is no reason to leave a form out."""
        return frozenset(r for f in self.findings for e in f.excuses if e.kinds - CHANCE for r in e.rules
                         if e.dtypes is None or dtype in e.dtypes)  # fmt: skip


NO_FINDINGS = Findings()
"""A run without ``--findings``: nothing is excused."""


@dataclass
class Excused:
    """The excuses of one check while it runs: which case to set aside, and how many each finding explained."""

    excuses: tuple[Excuse, ...]
    counts: dict[str, int]

    def before(self, case: Any) -> Excuse | None:
        """An excuse of a crash or hang whose condition the case meets: the case is set aside unrun."""
        return self._counted(e for e in self.excuses if e.when is not None and e.kinds & CHANCE and e.holds(case))

    def after(self, case: Any, kind: str) -> Excuse | None:
        """The excuse of a case that failed with ``kind``, if one covers it; counted."""
        return self._counted(e for e in self.excuses if kind in e.kinds and e.holds(case))

    def _counted(self, matching: Iterator[Excuse]) -> Excuse | None:
        excuse = next(matching, None)
        if excuse is not None:
            self.counts[excuse.finding] = self.counts.get(excuse.finding, 0) + 1
        return excuse


def _scope(case: Any) -> dict[str, Any]:
    arrays: Mapping[str, np.ndarray] = getattr(case, "arrays", {})
    return {
        "__builtins__": language.SAFE_BUILTINS,
        "np": language.SAFE_NP,
        **{name.upper(): value for name, value in arrays.items()},
        "RESULT": tuple(getattr(case, "result", ())),
        "DTYPE": getattr(case, "dtype", None),
        "EMPTY": any(np.size(a) == 0 for a in arrays.values()) or 0 in tuple(getattr(case, "result", ())),
        "SCALAR": any(np.ndim(a) == 0 for a in arrays.values()),
    }


def load(path: Path, rules: Iterable[specs.Rule], draws_arrays: Any = None) -> Findings:
    """Parse and check ``path`` against the catalog ``rules``; every problem names the finding and field.

    ``draws_arrays(rule)`` says whether a rule's cases are drawn arrays (so a condition can be evaluated on them).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FindingsError(f"{path}: {exc}") from exc
    unknown = set(data) - {"engine", "versions", "finding"}
    if unknown or not isinstance(data.get("engine"), str) or not isinstance(data.get("finding", []), list):
        raise FindingsError(
            f"{path}: a findings file has `engine = NAME`, optional `versions`, and [[finding]] tables"
            + (f"; unknown keys {sorted(unknown)}" if unknown else "")
        )
    by_id = {r.id: r for r in rules}
    engine = data["engine"]
    default_versions = data.get("versions", [])
    findings: list[Finding] = []
    for i, raw in enumerate(data.get("finding", [])):
        finding = _finding(path, engine, i, raw, default_versions, by_id, draws_arrays)
        if any(f.id == finding.id for f in findings):
            raise FindingsError(f"{path}: finding {finding.id!r}: duplicate id")
        findings.append(finding)
    return Findings(engine, tuple(findings))


def _finding(
    path: Path,
    engine: str,
    i: int,
    raw: Any,
    default_versions: Any,
    by_id: Mapping[str, specs.Rule],
    draws_arrays: Any,
) -> Finding:
    name = raw.get("id") if isinstance(raw, dict) else None
    where = f"{path}: finding {name!r}" if isinstance(name, str) else f"{path}: [[finding]] #{i + 1}"

    def expect(ok: bool, field: str, message: str) -> None:
        if not ok:
            raise FindingsError(f"{where}: field {field!r}: {message}")

    expect(isinstance(raw, dict), "finding", "must be a table")
    unknown = set(raw) - _FINDING_KEYS
    expect(not unknown, min(unknown or {""}), f"unknown field; known: {sorted(_FINDING_KEYS)}")
    expect(isinstance(name, str) and bool(_ID.match(name)), "id", "must be lower-kebab, e.g. 'grad-nulled-by-new-op'")
    title = raw.get("title")
    expect(isinstance(title, str) and bool(title.strip()) and "\n" not in title.strip(), "title", "must be one line")
    expect(raw.get("class") in CLASSES, "class", f"must be one of {list(CLASSES)}")
    upstream = raw.get("upstream")
    expect(upstream in UPSTREAM, "upstream", f"must be one of {list(UPSTREAM)}")
    links = raw.get("links", [])
    expect(isinstance(links, list) and all(isinstance(v, str) and v for v in links), "links", "must be a list of URLs")
    expect(upstream == "not reported" or bool(links), "links", f"upstream {upstream!r} needs the issue, PR or docs URL")
    versions = raw.get("versions", default_versions)
    ok = isinstance(versions, list) and bool(versions) and all(isinstance(v, str) for v in versions)
    expect(ok, "versions", "must list the engine versions it was seen on (here or at the top of the file)")
    expect(isinstance(raw.get("nondeterministic", False), bool), "nondeterministic", "must be true or false")
    expect(raw.get("report") is None or isinstance(raw.get("report"), str), "report", "must be a path#anchor")
    repro = raw.get("repro")
    expect(isinstance(repro, str) and bool(repro.strip()), "repro", "must be a standalone script (engine and NumPy)")
    raw_excuses = raw.get("excuse")
    expect(isinstance(raw_excuses, list) and bool(raw_excuses), "excuse", "at least one [[finding.excuse]] table")
    key = f"{engine}/{name}"
    excuses = tuple(_excuse(where, key, j, e, by_id, draws_arrays) for j, e in enumerate(raw_excuses))
    return Finding(
        engine=engine,
        id=name,
        title=" ".join(title.split()),
        klass=raw["class"],
        upstream=upstream,
        links=tuple(links),
        versions=tuple(versions),
        nondeterministic=raw.get("nondeterministic", False),
        report=raw.get("report"),
        repro=repro.strip() + "\n",
        excuses=excuses,
    )


def _excuse(where: str, key: str, j: int, raw: Any, by_id: Mapping[str, specs.Rule], draws_arrays: Any) -> Excuse:
    at = f"excuse[{j}]"

    def expect(ok: bool, field: str, message: str) -> None:
        if not ok:
            raise FindingsError(f"{where}: field '{at}.{field}': {message}")

    expect(isinstance(raw, dict) and not set(raw) - _EXCUSE_KEYS, "", f"a table with keys from {sorted(_EXCUSE_KEYS)}")
    rules = raw.get("rules")
    expect(isinstance(rules, list) and bool(rules) and all(isinstance(r, str) for r in rules), "rules", "rule ids")
    for rule in rules:
        expect(not any(c in rule for c in "*?[]"), "rules", f"{rule!r} is a pattern: name each rule")
        expect(rule in by_id, "rules", f"{rule!r} is no rule of the suite (stale?)")
    dtypes = raw.get("dtypes")
    if dtypes is not None:
        runs = {d for r in rules for d in by_id[r].dtypes}
        ok = isinstance(dtypes, list) and bool(dtypes) and all(d in runs for d in dtypes)
        expect(ok, "dtypes", f"must list dtypes the rules run in ({sorted(runs)})")
    kinds = raw.get("kinds")
    ok = isinstance(kinds, list) and bool(kinds) and all(k in KINDS for k in kinds)
    expect(ok, "kinds", f"must list kinds from {list(KINDS)}")
    when = raw.get("when")
    if when is not None:
        expect(isinstance(when, str) and bool(when.strip()), "when", "must be an expression over the case")
        for rule in rules:
            r = by_id[rule]
            expect(draws_arrays is None or draws_arrays(r), "when", f"{rule!r} draws no arrays to test a condition on")
            known = CASE_NAMES | {n.upper() for n in [*r.given.names, *r.given.like]}
            try:
                language.compile_expression(when, frozenset(known))
            except language.LanguageError as exc:
                expect(False, "when", f"for rule {rule!r}: {exc}")
    return Excuse(key, frozenset(rules), None if dtypes is None else frozenset(dtypes), frozenset(kinds), when)


def coverage(findings: Findings, doc: Mapping[str, Any]) -> list[str]:
    """Problems with how ``findings`` explain a results document: each non-passing check must be explained, and its
    recorded divergence by exactly one finding (an excuse naming its rule and dtype, its kind, a condition its case
    meets). A check whose excuses set cases aside without a divergence (a hang's condition) names them itself."""
    problems = []
    keys = {f.key for f in findings.findings}
    for result in doc["results"]:
        if result["status"] not in NOT_PASSING:
            continue
        failure = result.get("failure") or {}
        kind = result["status"] if result["status"] in CHANCE else failure.get("kind")
        check = f"{result['id']}[{result['dtype']}] ({result['status']}, {kind})"
        struck = {f["id"] for f in (result.get("expected") or {}).get("findings") or () if f.get("cases")}
        if struck - keys:
            problems.append(f"{check}: struck by findings not in the file: {sorted(struck - keys)}")
        if kind is None and struck:
            continue  # only cases a hang's condition set aside: they name their findings
        case = _recorded(failure.get("counterexample"))
        owners = {
            e.finding
            for e in findings.excuses(result["id"], result["dtype"])
            if kind in e.kinds and (e.when is None or case is None or e.holds(case))
        }
        if not owners:
            problems.append(f"{check}: no finding explains it")
        elif len(owners) > 1:
            problems.append(f"{check}: explained by {len(owners)} findings: {sorted(owners)}")
    return problems


@dataclass(frozen=True)
class _Recorded:
    """A results file's counterexample as a case a condition can be tested on."""

    arrays: Mapping[str, np.ndarray]
    result: tuple[int, ...]
    dtype: str


def _recorded(counterexample: Any) -> _Recorded | None:
    if not isinstance(counterexample, Mapping):
        return None
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in (counterexample.get("values") or {}).items()}
    arrays.update({k: np.zeros(tuple(v)) for k, v in (counterexample.get("shapes") or {}).items() if k not in arrays})
    return _Recorded(arrays, tuple(counterexample.get("result") or ()), counterexample.get("dtype", ""))


def main(argv: Sequence[str] | None = None) -> int:
    """Check a findings file, and its coverage of results files."""
    import argparse
    import json

    from conformance import templates

    parser = argparse.ArgumentParser(prog="python -m conformance.verdict.findings", description=main.__doc__)
    parser.add_argument("findings", type=Path)
    parser.add_argument("results", type=Path, nargs="*", help="results files of the same engine")
    args = parser.parse_args(argv)
    try:
        findings = load(args.findings, templates.load(), templates.draws_arrays)
    except FindingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = [f"{path}: {p}" for path in args.results for p in coverage(findings, json.loads(path.read_text()))]
    print("\n".join(problems) if problems else f"{args.findings}: {len(findings.findings)} findings, all fine")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
