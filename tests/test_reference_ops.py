"""Every op of the reference engine: first and second derivatives against numerical ones, in float64.

First derivatives are checked per element against the complex step where the program is analytic
(exact to rounding), else against central differences. Second derivatives (the VJP differentiated
again through ``create_graph``) are checked against central differences of the engine's first
derivative, which the first check has just validated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from conformance.reference import Tensor, grad, ops, tensor
from conformance.vocabulary import OPS

COND = np.array([[True, False, True], [False, False, True]])


@dataclass(frozen=True)
class Case:
    id: str
    fn: Callable[..., Tensor]
    shapes: tuple[tuple[int, ...], ...]
    analytic: bool = True
    positive: bool = False
    covers: tuple[str, ...] = ()
    """Catalog ops this case exercises besides the one its id names."""


def _inplace(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``op`` applied in place to a non-leaf copy of the first input."""

    def program(a: Tensor, *rest: Any) -> Tensor:
        y = ops.clone(a)
        op(y, *rest)
        return y

    return program


CASES = [
    Case("add", ops.add, ((2, 3), (3,))),
    Case("sub", ops.sub, ((2, 1), (1, 3))),
    Case("mul", ops.mul, ((2, 1, 3), (4, 1))),
    Case("div", ops.div, ((2, 3), (2, 3)), positive=True),
    Case("neg", ops.neg, ((3,),)),
    Case("pow", ops.pow, ((2, 3), (3,)), positive=True),
    Case("pow-scalar", lambda a: ops.pow(a, 3.0), ((2, 3),), covers=("pow",)),
    Case("pow-sqrt", lambda a: ops.pow(a, 0.5), ((4,),), positive=True, covers=("pow",)),
    Case("exp", ops.exp, ((2, 3),)),
    Case("log", ops.log, ((2, 3),), positive=True),
    Case("sqrt", ops.sqrt, ((2, 3),), positive=True),
    Case("sin", ops.sin, ((2, 3),)),
    Case("cos", ops.cos, ((2, 3),)),
    Case("tanh", ops.tanh, ((2, 3),)),
    Case("sigmoid", ops.sigmoid, ((2, 3),)),
    Case("relu", lambda a: ops.relu(a) * a, ((2, 3),), analytic=False, covers=("relu", "mul")),
    Case("abs", lambda a: ops.abs(a) * a, ((2, 3),), analytic=False, covers=("abs", "mul")),
    Case("maximum", lambda a, b: ops.maximum(a, b) * a, ((2, 3), (3,)), analytic=False),
    Case("minimum", lambda a, b: ops.minimum(a, b) * b, ((2, 3), (3,)), analytic=False),
    Case("where", lambda a, b: ops.where(tensor(COND), a * a, b), ((2, 3), (3,))),
    Case("clamp", lambda a: ops.clamp(a, min=-0.5, max=0.5) * a, ((2, 3),), analytic=False),
    Case("sum", lambda a: ops.sum(a * a, dim=1), ((2, 3),)),
    Case("sum-all", lambda a: ops.sum(a * a), ((2, 3),), covers=("sum",)),
    Case("mean", lambda a: ops.mean(a * a, dim=(0, 2), keepdim=True), ((2, 3, 2),)),
    Case("amax", lambda a: ops.amax(a * a, dim=1), ((2, 3),), analytic=False),
    Case("reshape", lambda a: ops.reshape(a, (3, 2)) ** 2, ((2, 3),)),
    Case("permute", lambda a: ops.permute(a, (2, 0, 1)) ** 2, ((2, 3, 2),)),
    Case("transpose", lambda a: ops.transpose(a, 0, -1) ** 2, ((2, 3),)),
    Case("expand", lambda a: ops.expand(a, (2, -1, 4)) ** 2, ((3, 1),)),
    Case("broadcast_to", lambda a: ops.broadcast_to(a, (2, 3, 4)) ** 2, ((3, 1),)),
    Case("sum_to_size", lambda a: ops.sum_to_size(a * a, (3, 1)), ((2, 3, 4),)),
    Case("squeeze", lambda a: ops.squeeze(a, 1) ** 2, ((2, 1, 3),)),
    Case("unsqueeze", lambda a: ops.unsqueeze(a, -1) ** 2, ((2, 3),)),
    Case("matmul", lambda a, b: ops.matmul(a * a, b), ((2, 1, 3, 4), (5, 4, 2))),
    Case("matmul-vector", lambda a, b: ops.matmul(a * a, b), ((4,), (3, 4, 2)), covers=("matmul",)),
    Case("matmul-dot", lambda a, b: ops.matmul(a * a, b), ((4,), (4,)), covers=("matmul",)),
    Case("index", lambda a: ops.index(a * a, (slice(0, 2), [0, 2, 2])), ((3, 4),)),
    Case("cat", lambda a, b: ops.cat([a * a, b], dim=1), ((2, 3), (2, 2))),
    Case("stack", lambda a, b: ops.stack([a * a, b], dim=-1), ((2, 3), (2, 3))),
    Case("softmax", lambda a: ops.softmax(a, 1), ((2, 3),)),
    Case("log_softmax", lambda a: ops.log_softmax(a, 0), ((2, 3),)),
    Case("floor", lambda a: ops.floor(a) * a, ((2, 3),), analytic=False),
    Case("clone", lambda a: ops.clone(a) ** 2, ((2, 3),)),
    # a real cast that loses nothing in float64 (float32 would swamp the finite differences)
    Case("to_dtype", lambda a: ops.to_dtype(ops.to_dtype(a, "longdouble") ** 2, "float64"), ((2, 3),), analytic=False),
    Case("add_", _inplace(ops.add_), ((2, 3), (3,))),
    Case("sub_", _inplace(ops.sub_), ((2, 3), (1, 3))),
    Case("mul_", _inplace(ops.mul_), ((2, 3), (3,))),
    Case("zero_", lambda a, b: _inplace(ops.zero_)(a) + b * b, ((2, 3), (2, 3))),
    Case("copy_", lambda a, b: _inplace(ops.copy_)(a, b * b), ((2, 3), (3,))),
    Case("setitem_", lambda a, b: _inplace(ops.setitem_)(a, (0, slice(1, 3)), b * b), ((2, 3), (2,))),
    Case(
        "setitem_-advanced", lambda a, b: _inplace(ops.setitem_)(a, [1, 0], b * b), ((2, 3), (3,)), covers=("setitem_",)
    ),
    Case("mul_-on-view", lambda a, b: _view_mul(a, b), ((2, 3), (3,)), covers=("mul_", "index")),
]


def _view_mul(a: Tensor, b: Tensor) -> Tensor:
    """An in-place op through a view of a non-leaf: the base's gradient goes through 'copy slices'."""
    y = a * 1.0
    ops.mul_(ops.index(y, 0), b)
    return y * y


def _inputs(case: Case) -> list[np.ndarray]:
    rng = np.random.default_rng(abs(hash(case.id)) % 2**32)
    low, high = (0.5, 2.0) if case.positive else (-2.0, 2.0)
    return [rng.uniform(low, high, shape) for shape in case.shapes]


def _forward(case: Case, arrays: list[np.ndarray]) -> np.ndarray:
    return case.fn(*(Tensor(a) for a in arrays)).array


def _vjps(case: Case, arrays: list[np.ndarray], u: np.ndarray, create_graph: bool) -> tuple[list[Tensor], Tensor]:
    leaves = [tensor(a, requires_grad=True) for a in arrays]
    out = case.fn(*leaves)
    grads = grad(out, leaves, tensor(u), create_graph=create_graph, allow_unused=True, materialize_grads=True)
    return list(grads), leaves


def _numeric(f: Callable[[list[np.ndarray]], float], arrays: list[np.ndarray], complex_step: bool) -> list[np.ndarray]:
    """d f / d arrays, per element: complex step (h = 1e-20) or central differences (h = 1e-6)."""
    grads = []
    for i, x in enumerate(arrays):
        g = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            if complex_step:
                step = np.zeros(x.shape, complex)
                step[j] = 1e-20j
                shifted = [a.astype(complex) for a in arrays]
                shifted[i] = shifted[i] + step
                g[j] = np.imag(f(shifted)) / 1e-20
            else:
                hi, lo = [a.copy() for a in arrays], [a.copy() for a in arrays]
                hi[i][j] += 1e-6
                lo[i][j] -= 1e-6
                g[j] = (f(hi) - f(lo)) / 2e-6
        grads.append(g)
    return grads


def test_cases_cover_the_catalog() -> None:
    covered = {c.id for c in CASES} | {name for c in CASES for name in c.covers}
    # gt, argmax: never differentiable (see test_reference_engine); stop_gradient: its gradient is zero by
    # definition, not its value's derivative, so no numerical check applies (the detach.stop-gradient rules)
    untested = set(OPS) - covered - {"gt", "argmax", "stop_gradient"}
    assert not untested, sorted(untested)
    assert set(OPS) == set(ops.CATALOG)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_first_derivative(case: Case) -> None:
    arrays = _inputs(case)
    u = np.random.default_rng(1).uniform(-1, 1, _forward(case, arrays).shape)
    grads, _ = _vjps(case, arrays, u, create_graph=False)
    reference = _numeric(lambda xs: np.sum(u * _forward(case, xs)), arrays, case.analytic)
    tol = 1e-12 if case.analytic else 1e-6
    for got, want in zip(grads, reference):
        np.testing.assert_allclose(got.array, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_second_derivative(case: Case) -> None:
    arrays = _inputs(case)
    rng = np.random.default_rng(2)
    u = rng.uniform(-1, 1, _forward(case, arrays).shape)
    w = [rng.uniform(-1, 1, a.shape) for a in arrays]

    def first(xs: list[np.ndarray]) -> float:
        grads, _ = _vjps(case, xs, u, create_graph=False)
        return float(sum(np.sum(g.array * wi) for g, wi in zip(grads, w)))

    reference = _numeric(first, arrays, complex_step=False)
    grads, leaves = _vjps(case, arrays, u, create_graph=True)
    inner = sum(ops.sum(g * tensor(wi)) for g, wi in zip(grads, w))
    if not inner.requires_grad:  # the first derivative is constant: the second must vanish
        got = [np.zeros_like(a) for a in arrays]
    else:
        got = [g.array for g in grad(inner, leaves, allow_unused=True, materialize_grads=True)]
    for g, want in zip(got, reference):
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)
