"""The stateful model and the program generator can fail: each catches broken adapters on its own."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import settings

from conformance import repro, runner, specs
from tests.broken.accumulation import BackwardOverwrites, GradAssignNoneIgnored, LeafGradFromFirstUseOnly
from tests.broken.backward import RetainsGraphAlways
from tests.broken.broadcasting import MulGradNotReduced
from tests.broken.detach import DetachLeafIsSelf, DetachOwnVersion, SavedOutputCopied
from tests.broken.end_to_end import OptimizerStepLost
from tests.broken.grad_mode import NoGradExitEnables
from tests.broken.higher_order import FirstOrderOnlyMul, VjpNotDifferentiable

MODEL, BACKWARD, GRADGRAD = "properties.model.stateful", "properties.programs.backward", "properties.programs.gradgrad"
CASES: list[tuple[str, type]] = [
    *[(MODEL, cls) for cls in (
        BackwardOverwrites, GradAssignNoneIgnored, RetainsGraphAlways, DetachOwnVersion, NoGradExitEnables,
        OptimizerStepLost,
    )],
    *[(BACKWARD, cls) for cls in (MulGradNotReduced, LeafGradFromFirstUseOnly, DetachLeafIsSelf)],
    *[(GRADGRAD, cls) for cls in (FirstOrderOnlyMul, VjpNotDifferentiable, SavedOutputCopied)],
]  # fmt: skip


def _check(adapter: Any, rule_id: str, dtype: str, overrides: settings | None = None) -> runner.Outcome:
    rule = next(r for r in specs.load() if r.id == rule_id)
    return runner.check(adapter, rule, dtype, "cpu", overrides=overrides or settings.get_profile("suite-can-fail"))


@pytest.mark.parametrize(("rule_id", "cls"), CASES, ids=[f"{r.split('.')[-1]}-{cls.__name__}" for r, cls in CASES])
def test_catches_broken_adapter(rule_id: str, cls: type) -> None:
    # The model explores sequences: some bugs (a detach with its own version counter) need a few
    # dozen of them to surface, so it gets a larger, still fixed-seed, budget than a single rule.
    budget = settings(settings.get_profile("suite-can-fail"), max_examples=100) if rule_id == MODEL else None
    outcomes = [_check(cls(), rule_id, dtype, budget) for dtype in ("float32", "float64")]
    assert any(o.failure is not None for o in outcomes), f"{cls.__name__} passed {rule_id} in both dtypes"


@pytest.mark.parametrize("rule_id", [MODEL, BACKWARD, GRADGRAD])
def test_passes_on_torch(rule_id: str) -> None:
    from conformance.backends.pytorch import TorchAdapter

    outcome = _check(TorchAdapter(), rule_id, "float64")
    assert outcome.failure is None and outcome.examples > 0


def test_model_failure_shrinks_to_a_standalone_repro() -> None:
    """With shrinking on, the failure is a short script; its repro, run alone, fails the same way."""
    shrinking = settings(settings.get_profile("conformance-gate"), max_examples=25)
    adapter = NoGradExitEnables()
    outcome = _check(adapter, MODEL, "float32", shrinking)
    assert outcome.failure is not None
    steps = [line for line in outcome.failure.script.splitlines() if re.match(r"\w+ = |backward|expect", line)]
    assert len(steps) <= 8, outcome.failure.script
    rule = next(r for r in specs.load() if r.id == MODEL)
    text = repro.parts(adapter, rule, outcome.failure, "cpu", "replay").text
    with pytest.raises(AssertionError, match=re.escape(f"[{outcome.failure.kind}]")):  # the repro's own class
        exec(compile(text, "<repro>", "exec"), {"__name__": "repro"})
