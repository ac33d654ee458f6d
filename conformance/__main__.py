"""Command line: ``python -m conformance report RESULTS... -o reports/index.html``.

Running the rules is pytest's job (``pytest --pyargs conformance --backend=NAME``); this command
works on the results files such runs write, e.g. to merge the runs of several backends into one report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance import results
from conformance.report import render


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="render results files (merged per backend) as one HTML report")
    report.add_argument("results", nargs="+", type=Path, help="results files written with --results-json")
    report.add_argument("-o", "--output", type=Path, default=Path("reports/index.html"), help="the HTML file")
    args = parser.parse_args(argv)
    try:
        docs = [results.load(path) for path in args.results]
    except results.ResultsError as exc:
        parser.exit(2, f"error: {exc}\n")
    render.write(args.output, docs)
    merged = results.merge(docs)
    engines = ", ".join(f"{d['backend']['name']} ({sum(d['summary'].values())} results)" for d in merged)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KiB): {engines}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
