"""Command line: ``python -m conformance report RESULTS... -o reports/index.html``, ``rules``, ``show RULE_ID``, ``bench``.

Running the rules is pytest's job (``pytest --pyargs conformance --backend=NAME``); ``report`` works on
the results files such runs write, e.g. to merge the runs of several backends into one report. ``compare OLD NEW``
prints what changed between two runs of one engine (``conformance/verdict/compare.py``). ``rules``
writes the rulebook (every rule with a PyTorch example), ``show`` explains one rule, and ``bench`` times the
gate per backend (``conformance/bench.py``). Each command
imports what it needs only when it runs: ``report`` must not pay for Hypothesis, nor ``rules`` for pytest.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

README_BEGIN, README_END = "<!-- engines:begin -->", "<!-- engines:end -->"
"""Markers of the generated engines' table in the README: what lies between them is rewritten."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="render results files (merged per backend) as one HTML report")
    report.add_argument("results", nargs="+", type=Path, help="results files written with --results-json")
    report.add_argument("-o", "--output", type=Path, default=Path("reports/index.html"), help="the HTML file")
    report.add_argument(
        "--readme",
        type=Path,
        help=f"also write the engines' table into this Markdown file, between {README_BEGIN} and {README_END}",
    )
    compare = commands.add_parser("compare", help="what changed between two results files of one engine")
    compare.add_argument("old", type=Path, help="the earlier results file (written with --results-json)")
    compare.add_argument("new", type=Path, help="the later results file")
    compare.add_argument("--html", type=Path, metavar="PATH", help="also write the comparison as an HTML page")
    compare.add_argument("--json", type=Path, metavar="PATH", help="also write the comparison as JSON")
    compare.add_argument(
        "--fail-on-new-failures", action="store_true", help="exit 1 when a rule and dtype is newly failing"
    )
    compare.add_argument(
        "--allow-different-backends", action="store_true", help="compare runs of two backends (a usage error without)"
    )
    rules = commands.add_parser("rules", help="write the rulebook: every rule, with its example as PyTorch code")
    rules.add_argument("--format", choices=("text", "markdown", "html"), default="text")
    rules.add_argument(
        "-o",
        "--output",
        type=Path,
        help="text: a file (default stdout); markdown, html: a folder (default docs/rules, build/rules)",
    )
    rules.add_argument("--area", help="only this area (markdown, html: its page, and no index)")
    show = commands.add_parser("show", help="where a rule is, what it needs, and the script of its first example")
    show.add_argument("rule_id")
    bench = commands.add_parser("bench", help="time the gate per backend with -n 1 and -n 2; print the figures")
    bench.add_argument("--backends", default="torch,numpy", help="comma-separated backends (default torch,numpy)")
    bench.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    bench.add_argument("--baseline", metavar="REF", help="also run the suite as of this git commit, for a before/after")
    bench.add_argument("-o", "--output", type=Path, default=Path("reports/benchmarks.json"), help="the JSON file")
    bench.add_argument(
        "--engine-args",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="more pytest arguments for one backend's runs, e.g. jax='--shape-pool=4' (repeatable)",
    )
    bench.add_argument("--keep-results", type=Path, metavar="DIR", help="keep each backend's results file in DIR")
    bench.add_argument(
        "--floor", action="store_true", help="also time Hypothesis alone drawing the gate's cases (an empty test body)"
    )
    bench.add_argument("pytest_args", nargs="*", help="more arguments for every pytest run (after --)")
    args = parser.parse_args(argv)
    if args.command == "rules":
        return _rules(parser, args)
    if args.command == "bench":
        return _bench(parser, args)
    if args.command == "show":
        return _show(parser, args.rule_id)
    if args.command == "compare":
        return _compare(parser, args)
    from conformance.report import render
    from conformance.verdict import results

    try:
        docs = [results.load(path) for path in args.results]
    except results.ResultsError as exc:
        parser.exit(2, f"error: {exc}\n")
    render.write(args.output, docs)
    merged = results.merge(docs)
    engines = ", ".join(f"{d['backend']['name']} ({sum(d['summary'].values())} results)" for d in merged)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KiB): {engines}")
    if args.readme:
        text = args.readme.read_text(encoding="utf-8")
        if README_BEGIN not in text or README_END not in text:
            parser.exit(2, f"error: {args.readme} has no {README_BEGIN} ... {README_END} block\n")
        head, rest = text.split(README_BEGIN, 1)
        tail = rest.split(README_END, 1)[1]
        table = render.readme_table(docs)
        args.readme.write_text(f"{head}{README_BEGIN}\n{table}{README_END}{tail}", encoding="utf-8")
        print(f"wrote the engines' table into {args.readme}")
    return 0


def _compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from conformance.verdict import compare, results

    try:
        old, new = results.load(args.old), results.load(args.new)
    except results.ResultsError as exc:
        parser.exit(2, f"error: {exc}\n")
    names = old["backend"]["name"], new["backend"]["name"]
    if names[0] != names[1] and not args.allow_different_backends:
        parser.exit(
            2,
            f"error: {args.new} is a run of backend {names[1]!r}, {args.old} of {names[0]!r}; "
            "pass --allow-different-backends to compare them anyway\n",
        )
    changes = compare.compare(old, new, str(args.old), str(args.new))
    print(compare.text(changes), end="")
    if args.html:
        compare.write(args.html, compare.html(changes))
        print(f"wrote {args.html}")
    if args.json:
        compare.write_json(args.json, changes)
        print(f"wrote {args.json}")
    return 1 if args.fail_on_new_failures and changes.newly_failing else 0


def _rules(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from conformance import rulebook, templates

    loaded = templates.load()
    if args.area is not None:
        areas = sorted({r.area for r in loaded})
        if args.area not in areas:
            parser.error(f"unknown area {args.area!r}; known: {', '.join(areas)}")
        loaded = [r for r in loaded if r.area == args.area]
    areas = rulebook.by_area(loaded)
    for path in rulebook.write(areas, args.format, args.output, index=args.area is None):
        print(f"wrote {path}")
    missing = [e.rule.id for entries in areas.values() for e in entries if e.code is None]
    if missing and args.format != "text":
        print(f"{len(missing)} rules without a PyTorch example: {', '.join(missing)}")
    return 0


def _bench(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from conformance import bench
    from conformance.backends import BUILTIN

    backends = [b for b in args.backends.split(",") if b]
    unknown = [b for b in backends if b not in BUILTIN and ":" not in b]
    if not backends or unknown:
        parser.error(f"unknown backend(s) {unknown}; known: {', '.join(BUILTIN)} (or module:Class)")
    try:
        workers = [int(n) for n in args.workers.split(",")]
    except ValueError:
        workers = []
    if not workers or min(workers) < 1:
        parser.error(f"--workers must be positive integers, got {args.workers!r}")
    if args.baseline and not bench.have_git():
        parser.error("--baseline needs git and this suite's git checkout")
    engine_args: dict[str, list[str]] = {}
    for given in args.engine_args:
        name, sep, rest = given.partition("=")
        if not sep or name not in backends:
            parser.error(
                f"--engine-args takes NAME=ARGS for one of the backends run ({', '.join(backends)}), got {given!r}"
            )
        engine_args[name] = [*engine_args.get(name, []), *shlex.split(rest)]
    return bench.run(
        backends, workers, args.baseline, args.pytest_args, args.output, engine_args, args.keep_results, args.floor
    )


def _show(parser: argparse.ArgumentParser, rule_id: str) -> int:
    import difflib

    from conformance import rulebook, templates

    known = {r.id: r for r in templates.load()}
    if rule_id not in known:
        close = difflib.get_close_matches(rule_id, known, n=5, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else "`python -m conformance rules` lists them all"
        parser.error(f"unknown rule id {rule_id!r}; {hint}")
    print(rulebook.show(known[rule_id]), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
