"""Random programs: small DAGs over every differentiable form of the ops table, with oracle gradients.

A drawn ``Program`` has a few leaves (drawn with mutually broadcastable shapes) of four kinds:
requiring grad, constant, detached, or made under no_grad; then a few steps, each an op form of
``specs/ops.toml`` (``program_forms``) over earlier values and fresh leaves. It is written twice: as
statements the engine runs (each intermediate computed once, so the engine sees the DAG), and as one
expression over the leaves in the suite's language, which the float64 oracle evaluates and differentiates.
Values are computed while drawing, so a step is only added where its operands lie in the op's domain and
off its kinks, and where its value stays finite and moderate; a step that does not fit is skipped.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance import oracle
from conformance.draw.strategies import representable, shape_pool, shapes, values
from conformance.spec.forms import Argument, Form, catalog, fit, fits, in_domain, off_kinks, operand_shape, takes
from conformance.spec.literal import Script
from conformance.spec.specs import Given, Rule, SpecError

KINDS = ("grad", "const", "detached", "no_grad")
"""How a leaf is made; only "grad" leaves receive a gradient."""
KIND_NEEDS = {"detached": "detach", "no_grad": "no_grad"}
"""The capability a leaf kind needs; "grad" and "const" leaves are plain tensors (a functional engine has them)."""
SCAFFOLD = frozenset({"add", "mul", "sum", "tanh"})
"""Ops every program may call besides its steps: no_grad leaves, joining unused leaves, the checks' pairings."""
LEAF_SHAPES = Given(names=("a", "b", "c"), shapes="broadcastable", min_side=1, max_side=3, max_size=27)
"""The first leaves' shapes: the first one, two or three of a mutually broadcastable set."""
LEAF_NAMES = "abcdef"
LEAF_DOMAINS = ("nonzero", "positive")
"""A first leaf's values: none near 0, where many second derivatives vanish (sigmoid's, tanh's, sin's) and a wrong
one would pass; positive ones let a log, sqrt or pow take a leaf as it is."""
MAX_VALUE = 20.0
"""A step's values stay within this, so that later steps (an exp, a pow) stay finite."""
MAX_SIZE = 48
MAX_DIMS = 4
"""A step's size and dims: the oracle's forward-mode reference costs one VJP per output element."""
MAX_EXPRESSION = 4000
"""Characters of a value's expression: the oracle's expression repeats a value each time it is used."""
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
    """A leaf or a step's result while drawing: its expression over leaves, value, dtype, and the leaves and values
    (itself included) a gradient of it reaches."""

    name: str
    expression: str
    value: np.ndarray
    reaches: frozenset[str]
    dtype: str


@dataclass(frozen=True)
class Program:
    leaves: tuple[Leaf, ...]
    steps: tuple[tuple[str, str], ...]
    """(name, call over earlier names), in order; the last is the output."""
    expression: str
    """The output as one expression over the leaves: what the oracle evaluates."""
    used: frozenset[str]
    """Leaves the output depends on."""
    forms: tuple[str, ...] = ()
    """The op form of each drawn step (``op.form``); joins and casts are not forms."""

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


def _broadcast(shape: tuple[int, ...], other: tuple[int, ...]) -> bool:
    """Whether ``other`` broadcasts to ``shape``, so that joining it in keeps the output's shape."""
    try:
        return np.broadcast_shapes(shape, other) == shape
    except ValueError:
        return False


class _Builder:
    """A program while it is drawn: its leaves, values and steps."""

    def __init__(self, dtype: str, kinds: tuple[str, ...]) -> None:
        self.dtype, self.kinds = dtype, kinds
        self.leaves: list[Leaf] = []
        self.nodes: list[Value] = []
        self.steps: list[tuple[str, str]] = []
        self.forms: list[str] = []

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {leaf.name: leaf.array for leaf in self.leaves}

    def leaf(self, draw: st.DrawFn, shape: tuple[int, ...], domain: str, kind: str | None = None) -> Value | None:
        """A new leaf (its kind drawn unless given), or None when every leaf name is taken."""
        if len(self.leaves) == len(LEAF_NAMES):
            return None
        name = LEAF_NAMES[len(self.leaves)]
        array = draw(values(shape, self.dtype, domain), label=f"leaf {name}")
        self.leaves.append(Leaf(name, array, kind or draw(st.sampled_from(self.kinds))))
        self.nodes.append(Value(name, name, array, frozenset({name}), self.dtype))
        return self.nodes[-1]

    def step(self, draw: st.DrawFn, form: Form) -> None:
        """Bind ``form`` to an earlier value and draw the rest to fit; add it where its value is acceptable."""
        domain = form.given.domain_of(form.primary)
        graded = {leaf.name for leaf in self.leaves if leaf.kind == "grad"}
        fitting = [v for v in reversed(self.nodes) if in_domain(v.value, domain) and takes(form, v.value.shape)]
        if not fitting:
            return
        # Latest first, those a gradient flows to first of all: a step on a constant tests no derivative.
        candidates = sorted(fitting, key=lambda v: not v.reaches & graded)
        primary = candidates[draw(st.one_of(st.just(0), st.integers(0, len(candidates) - 1)))]
        arguments = fit(draw, form, primary.value.shape)
        if arguments is None:
            return
        leaves, nodes = len(self.leaves), len(self.nodes)
        operands = {form.primary: primary}
        for name in form.operands:
            operand = operands.get(name) or self._operand(draw, form, name, primary, arguments)
            if operand is None:
                break
            operands[name] = operand
        else:
            if self._add(form, arguments, operands):
                return
        del self.leaves[leaves:], self.nodes[nodes:]  # the step's fresh leaves go with it

    def _operand(
        self, draw: st.DrawFn, form: Form, name: str, primary: Value, arguments: tuple[Argument, ...]
    ) -> Value | None:
        """An earlier value of the primary's dtype that fits, or a fresh leaf (last: shrinking prefers values)."""
        domain, shape = form.given.domain_of(name), primary.value.shape
        fitting = [
            v
            for v in self.nodes
            if v.dtype == primary.dtype and in_domain(v.value, domain) and fits(form, shape, v.value.shape)
        ]
        pick = draw(st.integers(0, len(fitting)))
        if pick < len(fitting):
            return fitting[pick]
        fresh = operand_shape(draw, form, shape, arguments)
        if fresh is None or primary.dtype != self.dtype:
            return None
        return self.leaf(draw, fresh, domain)

    def _add(self, form: Form, arguments: tuple[Argument, ...], operands: dict[str, Value]) -> bool:
        """Append the step if it is defined, off its kinks, finite and moderate."""
        if not off_kinks(form, {n: o.value for n, o in operands.items()}):
            return False
        expression = form.call(arguments, {n: o.expression for n, o in operands.items()})
        dtype = arguments[1].value if form.op == "to_dtype" else operands[form.primary].dtype
        differentiable = () if form.op in oracle.DETACHING else form.wrt  # what a gradient flows through
        reaches = frozenset().union(*(operands[n].reaches for n in differentiable))
        if not self._append(form.call(arguments, {n: o.name for n, o in operands.items()}), expression, dtype, reaches):
            return False
        self.forms.append(form.id)
        return True

    def _append(
        self, call: str, expression: str, dtype: str, reaches: frozenset[str], limit: float = MAX_VALUE
    ) -> bool:
        """Append ``call`` (``expression`` for the oracle) if its value is finite, within ``limit`` (moderate, so
        later steps stay finite) and small enough; ``reaches``: the leaves and values its gradient reaches."""
        if len(expression) > MAX_EXPRESSION:
            return False
        try:
            with np.errstate(all="ignore"):  # overflow or a zero denominator: rejected below
                value = representable(oracle.value(expression, **self.arrays), dtype)
        except (ValueError, IndexError, TypeError):  # a form that does not fit its operands after all
            return False
        if not (value.size <= MAX_SIZE and value.ndim <= MAX_DIMS and np.all(np.isfinite(value))):
            return False
        if np.max(np.abs(value), initial=0.0) > limit:
            return False
        name = f"v{len(self.steps)}"
        self.steps.append((name, call))
        self.nodes.append(Value(name, expression, value, reaches | {name}, dtype))
        return True

    def program(self, draw: st.DrawFn) -> Program:
        """The program: the output cast back to the run's dtype, every leaf and value its gradient does not reach
        joined in (added or multiplied, summed first where its shape would widen the output's), and a tanh of the
        first leaf if no step was added."""
        out = self.nodes[-1]
        if self.steps and out.dtype != self.dtype:
            cast = f"to_dtype({{}}, {self.dtype!r})"
            self._append(cast.format(out.name), cast.format(out.expression), self.dtype, out.reaches, limit=math.inf)
        for node in reversed(self.nodes):
            out = self.nodes[-1]
            if self.steps and node.name not in out.reaches and node.dtype == out.dtype:
                op = draw(st.sampled_from(("add", "mul")))
                shaped = _broadcast(out.value.shape, node.value.shape)
                call = f"{op}({out.name}, {node.name if shaped else f'sum({node.name})'})"
                expression = f"{op}({out.expression}, {node.expression if shaped else f'sum({node.expression})'})"
                self._append(call, expression, self.dtype, out.reaches | node.reaches, limit=math.inf)
        if not self.steps:
            self._append("tanh(a)", "tanh(a)", self.dtype, frozenset({"a"}))
        out = self.nodes[-1]
        used = out.reaches & {leaf.name for leaf in self.leaves}
        return Program(tuple(self.leaves), tuple(self.steps), out.expression, used, tuple(self.forms))


def leaf_shapes(pool: int | None = None) -> st.SearchStrategy[tuple[list[tuple[int, ...]], tuple[int, ...]]]:
    """Shape sets for the first leaves; with ``pool``, from that many fixed ones (``--shape-pool``). Built outside
    any draw: a pool is itself drawn once, by a Hypothesis test of its own."""
    return shapes(LEAF_SHAPES) if pool is None else st.sampled_from(shape_pool(LEAF_SHAPES, pool))


@st.composite
def programs(
    draw: st.DrawFn,
    dtype: str,
    kinds: tuple[str, ...] = KINDS,
    forms: tuple[Form, ...] | None = None,
    shape_sets: st.SearchStrategy[Any] | None = None,
) -> Program:
    """A program over 1-3 first leaves (the first requires grad), more as steps need them, and 1-6 steps drawn
    from ``forms`` (default: every differentiable form of the table), the first leaves' shapes from ``shape_sets``
    (default: ``leaf_shapes()``)."""
    forms = catalog() if forms is None else forms
    first = draw(leaf_shapes() if shape_sets is None else shape_sets)[0][: draw(st.integers(1, 3))]
    builder = _Builder(dtype, kinds)
    for i, shape in enumerate(first):
        builder.leaf(draw, shape, draw(st.sampled_from(LEAF_DOMAINS)), "grad" if i == 0 else None)

    by_op: dict[str, list[Form]] = {}
    for form in forms:
        by_op.setdefault(form.op, []).append(form)

    @st.composite
    def step(draw: st.DrawFn) -> None:  # an op, then one of its forms: sum's five forms are no likelier than exp's one
        builder.step(draw, draw(st.sampled_from(by_op[draw(st.sampled_from(list(by_op)))])))

    draw(st.lists(step(), min_size=1, max_size=MAX_OPS))  # a list, so that shrinking deletes any one step
    return builder.program(draw)


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
def program_cases(
    draw: st.DrawFn,
    dtype: str,
    kinds: tuple[str, ...],
    check: str,
    forms: tuple[Form, ...],
    shape_sets: st.SearchStrategy[Any],
) -> ProgramCase:
    """A program, its upstream gradient and, but for ``backward``, a direction per leaf that gets a gradient."""
    program = draw(programs(dtype, kinds, forms, shape_sets))
    upstream = draw(cotangents(program, dtype), label="upstream")
    if check == "backward":
        return ProgramCase(dtype, program, upstream)
    directions = {n: draw(values(program.arrays[n].shape, dtype, "real"), label=f"v_{n}") for n in program.wrt}
    return ProgramCase(dtype, program, upstream, directions)


CHECKS = {"backward": ["stateful"], "gradgrad": ["higher_order"], "jvp": ["forward_mode"]}
"""What a program rule checks, and the capability each needs."""


def drawn_forms(check: str, ops: frozenset[str] | None = None, known: frozenset[str] = frozenset()) -> tuple[Form, ...]:
    """The forms a check's programs draw from: those whose ops the engine has (``ops``; None: all) and none of
    whose own rules are among the engine's ``known`` failures, as programs are about composition, not about
    one op an engine lacks or is known to get wrong (its own rule reports that); for ``gradgrad`` none that
    detaches, since finite differences of values are no reference for its second order."""
    return tuple(
        form
        for form in catalog()
        if (ops is None or form.ops <= ops)
        and not any(rule_id.startswith(f"ops.{form.id}.") for rule_id in known)
        and not (check == "gradgrad" and form.ops & oracle.DETACHING)
    )


class ProgramTemplate:
    """The ``program`` template: random programs, checked through ``backward`` (every leaf's .grad), ``gradgrad``
    (nested ``vjp`` against finite differences) or ``jvp`` (forward mode against the oracle's ``J t``)."""

    fields = {"check": True, "leaves": False}
    code_field = "check"

    def needs(self, rule: Rule) -> list[str]:
        return [*CHECKS[rule.args["check"]], *(KIND_NEEDS[k] for k in self._kinds(rule) if k in KIND_NEEDS)]

    def ops(self, rule: Rule) -> frozenset[str]:
        """Only the scaffold: the steps draw from the forms whose ops the engine has (``strategy``)."""
        return SCAFFOLD

    def validate(self, rule: Rule) -> None:
        if rule.args["check"] not in CHECKS:
            raise SpecError(rule.path, rule.id, "check", f"must be one of {sorted(CHECKS)}")
        kinds = rule.args.get("leaves", list(KINDS))
        if not (isinstance(kinds, list) and "grad" in kinds and set(kinds) <= set(KINDS)):
            raise SpecError(rule.path, rule.id, "leaves", f"must list kinds from {KINDS}, 'grad' among them")

    def _kinds(self, rule: Rule) -> tuple[str, ...]:
        return tuple(rule.args.get("leaves", KINDS))

    def strategy(self, rule: Rule, dtypes: list[str]) -> st.SearchStrategy[ProgramCase]:
        """Programs over the forms the run allows (``Given.ops``, ``Given.known``: ``drawn_forms``), their first
        leaves' shapes from the rule's shape pool when the run sets one."""
        g = rule.given
        kinds, check, sets = self._kinds(rule), rule.args["check"], leaf_shapes(g.shape_pool)
        forms = drawn_forms(check, g.ops, g.known)
        return st.sampled_from(dtypes).flatmap(lambda dtype: program_cases(dtype, kinds, check, forms, sets))

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
