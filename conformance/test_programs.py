"""Random programs: every leaf's gradient, and second derivatives, match the float64 oracle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance import runtime
from conformance.adapter import missing_capabilities
from conformance.model import TOLERANCES
from conformance.plugin import Run
from conformance.programs import KINDS, Program, cotangents, programs
from conformance.runtime import ConformanceFailure
from conformance.strategies import values

GRADGRAD_TOLERANCES = {dtype: (max(rtol, 1e-5), max(atol, 1e-5)) for dtype, (rtol, atol) in TOLERANCES.items()}
"""Second derivatives are checked against finite differences, good to about 1e-6."""
KIND_NEEDS = {"detached": "detach", "no_grad": "no_grad"}
"""The capability a leaf kind needs; "grad" and "const" leaves are plain tensors (a functional engine has them)."""


class ProgramFailure(AssertionError):
    """The engine diverged on a drawn program; the message holds the script that shows it."""


def run_script(run: Run, dtype: str, script: str, tolerances: dict[str, tuple[float, float]]) -> None:
    namespace = runtime.bind(run.adapter, dtype, run.device, tolerances)
    try:
        exec(compile(script, "<program>", "exec"), namespace)
    except ConformanceFailure as exc:
        raise ProgramFailure(f"{exc}\n---- script ({run.adapter.name}, {dtype}) ----\n{script}") from exc
    except Exception as exc:  # the engine raised on a valid program
        raise ProgramFailure(f"[unexpected_error] {type(exc).__name__}: {exc}\n---- script ----\n{script}") from exc


def _require(run: Run, needs: list[str]) -> None:
    missing = missing_capabilities(run.adapter, needs)
    if missing:
        pytest.skip(f"unsupported: {run.adapter.name} lacks {', '.join(missing)}")


def _cases(run: Run) -> st.SearchStrategy[tuple[str, Program]]:
    kinds = tuple(k for k in KINDS if k not in KIND_NEEDS or KIND_NEEDS[k] in run.adapter.capabilities)
    return st.sampled_from(run.dtypes).flatmap(lambda d: st.tuples(st.just(d), programs(d, kinds)))


def _with_settings(run: Run, test: Callable[[], None]) -> Callable[[], None]:
    """``test`` under the run's Hypothesis settings when it overrides the profile (the suite's own tests)."""
    return run.hypothesis_settings(test) if run.hypothesis_settings is not None else test


def check_backward(run: Run) -> None:
    """Each leaf's .grad after backward with a drawn gradient: the oracle's VJP, or None."""

    @given(case=_cases(run), data=st.data())
    def prop(case: tuple[str, Program], data: Any) -> None:
        dtype, program = case
        upstream = data.draw(cotangents(program, dtype), label="upstream")
        run_script(run, dtype, program.backward_script(upstream), TOLERANCES)

    _with_settings(run, prop)()


def check_gradgrad(run: Run) -> None:
    """Nested vjp of <grad, v> against finite differences of the oracle's first-order VJP."""

    @given(case=_cases(run), data=st.data())
    def prop(case: tuple[str, Program], data: Any) -> None:
        dtype, program = case
        upstream = data.draw(cotangents(program, dtype), label="upstream")
        weights = {n: data.draw(values(program.arrays[n].shape, dtype, "real"), label=f"v_{n}") for n in program.wrt}
        run_script(run, dtype, program.gradgrad_script(upstream, weights), GRADGRAD_TOLERANCES)

    _with_settings(run, prop)()


def test_programs_backward(conformance_run: Run) -> None:
    _require(conformance_run, ["stateful"])
    check_backward(conformance_run)


def test_programs_gradgrad(conformance_run: Run) -> None:
    _require(conformance_run, ["higher_order"])
    check_gradgrad(conformance_run)
