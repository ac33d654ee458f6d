"""The benchmark command: its usage errors, and the figures of one small real run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from conformance import backends, bench, templates
from conformance.draw.strategies import CASES_PER_EXAMPLE
from conformance.execute import runner
from conformance.pytest_plugin import plugin

ROOT = Path(__file__).resolve().parent.parent


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "conformance", "bench", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends", "nosuch"], "known: torch"),
        (["--workers", "0"], "--workers"),
        (["--workers", "a"], "--workers"),
        (["--backends", "numpy", "--engine-args", "jax=--shape-pool=4"], "--engine-args takes NAME=ARGS"),
        (["--engine-args", "numpy"], "--engine-args takes NAME=ARGS"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    done = _bench(*args, "-o", str(tmp_path / "b.json"))
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "b.json").exists()


def test_a_small_run_prints_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    args = ["--backends", "numpy", "--workers", "1", "-o", str(out), "--engine-args", "numpy=--shape-pool 2"]
    done = _bench(*args, "--keep-results", str(tmp_path / "kept"), "--", "-k", "sum-to-input-shape")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert (run["backend"], run["workers"], run["rules"], run["checks"]) == ("numpy", 1, 1, 2)
    assert run["args"] == ["--shape-pool", "2", "-k", "sum-to-input-shape"]
    assert json.loads((tmp_path / "kept" / "numpy.json").read_text())["shape_pool"] == 2
    assert run["examples"] >= 2 and run["examples_per_s_per_core"] > 0
    assert 0 < run["engine_share"] < 1 and run["peak_rss_mb"] > 0
    rule = "broadcasting.grad.sum-to-input-shape"
    assert {s["check"] for s in run["slowest"]} == {f"{rule}[float32]", f"{rule}[float64]"}
    assert "| current | numpy | 1 | 1 | 2 |" in done.stdout


def test_the_table_gives_the_speedup_of_more_workers() -> None:
    one = bench.Figures("current", "torch", 1, wall_s=10.0, exit_code=0, checks=4)
    two = bench.Figures("current", "torch", 2, wall_s=5.5, exit_code=0, checks=4)
    rows = bench.table([one, two]).splitlines()
    assert "1.82x" in rows[3] and "1.82x" not in rows[2]


def test_the_floor_draws_the_cases_the_gate_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor and the gate draw the same batches of cases (both build their test with ``given_batches``)."""
    drawn: dict[str, list[str]] = {"floor": [], "gate": []}
    into, given_batches = "floor", runner.given_batches

    def recorded(rule: Any, dtype: str, body: Callable[[tuple[Any, ...]], None]) -> Callable[[], None]:
        def record(batch: tuple[Any, ...]) -> None:
            if len(batch) == CASES_PER_EXAMPLE:  # not a rule's explicit example, which the floor leaves out
                drawn[into].append(f"{rule.id}/{dtype}: {batch!r}")
            body(batch)

        return given_batches(rule, dtype, record)

    monkeypatch.setattr(runner, "given_batches", recorded)
    rules = templates.load([ROOT / "specs" / "broadcasting.toml"])[:3]
    floor = bench.hypothesis_floor(rules)
    into = "gate"
    adapter, gate = backends.resolve("numpy"), settings.get_profile("conformance-gate")
    outcomes = [runner.check(adapter, r, d, "cpu", overrides=gate) for r in rules for d in plugin.DTYPES]
    assert all(o.failure is None and not o.missing for o in outcomes)
    assert floor.checks == len(outcomes) and floor.seconds > 0
    assert floor.cases == sum(o.examples - len(o.rule.examples) for o in outcomes) > 0
    assert drawn["floor"] == drawn["gate"] and len(drawn["floor"]) * CASES_PER_EXAMPLE == floor.cases
    assert f"{floor.cases} cases in" in floor.line()
