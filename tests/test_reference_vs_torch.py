"""The reference engine behaves like PyTorch on random stateful programs (Hypothesis).

A program is a list of steps over a growing pool of tensors: new leaves, ops (some under no_grad),
detach, views, in-place ops, retain_grad, requires_grad_, detach_, backward and grad. Both engines run
it through their adapters; after every step the observations must agree: which error meaning was
raised (if any), and for every tensor in the pool is_leaf, requires_grad, retains_grad, the version,
whether .grad is None, and its value.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

from conformance.backends.pytorch import TorchAdapter
from conformance.backends.reference import ReferenceAdapter

SHAPES = [(), (3,), (2, 3)]
UNARY = ["exp", "sin", "tanh", "sigmoid", "relu", "neg", "clone", "floor", "abs"]
BINARY = ["add", "sub", "mul", "maximum"]
INPLACE = ["add_", "sub_", "mul_"]

Step = tuple[Any, ...]
index = st.integers(0, 30)
steps = st.one_of(
    st.tuples(st.just("leaf"), st.sampled_from(range(len(SHAPES))), st.booleans()),
    st.tuples(st.just("unary"), st.sampled_from(UNARY), index),
    st.tuples(st.just("binary"), st.sampled_from(BINARY), index, index, st.booleans()),
    st.tuples(st.just("detach"), index),
    st.tuples(st.just("view"), index),
    st.tuples(st.just("inplace"), st.sampled_from(INPLACE), index, index, st.booleans()),
    st.tuples(st.just("zero_"), index, st.booleans()),
    st.tuples(st.just("retain_grad"), index),
    st.tuples(st.just("requires_grad_"), index, st.booleans()),
    st.tuples(st.just("detach_"), index),
    st.tuples(st.just("backward"), index, st.booleans()),
    st.tuples(st.just("grad"), index, index),
    st.tuples(st.just("clear_grad"), index),
)


def _meanings(adapter: Any, exc: BaseException) -> frozenset[str]:
    return frozenset(
        meaning
        for meaning, (types, pattern) in adapter.errors.items()
        if isinstance(exc, types) and (pattern is None or re.search(pattern, str(exc)))
    )


def _values(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.linspace(-1.5, 1.3, int(np.prod(shape))).reshape(shape) + 0.1 * seed


def _step(adapter: Any, pool: list[Any], viewed: set[int], step: Step) -> Any:
    """Run one step; return a new tensor for the pool, or None.

    ``viewed`` holds the pool positions of views and their bases: requires_grad_ and detach_ leave
    them alone (changing a base's requires_grad once views of it exist is a corner PyTorch handles
    oddly, and no rule speaks of it).
    """
    ops, kind, args = adapter.ops, step[0], step[1:]
    pick = lambda i: pool[i % len(pool)]  # noqa: E731
    if kind == "leaf":
        return adapter.tensor(_values(SHAPES[args[0]], len(pool)), "float64", requires_grad=args[1])
    if kind == "unary":
        return getattr(ops, args[0])(pick(args[1]))
    if kind == "binary":
        op, a, b, quiet = args
        with adapter.no_grad() if quiet else adapter.enable_grad():
            return getattr(ops, op)(pick(a), pick(b))
    if kind == "detach":
        return adapter.detach(pick(args[0]))
    if kind == "view":
        viewed.update({args[0] % len(pool), len(pool)})
        return ops.index(pick(args[0]), slice(0, 1))
    if kind in ("inplace", "zero_"):
        *operands, quiet = args
        op = getattr(ops, args[0] if kind == "inplace" else "zero_")
        tensors = [pick(i) for i in operands[1:]] if kind == "inplace" else [pick(operands[0])]
        if len(tensors) == 2 and tensors[0] is not tensors[1] and adapter.shares_storage(*tensors):
            tensors[1] = ops.clone(tensors[1])  # partly overlapping operands: PyTorch refuses, by design
        with adapter.no_grad() if quiet else adapter.enable_grad():
            op(*tensors)
        return None
    if kind == "retain_grad":
        adapter.retain_grad(pick(args[0]))
    elif kind == "requires_grad_" and args[0] % len(pool) not in viewed:
        adapter.requires_grad_(pick(args[0]), args[1])
    elif kind == "detach_" and args[0] % len(pool) not in viewed:
        adapter.detach_(pick(args[0]))
    elif kind == "backward":
        adapter.backward(ops.sum(pick(args[0])), retain_graph=args[1])
    elif kind == "grad":
        grads = adapter.grad(ops.sum(pick(args[0])), [pick(args[1])], retain_graph=True, allow_unused=True)
        return None if grads[0] is None else ops.clone(adapter.detach(grads[0]))  # a fresh version counter
    elif kind == "clear_grad":
        adapter.set_grad(pick(args[0]), None)
    return None


def _observe(adapter: Any, pool: list[Any]) -> list[tuple[Any, ...]]:
    facts = []
    for t in pool:
        g = adapter.grad_of(t)
        facts.append(
            (
                adapter.is_leaf(t),
                adapter.requires_grad(t),
                adapter.retains_grad(t),
                adapter.version(t),
                None if g is None else np.round(adapter.numpy(g), 6).tolist(),
                np.round(adapter.numpy(t), 6).tolist(),
            )
        )
    return facts


def run(adapter: Any, program: list[Step]) -> list[Any]:
    """The observations after each step of ``program``."""
    pool = [
        adapter.tensor(_values((3,), 0), "float64", requires_grad=True),
        adapter.tensor(_values((2, 3), 1), "float64"),
    ]
    trace, viewed = [], set()
    for step in program:
        try:
            new = _step(adapter, pool, viewed, step)
            outcome: Any = "ok"
        except Exception as exc:  # the engine's own error: compared by meaning
            new, outcome = None, sorted(_meanings(adapter, exc)) or type(exc).__name__
        if new is not None:
            pool.append(new)
        trace.append((step, outcome, _observe(adapter, pool)))
    return trace


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=12))
def test_same_structure_as_torch(program: list[Step]) -> None:
    for (step, want, facts_t), (_, got, facts_r) in zip(run(TorchAdapter(), program), run(ReferenceAdapter(), program)):
        if isinstance(want, str) and want != "ok" and isinstance(got, str) and got != "ok":
            got = want  # both raised an error no meaning names (e.g. an IndexError): fine
        assert got == want, f"after {step}: torch {want}, reference {got}"
        assert facts_r == facts_t, f"after {step}:\n  torch     {facts_t}\n  reference {facts_r}"
