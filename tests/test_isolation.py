"""A verdict that cannot be green by accident: misbehaving engines, adapter mistakes, bad options, interruptions.

Every run goes through the command line, as a user's CI runs it, serially (each check then runs in one
xdist worker process, the default isolation) and with ``-n 2``. For each, the run finishes, the one
check is reported with its status and rule, the other rules keep their verdict, and the results file,
the HTML report, the printed gate line and the exit code agree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.verdict import results

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "data" / "probe.toml"
SIGMOID, ADD, MUL = "probe.forward.sigmoid", "probe.forward.add", "probe.grad.mul"


def _pytest(tmp_path: Path, backend: str, *args: str) -> tuple[int, str, dict | None, str | None]:
    """Run the suite; returns (exit code, output, results document or None, HTML or None)."""
    out, html = tmp_path / "results.json", tmp_path / "report.html"
    command = [
        *(sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider"),
        f"--backend={backend}",
        f"--results-json={out}",
        f"--report-html={html}",
        f"--repro-dir={tmp_path / 'repro'}",
        *args,
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    doc = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, doc, html.read_text() if html.exists() else None


MISBEHAVING = [
    # adapter, the rule it breaks, its status, a word of the recorded message
    ("Segfaults", SIGMOID, "crashed", "died"),
    ("Hangs", SIGMOID, "timeout", "--check-timeout"),
    ("RaisesKeyboardInterrupt", SIGMOID, "failed", "KeyboardInterrupt"),
    ("RaisesSystemExit", SIGMOID, "failed", "SystemExit"),
    ("RaisesBaseException", SIGMOID, "failed", "EngineAbort"),
    ("Nondeterministic", SIGMOID, "failed", "nondeterministic"),
    ("NumpyWrongShape", SIGMOID, "error", "numpy() returned an array of shape"),
    ("NumpyReturnsList", SIGMOID, "error", "not a numpy.ndarray"),
    ("VjpTooFewGradients", MUL, "error", "vjp() returned 1 gradients for 2 primals"),
]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "n2"])
@pytest.mark.parametrize(("adapter", "rule_id", "status", "word"), MISBEHAVING, ids=[m[0] for m in MISBEHAVING])
def test_a_misbehaving_engine_fails_its_check_and_the_run_goes_on(
    tmp_path: Path, adapter: str, rule_id: str, status: str, word: str, workers: tuple[str, ...]
) -> None:
    limit = ("--check-timeout=8",) if status == "timeout" else ()  # the others keep the default: load never trips it
    options = (f"--specs={PROBE}", "--dtypes=float64", *limit, *workers)
    code, output, doc, html = _pytest(tmp_path, f"tests.misbehaving:{adapter}", *options)
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert doc is not None and html is not None, output
    by_rule = {r["id"]: r for r in doc["results"]}
    assert set(by_rule) == {SIGMOID, ADD, MUL}, "every rule is in the results, none vanished"
    broken = by_rule[rule_id]
    assert broken["status"] == status, output
    assert word in (broken["error"] or "") + ((broken["failure"] or {}).get("message") or ""), broken
    if status != "error":  # an adapter mistake in numpy() touches every rule; an engine's fault only its own
        assert all(r["status"] == "passed" for r in doc["results"] if r["id"] != rule_id), output
    if status in ("crashed", "timeout"):
        assert Path(broken["failure"]["repro_path"]).exists(), "the case that killed the worker has its repro"
    assert not doc["gate"]["holds"] and f"{rule_id}[float64]: {status}" in doc["gate"]["broken_by"]
    assert f"gate BROKEN by {len(doc['gate']['broken_by'])}" in output
    assert 'class="gate broken"' in html and results.problems(doc) == []


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "n2"])
@pytest.mark.parametrize(("adapter", "status"), [("Segfaults", "crashed"), ("Hangs", "timeout")])
@pytest.mark.parametrize("by_chance", [False, True], ids=["rule", "nondeterministic"])
def test_a_known_crash_or_hang_is_an_expected_failure(
    tmp_path: Path, adapter: str, status: str, workers: tuple[str, ...], by_chance: bool
) -> None:
    """An engine's known hang is a finding like any other: the gate holds, the failure keeps its kind. One that
    strikes by chance is a nondeterministic finding naming every rule it may strike: those it spares pass."""
    listed = tmp_path / "findings.toml"
    rules = f'"{SIGMOID}", "{ADD}"' if by_chance else f'"{SIGMOID}"'
    listed.write_text(
        f'engine = "numpy"\nversions = ["0.1.0"]\n[[finding]]\nid = "probe-{status}"\ntitle = "the probe {status} here"\n'
        f'class = "bug"\nupstream = "not reported"\nnondeterministic = {str(by_chance).lower()}\nrepro = "import torch"\n'
        f'[[finding.excuse]]\nrules = [{rules}]\nkinds = ["{status}"]\n'
    )
    options = (f"--specs={PROBE}", "--dtypes=float64", f"--findings={listed}", *workers)
    limit = ("--check-timeout=8",) if status == "timeout" else ()
    code, output, doc, html = _pytest(tmp_path, f"tests.misbehaving:{adapter}", *options, *limit)
    assert code == pytest.ExitCode.OK, output
    assert doc is not None and html is not None and doc["gate"]["holds"], output
    by_rule = {r["id"]: r for r in doc["results"]}
    known = by_rule[SIGMOID]
    assert known["status"] == "expected_failure" and known["failure"]["kind"] == status, known
    assert known["expected"]["reason"] == f"the probe {status} here"
    assert by_rule[ADD]["status"] == "passed", "a rule a nondeterministic fault spares is passed, not stale"
    assert "gate HOLDS: 2 passed, 1 expected failure" in output and "1 xfailed" in output, output
    assert 'class="gate holds"' in html


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("tests.misbehaving:TypoCapability", "unknown capability 'higher_ordr' (did you mean 'higher_order'?)"),
        ("tests.misbehaving:MissingMethod", "declares 'retains_grad' but has no 'retains_grad'"),
        ("tests.misbehaving:NoErrorsTable", "'errors' must be a mapping"),
        ("tests.misbehaving:UnknownErrorMeaning", "unknown error meaning 'graph_free' (did you mean 'graph_freed'?)"),
        ("tests.misbehaving:RaisingInit", "RaisingInit() raised RuntimeError: no device found"),
        ("tests.misbehaving:not_a_class", "names a function, not an adapter class"),
        ("tests.misbehaving:Nowhere", "has no 'Nowhere'"),
    ],
)
def test_an_adapter_mistake_is_a_usage_error_before_any_test(tmp_path: Path, backend: str, message: str) -> None:
    code, output, doc, _ = _pytest(tmp_path, backend, f"--specs={PROBE}")
    assert code == pytest.ExitCode.USAGE_ERROR and message in output, output
    assert doc is None and "INTERNALERROR" not in output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--hypothesis-seed=abc",), "--hypothesis-seed must be an integer, got 'abc'"),
        (("--dtypes=",), "--dtypes is empty"),
        (("--dtypes=float8",), "unknown dtypes ['float8']"),
        (("--dtypes=bfloat16",), "numpy has none of the dtypes ['bfloat16']"),
        (("--device=tpu",), "--device 'tpu' is not available to numpy here; available: cpu, sim"),
        (("--check-timeout=soon",), "--check-timeout must be a number of seconds"),
        (("--shape-pool=0",), "--shape-pool must be a whole number of shape sets (at least 1), got '0'"),
        (("--specs={empty}",), "no rules found"),
        (("--report-html={directory}",), "cannot be written (is a directory)"),
    ],
)
def test_a_bad_option_is_a_usage_error_before_any_test(tmp_path: Path, options: tuple[str, ...], message: str) -> None:
    (tmp_path / "empty").mkdir()
    options = tuple(o.format(empty=tmp_path / "empty", directory=tmp_path) for o in options)
    command = [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "--backend=numpy"]
    proc = subprocess.run([*command, *options], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert message in proc.stderr and "INTERNALERROR" not in proc.stderr + proc.stdout


def test_a_results_path_under_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, output, _, _ = _pytest(
        tmp_path, "numpy", f"--specs={PROBE}", f"--results-json={tmp_path / 'file' / 'r.json'}"
    )
    assert code == pytest.ExitCode.USAGE_ERROR and "cannot be written" in output, output


def test_a_run_that_checks_nothing_is_not_green(tmp_path: Path) -> None:
    code, output, doc, _ = _pytest(tmp_path, "numpy", f"--specs={PROBE}", "-k", "no-such-rule")
    assert code == pytest.ExitCode.USAGE_ERROR, output
    assert doc is not None and not doc["gate"]["holds"] and "nothing was checked" in doc["gate"]["broken_by"][-1]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "n2"])
def test_an_interrupted_run_writes_an_incomplete_results_file(tmp_path: Path, workers: tuple[str, ...]) -> None:
    """Ctrl-C after a few seconds (SIGINT to the process group, as a terminal sends it)."""
    out = tmp_path / "results.json"
    command = [
        *(sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider", "--backend=numpy"),
        *(f"--results-json={out}", *workers),
    ]  # the whole suite: minutes, so the interrupt always lands mid-run
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    seen, deadline = b"", time.monotonic() + 120
    while seen.split(b"\n")[-1][:1] not in (b".", b"s", b"x", b"F") and time.monotonic() < deadline:
        seen += os.read(proc.stdout.fileno(), 1)  # until a progress line begins: the first results are in
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    doc = results.load(out)
    statuses = {r["status"] for r in doc["results"]}
    assert doc["incomplete"] and "interrupted" in doc["incomplete"], doc["incomplete"]
    assert "not_run" in statuses and "passed" in statuses
    assert not doc["gate"]["holds"] and any("incomplete" in b for b in doc["gate"]["broken_by"])
