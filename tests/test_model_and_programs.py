"""The stateful model and the program generator can fail: each catches broken adapters on its own."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from conformance.model import ModelFailure
from conformance.plugin import Run
from conformance.runtime import ConformanceFailure
from conformance.test_model import check_model
from conformance.test_programs import ProgramFailure, check_backward, check_gradgrad
from tests.broken.accumulation import BackwardOverwrites, GradAssignNoneIgnored, LeafGradFromFirstUseOnly
from tests.broken.backward import RetainsGraphAlways
from tests.broken.broadcasting import DivGradSign, MulGradNotReduced
from tests.broken.detach import DetachLeafIsSelf, DetachOwnVersion, SavedOutputCopied
from tests.broken.end_to_end import OptimizerStepLost
from tests.broken.grad_mode import NoGradExitEnables
from tests.broken.higher_order import FirstOrderOnlyMul, VjpNotDifferentiable
from tests.conftest import make_run

CASES: list[tuple[Callable[[Run], None], type[AssertionError], type]] = [
    *[(check_model, ModelFailure, cls) for cls in (
        BackwardOverwrites, GradAssignNoneIgnored, RetainsGraphAlways, DetachOwnVersion, NoGradExitEnables,
        OptimizerStepLost,
    )],
    *[(check_backward, ProgramFailure, cls) for cls in (
        MulGradNotReduced, DivGradSign, LeafGradFromFirstUseOnly, DetachLeafIsSelf,
    )],
    *[(check_gradgrad, ProgramFailure, cls) for cls in (FirstOrderOnlyMul, VjpNotDifferentiable, SavedOutputCopied)],
]  # fmt: skip


def _run(adapter: Any, tmp_path: Path, hypothesis_settings: settings | None = None) -> Run:
    run = make_run(adapter, tmp_path, rules=[])
    overrides = {"hypothesis_settings": hypothesis_settings} if hypothesis_settings else {}
    return dataclasses.replace(run, dtypes=["float32", "float64"], **overrides)


@pytest.mark.parametrize(
    ("check", "failure", "cls"), CASES, ids=[f"{c.__name__}-{cls.__name__}" for c, _, cls in CASES]
)
def test_catches_broken_adapter(check: Callable[[Run], None], failure: type, cls: type, tmp_path: Path) -> None:
    # The model explores sequences: some bugs (a detach with its own version counter) need a few
    # dozen of them to surface, so it gets a larger, still fixed-seed, budget than a single rule.
    budget = settings(settings.get_profile("suite-can-fail"), max_examples=100) if check is check_model else None
    with pytest.raises(failure):
        check(_run(cls(), tmp_path, budget))


@pytest.mark.parametrize("check", [check_model, check_backward, check_gradgrad])
def test_passes_on_torch(check: Callable[[Run], None], tmp_path: Path) -> None:
    from conformance.backends.pytorch import TorchAdapter

    check(_run(TorchAdapter(), tmp_path))


def test_model_failure_shrinks_to_a_replayable_script(tmp_path: Path) -> None:
    """With shrinking on, the failure is a short script that, run alone, fails the same way."""
    shrinking = settings(settings.get_profile("conformance-gate"), max_examples=25)
    with pytest.raises(ModelFailure) as caught:
        check_model(_run(NoGradExitEnables(), tmp_path, shrinking))
    script = str(caught.value).split("---- replay script (python FILE) ----\n", 1)[1]
    steps = [line for line in script.splitlines() if re.match(r"\w+ = |backward|expect", line)]
    assert len(steps) <= 8, script
    with pytest.raises(ConformanceFailure):
        exec(compile(script, "<replay>", "exec"), {})
