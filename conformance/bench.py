"""The benchmark: the gate profile run per backend and worker count, and the figures it gives.

``python -m conformance bench --backends torch,numpy`` runs ``pytest conformance`` for each backend with ``-n 1``
and ``-n 2`` (each engine with its findings file and its own options, ``--engine-args``), reads the results
file each run writes, and prints per run: rules and checks run, examples, wall time, the checks' own time, examples
per second per core, the engine's share of the checks' time (``engine_s``, timed by the runner around the scripts'
calls into the adapter), peak memory of a worker, and the slowest checks. ``--baseline REF`` runs the same on the
suite as of a git commit (checked out in a temporary folder), so a change's before and after come from one run of
the benchmark, on one machine, under one load. Figures are printed and written to JSON, never asserted: a timed test
would flake. ``--keep-results DIR`` keeps each backend's results file of its run with the most workers, so
``reports/regenerate.sh`` builds the report from the benchmark's own runs. ``--floor`` also times Hypothesis alone
drawing the gate's cases into an empty test (``hypothesis_floor``): the part of every run that no change to the
suite's own per-case work (oracle, scripts, comparisons) can remove.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
"""The checkout this suite runs from."""


@dataclass
class Figures:
    """One run of the gate: one backend, one worker count, one version of the suite."""

    suite: str
    backend: str
    workers: int
    wall_s: float
    exit_code: int
    args: list[str] = field(default_factory=list)
    """The pytest arguments of this run beyond the backend, workers and expected failures (a shape pool...)."""
    rules: int = 0
    checks: int = 0
    examples: int = 0
    checks_s: float = 0.0
    """The checks' own durations, summed over workers: more than with one worker where workers contend for the
    cores (the speedup of more workers is at most ``workers * checks_s(1) / checks_s(n)``, before fixed costs)."""
    examples_per_s_per_core: float = 0.0
    engine_share: float | None = None
    peak_rss_mb: float | None = None
    slowest: list[dict[str, Any]] = field(default_factory=list)


def known_gaps(root: Path, backend: str) -> list[str]:
    """The backend's findings file; a baseline older than findings has an expected-failures file instead."""
    findings = root / "specs" / "findings" / f"{backend}.toml"
    if findings.exists():
        return [f"--findings={findings}"]
    path = root / "specs" / "expected-failures" / f"{backend}.toml"
    return [f"--expected-failures={path}"] if path.exists() else []


def measure(root: Path, suite: str, backend: str, workers: int, extra: Sequence[str], scratch: Path) -> Figures:
    """Run the gate once and read its figures from the results file."""
    out = scratch / f"{suite}-{backend}-{workers}.json".replace("/", "_")
    # repros under the checkout, by a relative path: kept results are committed, and their paths must hold in a clone
    command = [
        sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider", f"--backend={backend}",
        f"-n{workers}", f"--results-json={out}", "--repro-dir=.conformance/bench-repro",
        *known_gaps(root, backend), *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    figures = Figures(suite, backend, workers, round(wall, 2), done.returncode, list(extra))
    if not out.exists():
        print(f"  {suite} {backend} -n {workers}: no results (exit {done.returncode})\n{done.stdout[-2000:]}")
        return figures
    results = [r for r in json.loads(out.read_text())["results"] if r["status"] != "unsupported"]
    figures.checks_s = round(sum(r["duration_s"] or 0.0 for r in results), 2)
    timed = [r for r in results if r.get("engine_s") is not None]
    figures.rules = len({r["id"] for r in results})
    figures.checks = len(results)
    figures.examples = sum(r["examples_run"] or 0 for r in results)
    figures.examples_per_s_per_core = round(figures.examples / (wall * workers), 1)
    if timed:
        share = sum(r["engine_s"] for r in timed) / max(sum(r["duration_s"] or 0.0 for r in timed), 1e-9)
        figures.engine_share = round(share, 3)
    memory = [r["peak_rss_mb"] for r in results if r.get("peak_rss_mb") is not None]
    figures.peak_rss_mb = max(memory) if memory else None
    slowest = sorted(results, key=lambda r: r["duration_s"] or 0.0, reverse=True)[:10]
    figures.slowest = [{"check": f"{r['id']}[{r['dtype']}]", "duration_s": r["duration_s"]} for r in slowest]
    print(
        f"  {suite} {backend} -n {workers}: {wall:.1f} s wall, {figures.checks_s:.1f} s in checks, exit {done.returncode}"
    )
    return figures


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The suite as of ``ref``, in a temporary folder (``git archive``: no worktree bookkeeping left)."""
    with tempfile.TemporaryDirectory(prefix="conformance-baseline-") as folder:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder)


def table(runs: Sequence[Figures]) -> str:
    """The figures as a Markdown table, one row per run, with -n 2's speedup over -n 1."""
    walls = {(f.suite, f.backend, f.workers): f.wall_s for f in runs}
    lines = [
        "| suite | backend | -n | rules | checks | examples | wall s | in checks s | speedup | ex/s/core | engine share "
        "| peak MiB |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for f in runs:
        one = walls.get((f.suite, f.backend, 1))
        speedup = f"{one / f.wall_s:.2f}x" if one and f.workers > 1 else ""
        share = "n/a" if f.engine_share is None else f"{f.engine_share:.0%}"
        memory = "n/a" if f.peak_rss_mb is None else f"{f.peak_rss_mb:.0f}"
        lines.append(
            f"| {f.suite} | {f.backend} | {f.workers} | {f.rules} | {f.checks} | {f.examples} | {f.wall_s:.1f} | "
            f"{f.checks_s:.1f} | {speedup} | {f.examples_per_s_per_core:.0f} | {share} | {memory} |"
        )
    return "\n".join(lines) + "\n"


def slowest(runs: Sequence[Figures]) -> str:
    text = ""
    for f in runs:
        if f.slowest and f.workers == max(r.workers for r in runs if r.backend == f.backend):
            text += f"\nslowest checks, {f.suite} {f.backend} -n {f.workers}:\n"
            text += "".join(f"  {s['duration_s']:8.2f} s  {s['check']}\n" for s in f.slowest)
    return text


def run(
    backends: Sequence[str],
    workers: Sequence[int],
    baseline: str | None,
    extra: Sequence[str],
    out: Path,
    engine_args: Mapping[str, Sequence[str]] | None = None,
    keep: Path | None = None,
    floor: bool = False,
) -> int:
    """Every (suite, backend, workers) run, printed as a table and written to ``out``; ``engine_args`` adds a
    backend's own options to its runs, ``keep`` receives the current suite's results files, and ``floor`` adds
    the current suite's ``hypothesis_floor``."""
    runs: list[Figures] = []
    engine_args = engine_args or {}
    with tempfile.TemporaryDirectory(prefix="conformance-bench-") as scratch:
        suites: list[tuple[str, Path | None]] = [("current", ROOT)]
        if baseline:
            suites.insert(0, (f"baseline {baseline}", None))  # None: checked out from git
        for suite, root in suites:
            with checkout(baseline) if root is None else nullcontext(root) as where:
                for backend in backends:
                    for n in workers:
                        args = [*engine_args.get(backend, ()), *extra]
                        runs.append(measure(where, suite, backend, n, args, Path(scratch)))
                    if keep is not None and root is not None:
                        kept = Path(scratch) / f"{suite}-{backend}-{max(workers)}.json"
                        if kept.exists():
                            keep.mkdir(parents=True, exist_ok=True)
                            shutil.copyfile(kept, keep / f"{backend}.json")
    drawing = hypothesis_floor() if floor else None
    print()
    print(table(runs) + slowest(runs))
    if drawing is not None:
        print(drawing.line())
    doc = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # set: every process re-rewrites the plugins' assertions (README, "How fast it is")
            "dont_write_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
        },
        "pytest_args": list(extra),
        "runs": [asdict(f) for f in runs],
        "hypothesis_floor": None if drawing is None else asdict(drawing),
    }
    if doc["machine"]["dont_write_bytecode"]:
        print(
            "PYTHONDONTWRITEBYTECODE is set: each process rewrote the plugins' assertions anew (--assert=plain saves it)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0 if all(f.exit_code in (0, 1) and f.checks for f in runs) else 1


@dataclass
class Floor:
    """Hypothesis alone on the gate's cases: what no change to the suite's own per-case work can remove."""

    checks: int
    cases: int
    seconds: float

    def line(self) -> str:
        rate = self.cases / max(self.seconds, 1e-9)
        return (
            f"Hypothesis alone (the gate's {self.checks} checks drawn with an empty test body: no oracle, engine or "
            f"pytest): {self.cases} cases in {self.seconds:.1f} s, {rate:.0f} cases/s on one core"
        )


def hypothesis_floor(rules: Sequence[Any] | None = None) -> Floor:
    """Every check of ``rules`` (default: the shipped specs) on the reference backend, drawn as the gate draws it
    (its profile, seed, batches and shape pools) into a test that does nothing with its cases. The shape pools are
    drawn first, untimed: a run reads them from where an earlier run kept them."""
    import hypothesis

    from conformance import backends, templates  # plugin: registers the gate's profile
    from conformance.draw.model import ModelTemplate
    from conformance.execute import runner
    from conformance.pytest_plugin import plugin

    adapter = backends.resolve("numpy")
    gate = hypothesis.settings.get_profile("conformance-gate")
    drawn = 0

    def body(batch: tuple[Any, ...]) -> None:
        nonlocal drawn
        drawn += len(batch)

    def test(rule: Any, dtype: str) -> Any:
        drawing = runner.drawn_rule(adapter, rule, None, None)
        return hypothesis.seed(runner.rule_seed(rule, dtype))(gate(runner.given_batches(drawing, dtype, body)))

    tests = [
        test(rule, dtype)
        for rule in (templates.load() if rules is None else rules)
        if not isinstance(templates.TEMPLATES[rule.template], ModelTemplate)
        for dtype in rule.dtypes
        if dtype in plugin.DTYPES and not runner.missing(adapter, rule, dtype, "cpu")
    ]
    start = time.perf_counter()
    for test in tests:
        test()
    return Floor(len(tests), drawn, round(time.perf_counter() - start, 2))


def have_git() -> bool:
    return shutil.which("git") is not None and (ROOT / ".git").exists()
