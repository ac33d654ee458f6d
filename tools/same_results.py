"""Two results documents of one engine are the same apart from timings and paths (#21's check of a refactoring).

Usage: python tools/same_results.py BEFORE.json AFTER.json
"""

import json
import sys
from pathlib import Path
from typing import Any

VOLATILE = {"duration_s", "seconds", "elapsed_s", "started", "finished", "peak_rss_mb", "checks_s", "wall_s", "path",
            "command", "engine_s", "spec_version", "results_json", "report_html", "repro", "timestamp", "created"}  # fmt: skip


def strip(value: Any) -> Any:
    """``value`` without the keys that hold timings, paths or the run's command line."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def main() -> int:
    before, after = (strip(json.loads(Path(p).read_text())) for p in sys.argv[1:3])
    if before == after:
        print("same results apart from timings and paths")
        return 0
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            print(f"differs: {key}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
