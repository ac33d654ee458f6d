"""Every check can fail: each rule fails under a deliberately broken adapter (tests/broken/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.spec import specs
from tests.broken import all_broken
from tests.conftest import check_rule
from tests.test_model_and_programs import CASES as PROPERTY_CASES

ROOT = Path(__file__).resolve().parent.parent
BROKEN = all_broken()
PAIRS = [(cls, rule_id) for cls in BROKEN for rule_id in cls.breaks]


def test_every_rule_has_a_broken_adapter() -> None:
    """Property checks (the model, random programs) are proven in tests/test_model_and_programs.py."""
    covered = {rule_id for _, rule_id in PAIRS} | {rule_id for rule_id, _ in PROPERTY_CASES}
    missing = sorted(r.id for r in specs.load() if r.id not in covered)
    assert not missing, f"rules no broken adapter breaks: {missing}"


def test_broken_adapters_name_real_rules() -> None:
    known = {r.id for r in specs.load()}
    stale = sorted({rule_id for _, rule_id in PAIRS} - known)
    assert not stale, f"broken adapters name unknown rules: {stale}"


@pytest.mark.parametrize(("cls", "rule_id"), PAIRS, ids=[f"{c.__name__}-{r}" for c, r in PAIRS])
def test_broken_adapter_fails_its_rule(cls: type, rule_id: str, rules: dict[str, specs.Rule], tmp_path) -> None:
    """The rule fails in every dtype it runs in, with a divergence (not an unsupported skip)."""
    rule = rules[rule_id]
    for dtype in rule.dtypes:
        outcome = check_rule(cls(), rule, dtype, tmp_path)
        assert not outcome.missing, f"{cls.__name__} lacks {outcome.missing}: {rule_id} would be unsupported"
        assert outcome.failure is not None, f"{rule_id} passed under {cls.__name__} in {dtype}"


BROADCASTING = [cls for cls in BROKEN if cls.__module__ == "tests.broken.broadcasting"]


@pytest.mark.parametrize("cls", BROADCASTING, ids=[c.__name__ for c in BROADCASTING])
def test_broadcasting_rules_fail_through_the_command_line(cls: type, tmp_path: Path) -> None:
    """As an engine author would see it: ``--backend=module:Class`` makes each rule it breaks fail."""
    out = tmp_path / "results.json"
    command = [
        sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider",
        f"--backend={cls.__module__}:{cls.__name__}", "--specs=specs/broadcasting.toml",
        f"--repro-dir={tmp_path}", f"--results-json={out}", "--gate-levels=required,recommended,extension",
        "-k", " or ".join(cls.breaks),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-2000:]
    statuses = {(r["id"], r["dtype"]): r["status"] for r in json.loads(out.read_text())["results"]}
    for rule_id in cls.breaks:
        ran = {dtype: status for (rid, dtype), status in statuses.items() if rid == rule_id}
        assert ran and set(ran.values()) == {"failed"}, f"{rule_id} under {cls.__name__}: {ran}"
