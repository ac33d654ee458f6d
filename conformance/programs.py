"""Random programs: small DAGs over the smooth part of the op catalog, with oracle gradients.

A drawn ``Program`` has a few leaves (drawn with mutually broadcastable shapes) of four kinds:
requiring grad, constant, detached, or made under no_grad; then a few ops, each over earlier
values. It is written twice: as statements the engine runs (each intermediate computed once, so
the engine sees the DAG), and as one expression over the leaves in the suite's language, which
the float64 oracle evaluates and differentiates. Values are computed while drawing, so an op is
only added where it stays finite and moderate and a denominator stays positive.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance import oracle
from conformance.literal import Script
from conformance.specs import Rule, SpecError
from conformance.strategies import representable, values

KINDS = ("grad", "const", "detached", "no_grad")
"""How a leaf is made; only "grad" leaves receive a gradient."""
KIND_NEEDS = {"detached": "detach", "no_grad": "no_grad"}
"""The capability a leaf kind needs; "grad" and "const" leaves are plain tensors (a functional engine has them)."""
UNARY = ("exp", "tanh", "sigmoid", "sin")
BINARY = ("add", "sub", "mul", "div")
SHAPED = ("sum", "mean", "reshape", "transpose", "broadcast_to", "matmul")
MAX_VALUE = 20.0
MIN_DENOMINATOR = 0.25
MAX_OPS = 6


@dataclass(frozen=True)
class Leaf:
    name: str
    array: np.ndarray
    kind: str

    def statement(self) -> str:
        """The engine-side line that makes this leaf as its kind says."""
        made = f"tensor({self.name.upper()}, requires_grad={self.kind != 'const'})"
        if self.kind == "detached":
            return f"{self.name} = detach({made})\n"
        if self.kind == "no_grad":
            return f"with no_grad():\n    {self.name} = mul({made}, tensor(1.0))\n"
        return f"{self.name} = {made}\n"


@dataclass(frozen=True)
class Value:
    """A leaf or an op result while drawing: its expression over leaves, value and dependencies."""

    name: str
    expression: str
    value: np.ndarray
    leaves: frozenset[str]


@dataclass(frozen=True)
class Program:
    leaves: tuple[Leaf, ...]
    steps: tuple[tuple[str, str], ...]
    """(name, call over earlier names), in order; the last is the output."""
    expression: str
    """The output as one expression over the leaves: what the oracle evaluates."""
    used: frozenset[str]
    """Leaves the output depends on."""

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {leaf.name: leaf.array for leaf in self.leaves}

    @property
    def wrt(self) -> list[str]:
        """Leaves that require grad and reach the output: those that get a gradient."""
        return [leaf.name for leaf in self.leaves if leaf.kind == "grad" and leaf.name in self.used]

    def forward(self) -> str:
        text = "".join(leaf.statement() for leaf in self.leaves)
        return text + "".join(f"{name} = {call}\n" for name, call in self.steps)

    def function(self) -> str:
        """The program as ``def program(<leaves that get a gradient>)``, the others closed over: what vjp and
        jvp differentiate."""
        body = "".join(f"    {name} = {call}\n" for name, call in self.steps)
        return f"def program({', '.join(self.wrt)}):\n{body}    return {self.steps[-1][0]}\n"

    def constants(self, upstream: np.ndarray) -> dict[str, np.ndarray]:
        return {"UPSTREAM": upstream, **{leaf.name.upper(): leaf.array for leaf in self.leaves}}

    def backward_script(self, upstream: np.ndarray) -> Script:
        """Backward with a drawn gradient; every leaf's .grad against the oracle (None if none)."""
        expected = oracle.vjp(self.expression, upstream, **self.arrays)
        constants = self.constants(upstream)
        text = self.forward() + f"backward({self.steps[-1][0]}, tensor(UPSTREAM))\n"
        for leaf in self.leaves:
            if leaf.name in self.wrt:
                constants[f"EXPECTED_{leaf.name.upper()}"] = expected[leaf.name]
                text += f"expect_grad({leaf.name}, EXPECTED_{leaf.name.upper()})\n"
            else:
                text += f"expect_no_grad({leaf.name})\n"
        return Script(constants, text)

    def gradgrad_script(self, upstream: np.ndarray, weights: dict[str, np.ndarray]) -> Script:
        """Second order: the gradient of <vjp(program, upstream), weights> through nested vjp, against
        central differences of the oracle's own first-order VJP along the weights (``H w``)."""
        wrt = self.wrt
        vjp = oracle.along(
            lambda **kw: oracle.vjp(self.expression, upstream, **kw), self.arrays, {n: weights[n] for n in wrt}
        )
        expected = {n: vjp[n] for n in wrt}
        constants = self.constants(upstream)
        constants.update({f"W_{n.upper()}": weights[n] for n in wrt})
        constants.update({f"EXPECTED_{n.upper()}": expected[n] for n in wrt})
        args = ", ".join(wrt)
        pairing = [f"sum(mul(g[{i}], tensor(W_{n.upper()})))" for i, n in enumerate(wrt)]
        text = self.forward() + self.function()
        text += f"def paired({args}):\n    out, g = vjp(program, [{args}], tensor(UPSTREAM))\n"
        text += f"    return {functools.reduce(_added, pairing)}\n"
        text += f"out, second = vjp(paired, [{args}], tensor(1.0))\n"
        text += "".join(f"expect_close(second[{i}], EXPECTED_{n.upper()})\n" for i, n in enumerate(wrt))
        return Script(constants, text)

    def jvp_script(self, upstream: np.ndarray, tangents: dict[str, np.ndarray]) -> Script:
        """Forward mode: jvp along drawn tangents against the oracle's exact ``J t``, and the dot-product test
        <u, J t> = <J^T u, t> between the engine's own jvp and vjp."""
        wrt = self.wrt
        constants = self.constants(upstream)
        constants.update({f"T_{n.upper()}": tangents[n] for n in wrt})
        constants["EXPECTED_JVP"] = oracle.jvp(self.expression, {n: tangents[n] for n in wrt}, **self.arrays)
        args = ", ".join(wrt)
        pulled = [f"sum(mul(pulled[{i}], tensor(T_{n.upper()})))" for i, n in enumerate(wrt)]
        text = self.forward() + self.function()
        text += f"out, tangent = jvp(program, [{args}], [{', '.join(f'tensor(T_{n.upper()})' for n in wrt)}])\n"
        text += "expect_close(tangent, EXPECTED_JVP)\n"
        text += f"pulled = vjp(program, [{args}], tensor(UPSTREAM))[1]\n"
        text += f"expect_close(sum(mul(tensor(UPSTREAM), tangent)), numpy({functools.reduce(_added, pulled)}))\n"
        return Script(constants, text)


def _added(total: str, term: str) -> str:
    return f"add({total}, {term})"


def _calls(draw: st.DrawFn, nodes: list[Value], result: tuple[int, ...]) -> tuple[str, list[Value]] | None:
    """One op and its operands, as a call template with ``{0}``, ``{1}`` for the operands.

    The first operand is the latest value, so the output depends on the first leaf; a second
    operand may be any earlier value, which makes the program a DAG.
    """
    op = draw(st.sampled_from((*UNARY, *BINARY, *SHAPED)))
    a = nodes[-1]
    ndim = a.value.ndim
    if op in UNARY:
        return f"{op}({{0}})", [a]
    if op in BINARY:
        return f"{op}({{0}}, {{1}})", [a, draw(st.sampled_from(nodes))]
    if op in ("sum", "mean") and ndim:
        dim, keepdim = draw(st.integers(-ndim, ndim - 1)), draw(st.booleans())
        return f"{op}({{0}}, dim={dim}, keepdim={keepdim})", [a]
    if op == "reshape":
        return "reshape({0}, (-1,))", [a]
    if op == "transpose" and ndim >= 2:
        return "transpose({0}, 0, -1)", [a]
    if op == "broadcast_to":
        return f"broadcast_to({{0}}, {result})", [a]
    if op == "matmul" and ndim >= 2:
        same = [n for n in nodes if n.value.shape == a.value.shape]
        return "matmul({0}, transpose({1}, -1, -2))", [a, draw(st.sampled_from(same))]
    return None


def _acceptable(call: str, operands: list[Value], value: np.ndarray) -> bool:
    if not (np.all(np.isfinite(value)) and np.max(np.abs(value), initial=0.0) <= MAX_VALUE):
        return False
    return not call.startswith("div") or np.min(operands[1].value, initial=1.0) >= MIN_DENOMINATOR


@st.composite
def programs(draw: st.DrawFn, dtype: str, kinds: tuple[str, ...] = KINDS) -> Program:
    """A program over 1-3 leaves (the first requires grad) and 1-6 ops."""
    count = draw(st.integers(1, 3))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=count, max_dims=3, min_side=1, max_side=3))
    leaves = tuple(
        Leaf(name, draw(values(shape, dtype, "real")), "grad" if i == 0 else draw(st.sampled_from(kinds)))
        for i, (name, shape) in enumerate(zip("abc", shapes.input_shapes))
    )
    nodes = [Value(leaf.name, leaf.name, leaf.array, frozenset({leaf.name})) for leaf in reversed(leaves)]
    arrays = {leaf.name: leaf.array for leaf in leaves}
    steps: list[tuple[str, str]] = []

    def add(call: str, operands: list[Value]) -> None:
        """Append ``call`` over ``operands`` if it is defined, finite and moderate there."""
        expression = call.format(*(o.expression for o in operands))
        try:
            with np.errstate(all="ignore"):  # overflow or a zero denominator: rejected below
                value = representable(oracle.value(expression, **arrays), dtype)
        except ValueError:  # operands that do not broadcast, or a shape the op refuses
            return
        if _acceptable(call, operands, value):
            name = f"v{len(steps)}"
            steps.append((name, call.format(*(o.name for o in operands))))
            nodes.append(Value(name, expression, value, frozenset().union(*(o.leaves for o in operands))))

    for _ in range(draw(st.integers(1, MAX_OPS))):
        drawn = _calls(draw, nodes, shapes.result_shape)
        if drawn is not None:
            add(*drawn)
    for leaf in nodes[: len(leaves)]:  # join in the leaves the output does not use yet, where shapes allow
        if leaf.name not in nodes[-1].leaves:
            add(f"{draw(st.sampled_from(('add', 'mul')))}({{0}}, {{1}})", [nodes[-1], leaf])
    if not steps:
        steps.append(("v0", "tanh(a)"))
        nodes.append(Value("v0", "tanh(a)", np.tanh(leaves[0].array), frozenset({"a"})))
    return Program(leaves, tuple(steps), nodes[-1].expression, nodes[-1].leaves)


def cotangents(program: Program, dtype: str) -> st.SearchStrategy[np.ndarray]:
    """An upstream gradient of the program's output shape."""
    shape = np.shape(oracle.value(program.expression, **program.arrays))
    return values(shape, dtype, "real") if math.prod(shape) else st.just(np.zeros(shape))


@dataclass(frozen=True)
class ProgramCase:
    """One drawn program with its upstream gradient and, but for ``backward``, an array per leaf that gets a
    gradient: the pairing weights (``gradgrad``) or the tangents (``jvp``)."""

    dtype: str
    program: Program
    upstream: np.ndarray
    directions: dict[str, np.ndarray] | None = None

    def __repr__(self) -> str:
        leaves = ", ".join(f"{leaf.name}: {leaf.kind} {leaf.array.shape}" for leaf in self.program.leaves)
        return f"ProgramCase(dtype={self.dtype!r}, output={self.program.expression}, leaves=({leaves}))"


@st.composite
def program_cases(draw: st.DrawFn, dtype: str, kinds: tuple[str, ...], check: str) -> ProgramCase:
    """A program, its upstream gradient and, but for ``backward``, a direction per leaf that gets a gradient."""
    program = draw(programs(dtype, kinds))
    upstream = draw(cotangents(program, dtype), label="upstream")
    if check == "backward":
        return ProgramCase(dtype, program, upstream)
    directions = {n: draw(values(program.arrays[n].shape, dtype, "real"), label=f"v_{n}") for n in program.wrt}
    return ProgramCase(dtype, program, upstream, directions)


CHECKS = {"backward": ["stateful"], "gradgrad": ["higher_order"], "jvp": ["forward_mode"]}
"""What a program rule checks, and the capability each needs."""


class ProgramTemplate:
    """The ``program`` template: random programs, checked through ``backward`` (every leaf's .grad), ``gradgrad``
    (nested ``vjp`` against finite differences) or ``jvp`` (forward mode against the oracle's ``J t``)."""

    fields = {"check": True, "leaves": False}
    code_field = "check"

    def needs(self, rule: Rule) -> list[str]:
        return [*CHECKS[rule.args["check"]], *(KIND_NEEDS[k] for k in self._kinds(rule) if k in KIND_NEEDS)]

    def ops(self, rule: Rule) -> frozenset[str]:
        return frozenset({*UNARY, *BINARY, *SHAPED, "tanh"})

    def validate(self, rule: Rule) -> None:
        if rule.args["check"] not in CHECKS:
            raise SpecError(rule.path, rule.id, "check", f"must be one of {sorted(CHECKS)}")
        kinds = rule.args.get("leaves", list(KINDS))
        if not (isinstance(kinds, list) and "grad" in kinds and set(kinds) <= set(KINDS)):
            raise SpecError(rule.path, rule.id, "leaves", f"must list kinds from {KINDS}, 'grad' among them")

    def _kinds(self, rule: Rule) -> tuple[str, ...]:
        return tuple(rule.args.get("leaves", KINDS))

    def strategy(self, rule: Rule, dtypes: list[str]) -> st.SearchStrategy[ProgramCase]:
        kinds, check = self._kinds(rule), rule.args["check"]
        return st.sampled_from(dtypes).flatmap(lambda dtype: program_cases(dtype, kinds, check))

    def example(self, rule: Rule, case: Any) -> Any:
        return case

    def script(self, rule: Rule, case: ProgramCase) -> Script:
        check = rule.args["check"]
        if check == "backward":
            return case.program.backward_script(case.upstream)
        assert case.directions is not None
        if check == "gradgrad":
            return case.program.gradgrad_script(case.upstream, case.directions)
        return case.program.jvp_script(case.upstream, case.directions)
