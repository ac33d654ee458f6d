"""The stateful model and the program generator can fail: each catches broken adapters on its own. The generator
draws every differentiable form of the ops table, only those an engine has, and its programs agree with the oracle."""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import NoSuchExample

from conformance import oracle
from conformance.draw.programs import Program, drawn_forms, programs
from conformance.execute import repro, runner
from conformance.spec import specs
from conformance.spec.forms import catalog
from conformance.vocabulary import OPS
from tests.broken.accumulation import BackwardOverwrites, GradAssignNoneIgnored, LeafGradFromFirstUseOnly
from tests.broken.backward import RetainsGraphAlways
from tests.broken.broadcasting import MulGradNotReduced
from tests.broken.detach import DetachLeafIsSelf, DetachOwnVersion, SavedOutputCopied
from tests.broken.end_to_end import OptimizerStepLost
from tests.broken.grad_mode import NoGradExitEnables
from tests.broken.higher_order import FirstOrderOnlyMul, VjpNotDifferentiable

MODEL, BACKWARD, GRADGRAD = "properties.model.stateful", "properties.programs.backward", "properties.programs.gradgrad"
JVP = "properties.programs.jvp"
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
    # The model explores sequences: some bugs (a detach with its own version counter) need a few dozen of them to
    # surface; a program has one of some 75 op forms at each step, so a bug in one op (sigmoid's saved output) needs a
    # few dozen programs. Both get a larger, still fixed-seed, budget than a single rule; a check stops at its failure.
    budget = settings(settings.get_profile("suite-can-fail"), max_examples=25)
    outcomes = [_check(cls(), rule_id, dtype, budget) for dtype in ("float32", "float64")]
    assert any(o.failure is not None for o in outcomes), f"{cls.__name__} passed {rule_id} in both dtypes"


@pytest.mark.parametrize("rule_id", [MODEL, BACKWARD, GRADGRAD, JVP])
def test_passes_on_torch(rule_id: str) -> None:
    from conformance.backends.pytorch import TorchAdapter

    outcome = _check(TorchAdapter(), rule_id, "float64")
    assert outcome.failure is None and outcome.examples > 0


def test_model_failure_shrinks_to_a_standalone_repro() -> None:
    """With shrinking on, the failure is a short script; its repro, run alone, fails the same way."""
    shrinking = settings.get_profile("conformance-gate")
    adapter = NoGradExitEnables()
    outcome = _check(adapter, MODEL, "float32", shrinking)
    assert outcome.failure is not None
    steps = [line for line in outcome.failure.script.splitlines() if re.match(r"\w+ = |backward|expect", line)]
    assert len(steps) <= 8, outcome.failure.script
    rule = next(r for r in specs.load() if r.id == MODEL)
    text = repro.parts(adapter, rule, outcome.failure, "cpu", "replay").text
    with pytest.raises(AssertionError, match=re.escape(f"[{outcome.failure.kind}]")):  # the repro's own class
        exec(compile(text, "<repro>", "exec"), {"__name__": "repro"})


def _draw(count: int, dtype: str, **kwargs: Any) -> list[Program]:
    """``count`` programs, derandomized: the same on every run."""
    drawn: list[Program] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(programs(dtype, **kwargs))
    def collect(program: Program) -> None:
        drawn.append(program)

    collect()
    return drawn


def test_every_differentiable_form_is_drawn() -> None:
    """Every ``.vjp`` form of the ops table, given as the only form to draw, is a step of one of the first 50
    programs: a form the generator cannot fit (a wrong drawer, a domain no value reaches) would silently drop out.
    From the whole catalog a step draws an op, then one of its forms, so each form it can fit is drawn there too."""
    forms = catalog()
    assert len(forms) == sum(r.id.startswith("ops.") and r.id.endswith(".vjp") for r in specs.load())
    config = settings(max_examples=50, derandomize=True, database=None, phases=[Phase.generate], deadline=None)
    missing = []
    for form in forms:
        try:
            find(programs("float32", forms=(form,)), lambda p, f=form: f.id in p.forms, settings=config)
        except NoSuchExample:
            missing.append(form.id)
    assert not missing, f"forms no program drew in {config.max_examples} tries: {missing}"


def test_programs_draw_only_the_engines_ops() -> None:
    """An engine without an op never sees it: programs draw only the forms whose ops it has (``where`` needs ``gt``);
    second order draws no detaching op, whose finite differences are no reference."""
    lacking = frozenset(OPS) - {"sum_to_size", "gt"}
    forms = drawn_forms("backward", lacking)
    assert {f.op for f in forms} == {f.op for f in catalog()} - {"sum_to_size", "where"}
    assert all(f.op != "stop_gradient" for f in drawn_forms("gradgrad"))
    assert {f.op for f in drawn_forms("jvp")} == {f.op for f in catalog()}
    drawn = {form for program in _draw(100, "float64", forms=forms) for form in program.forms}
    assert drawn and not {f.split(".")[0] for f in drawn} & {"sum_to_size", "where"}


def test_programs_leave_out_the_forms_an_engine_is_known_to_fail() -> None:
    """A form whose own rule a finding of the engine excuses is not drawn: that rule reports it, and a program
    failure should be about composition. Through the run: ``Given.known``, set by ``runner.check``."""
    known = frozenset({"ops.squeeze.dim.vjp", "ops.amax.all.vjp2", "broadcasting.grad.sum-to-input-shape"})
    forms = {f.id for f in drawn_forms("jvp", None, known)}
    assert {f.id for f in catalog()} - forms == {"squeeze.dim", "amax.all"}


def test_programs_agree_with_finite_differences() -> None:
    """The oracle's VJP of drawn programs (without a detaching op) against a central difference along a random
    direction: the two renderings, the domains, kinks and jumps kept off, make a program the oracle differentiates."""
    rng = np.random.default_rng(0)
    for program in _draw(200, "float64", forms=drawn_forms("gradgrad")):
        arrays = program.arrays
        out = oracle.value(program.expression, **arrays)
        upstream = rng.standard_normal(out.shape)
        grads = oracle.vjp(program.expression, upstream, **arrays)
        direction = {n: rng.standard_normal(a.shape) for n, a in arrays.items()}
        moved = oracle.along(functools.partial(oracle.value, program.expression), arrays, direction)
        slope = float(np.sum(upstream * moved))
        projected = sum(float(np.sum(grads[n] * direction[n])) for n in arrays)
        scale = 1.0 + sum(float(np.sum(np.abs(grads[n] * direction[n]))) for n in arrays)
        assert abs(projected - slope) <= 1e-5 * scale, program.forward()


def test_program_renderings_agree() -> None:
    """The engine's statements, run on the float64 reference engine, give the oracle's value of the one expression."""
    from conformance.backends.reference import ReferenceAdapter
    from conformance.execute.runtime import bind

    for program in _draw(100, "float64"):
        scope = bind(ReferenceAdapter(), "float64")
        scope.update({leaf.name.upper(): leaf.array for leaf in program.leaves})
        exec(program.forward(), scope)
        got = scope["numpy"](scope[program.steps[-1][0]])
        np.testing.assert_allclose(got, oracle.value(program.expression, **program.arrays), rtol=1e-12, atol=1e-12)
