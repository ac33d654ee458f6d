"""A model of the stateful autograd rules, driven by a Hypothesis state machine.

Each step of ``AutogradModel`` is a line or two of script in the runtime vocabulary (the same
names a scenario uses), run against the adapter; the model then predicts, from the rules alone,
what every live tensor must look like: requires_grad, is_leaf, its version and its ``.grad``.
Gradient values come from the float64 oracle: the model keeps, for each tensor, the op that made
it and its arguments, so the program from the leaves to any backward root can be written out and
handed to ``oracle.vjp``. Where PyTorch's behaviour is implementation-defined (a second backward
through a freed node that saved nothing, an in-place write to an input that only some engines
save, where exactly a failing backward stops), the model allows either outcome and forgets the
``.grad`` values it can no longer predict, until they are cleared.

A failure carries the whole step log as a script a person can run with the engine.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import hypothesis
import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conformance import oracle
from conformance.draw.strategies import CASES_PER_EXAMPLE, representable
from conformance.execute import runtime
from conformance.execute.failures import CheckFailure, execute
from conformance.execute.runtime import ConformanceFailure
from conformance.spec.literal import literal
from conformance.spec.specs import Rule, SpecError

SHAPES = ((), (3,), (2, 1), (2, 3))
"""Leaf shapes: all broadcast to (2, 3), and keepdim reductions stay among such shapes."""
UNARY = ("exp", "tanh", "sin", "sigmoid")
BINARY = ("add", "sub", "mul")
MAX_TERMS = 48
"""An op whose program, written out as a tree, would exceed this many calls is skipped."""
MAX_VALUE = 8.0
"""An op whose result exceeds this magnitude is skipped: float32 gradients stay accurate."""
ARRAYS = st.sampled_from(SHAPES).flatmap(
    lambda s: hnp.arrays(np.float64, s, elements=st.floats(-2, 2, width=32, allow_subnormal=False))
)
LR = 0.1
MAX_MODES = 2
"""Grad-mode blocks nest this deep at most: deeper adds little but time spent under no_grad."""

SAVED = {"mul": "partner", "sin": "input", "exp": "output", "tanh": "output", "sigmoid": "output"}
"""What PyTorch saves for backward. mul saves each factor only when the other needs a gradient;
exp, tanh and sigmoid save their output, which an engine may instead do with their input.
Ops not listed save no tensor."""


def saved_inputs(op: str, requires_grad: list[bool]) -> tuple[list[int], list[int]]:
    """The argument positions PyTorch saves, and those any engine may save, for ``op``."""
    kind = SAVED.get(op)
    if kind == "input":
        return [0], [0]
    if kind == "partner":
        return [i for i in (0, 1) if requires_grad[1 - i]], [0, 1]
    return [], list(range(len(requires_grad))) if kind else []


class Freed(enum.Enum):
    NO = "no"
    MAYBE = "maybe"
    """After a backward that stopped part-way, or one restricted by inputs=: engines differ."""
    YES = "yes"


UNKNOWN = "unknown"
"""A .grad the rules do not pin down (after a backward that failed part-way)."""


@dataclass(eq=False)
class Storage:
    """Values shared by a tensor and its detach() aliases: one entry per version."""

    values: list[np.ndarray]

    @property
    def version(self) -> int:
        return len(self.values) - 1


@dataclass(eq=False)
class Node:
    """The recorded op of a tensor that requires grad."""

    op: str
    args: list[tuple[Var, int]]
    """Each argument with its storage version when the op ran."""
    kwargs: str
    must_save: list[tuple[Storage, int]]
    """Inputs PyTorch saves: writing to one in place must make backward fail."""
    may_save: list[tuple[Storage, int]]
    """Inputs some engine may save: writing to one in place may make backward fail."""
    saves: bool
    """Whether the node saves any tensor, so that a freed one must fail a second backward."""
    freed: Freed = Freed.NO

    def stale(self, saved: list[tuple[Storage, int]]) -> bool:
        return any(storage.version != version for storage, version in saved)


@dataclass(eq=False)
class Var:
    """One live tensor: its script name and what the rules predict for it."""

    name: str
    storage: Storage
    requires_grad: bool
    node: Node | None
    terms: int = 1
    grad: np.ndarray | str | None = None
    retains: bool = False

    def __repr__(self) -> str:
        return self.name


@dataclass
class Graph:
    """What a backward from one root reaches, written out for the oracle."""

    program: str
    env: dict[str, np.ndarray] = field(default_factory=dict)
    leaves: dict[str, Var] = field(default_factory=dict)
    """Oracle input name -> the requires-grad leaf it is a version of."""
    nodes: list[Node] = field(default_factory=list)
    retained: list[Var] = field(default_factory=list)


def _write(var: Var, version: int, cut: Var | None, graph: Graph) -> str:
    """``var`` as a program over its sources; ``cut`` is written as a free input."""
    if var is cut or var.node is None:
        key = var.name if var is cut else f"{var.name}_v{version}"
        graph.env[key] = var.storage.values[version]
        if var.node is None and var.requires_grad:
            graph.leaves[key] = var
        return key
    if var.node not in graph.nodes:
        graph.nodes.append(var.node)
        if var.retains:
            graph.retained.append(var)
    args = ", ".join(_write(a, v, cut, graph) for a, v in var.node.args)
    return f"{var.node.op}({args}{var.node.kwargs})"


def graph_of(root: Var, cut: Var | None = None) -> Graph:
    graph = Graph("")
    graph.program = _write(root, root.storage.version, cut, graph)
    return graph


class AutogradModel(RuleBasedStateMachine):
    """Steps over the stateful layer; invariants compare every live tensor with the model.

    Configure with ``machine_for``: the class attributes say which engine and dtypes.
    """

    adapter: ClassVar[Any] = None
    dtype: ClassVar[str] = "float32"
    device: ClassVar[str] = "cpu"
    tolerances: ClassVar[dict[str, tuple[float, float]]] = {}
    progress: ClassVar[Callable[[str | None], None]] = staticmethod(lambda script: None)
    """Told ``None`` when a sequence starts, then the script so far before each step runs."""

    tensors = Bundle("tensors")

    def __init__(self) -> None:
        super().__init__()
        self.vars: list[Var] = []
        self.modes: list[tuple[str, bool]] = []
        self.last_root: Var | None = None
        self.log: list[str] = []
        self.ns: dict[str, Any] = {}
        self.progress(None)

    # -- running script lines -------------------------------------------------------------------
    def has(self, *capabilities: str) -> bool:
        return all(c in self.adapter.capabilities for c in capabilities)

    def script(self) -> str:
        """The steps so far: a script in the runtime vocabulary, like a rule's."""
        return "".join(self.log)

    def fail(self, kind: str, detail: str) -> None:
        line = self.log[-1].strip().splitlines()[-1] if self.log else "?"
        raise CheckFailure(kind, detail, line, self.script(), f"{len(self.log)} steps", self.dtype)

    def run(self, code: str) -> None:
        """Run ``code`` in the step namespace and log it; a divergence fails with the whole script."""
        self.log.append(code)
        self.progress(self.script())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # engine warnings are not what the model checks
                execute(code, self.ns, "<model step>", dtype=self.dtype)
        except CheckFailure as exc:
            self.fail(exc.kind, exc.detail)

    def new(self, prefix: str, storage: Storage, requires_grad: bool, node: Node | None, terms: int = 1) -> Var:
        var = Var(f"{prefix}{len(self.vars)}", storage, requires_grad, node, terms)
        self.vars.append(var)
        return var

    @property
    def grad_enabled(self) -> bool:
        return self.modes[-1][1] if self.modes else True

    # -- steps ----------------------------------------------------------------------------------
    @initialize(target=tensors, array=ARRAYS)
    def start(self, array: np.ndarray) -> Var:
        """Make a first leaf that requires grad."""
        self.ns = runtime.bind(self.adapter, self.dtype, self.device, self.tolerances)
        return self.leaf(array, True)

    @rule(target=tensors, array=ARRAYS, requires_grad=st.booleans())
    def leaf(self, array: np.ndarray, requires_grad: bool) -> Var:
        var = self.new("x", Storage([representable(array, self.dtype)]), requires_grad, None)
        self.run(f"{var} = tensor({literal(var.storage.values[0])}, requires_grad={requires_grad})\n")
        return var

    def apply(self, op: str, args: list[Var], kwargs: str = "") -> Any:
        """``op`` on ``args``: the value from the oracle, a node when the result requires grad."""
        terms = 1 + sum(a.terms for a in args)
        names = [f"a{i}" for i in range(len(args))]
        result = oracle.value(
            f"{op}({', '.join(names)}{kwargs})", **{n: a.storage.values[-1] for n, a in zip(names, args)}
        )
        if terms > MAX_TERMS or not np.all(np.abs(result) <= MAX_VALUE):
            return multiple()
        requires_grad = self.grad_enabled and any(a.requires_grad for a in args)
        node = None
        if requires_grad:
            stamped = [(a.storage, a.storage.version) for a in args]
            must, may = saved_inputs(op, [a.requires_grad for a in args])
            node = Node(
                op,
                [(a, a.storage.version) for a in args],
                kwargs,
                must_save=[stamped[i] for i in must],
                may_save=[stamped[i] for i in may],
                saves=op in SAVED,
            )
        var = self.new("t", Storage([representable(result, self.dtype)]), requires_grad, node, terms if node else 1)
        self.run(f"{var} = {op}({', '.join(map(str, args))}{kwargs})\n")
        return var

    @rule(target=tensors, op=st.sampled_from(UNARY), a=tensors)
    def unary(self, op: str, a: Var) -> Any:
        return self.apply(op, [a])

    @rule(target=tensors, op=st.sampled_from(BINARY), a=tensors, b=tensors)
    def binary(self, op: str, a: Var, b: Var) -> Any:
        return self.apply(op, [a, b])

    @rule(target=tensors, op=st.sampled_from(("sum", "mean")), a=tensors, keepdim=st.booleans())
    def reduce(self, op: str, a: Var, keepdim: bool) -> Any:
        keep = keepdim and bool(a.storage.values[0].ndim)
        return self.apply(op, [a], ", dim=-1, keepdim=True" if keep else "")

    @precondition(lambda self: self.has("detach"))
    @rule(target=tensors, a=tensors)
    def detach(self, a: Var) -> Var:
        var = self.new("d", a.storage, False, None)
        self.run(f"{var} = detach({a})\n")
        return var

    @precondition(lambda self: self.has("no_grad"))
    @rule(action=st.sampled_from(("no_grad", "enable_grad", "exit")))
    def grad_mode(self, action: str) -> None:
        """Enter a no_grad or enable_grad block (they nest), or leave the innermost one."""
        if action == "exit" or len(self.modes) == MAX_MODES:
            if self.modes:
                self.run(f"{self.modes.pop()[0]}.__exit__(None, None, None)\n")
            return
        if action == "enable_grad" and not self.has("enable_grad"):
            action = "no_grad"
        name = f"mode{len(self.modes)}"
        self.run(f"{name} = {action}()\n{name}.__enter__()\n")
        self.modes.append((name, action == "enable_grad"))  # only once entered: teardown exits it

    @precondition(lambda self: self.has("retain_grad"))
    @rule(a=tensors)
    def retain_grad(self, a: Var) -> None:
        if not a.requires_grad:
            self.run(f"with raises_one_of(['retain_grad_without_grad']):\n    retain_grad({a})\n")
            return
        self.run(f"retain_grad({a})\n")
        a.retains = a.retains or a.node is not None

    @precondition(lambda self: any(v.requires_grad for v in self.vars))
    @rule(
        target=tensors,
        data=st.data(),
        op=st.sampled_from(("sum", "mean")),
        retain_graph=st.sampled_from((None, True, False)),
        create_graph=st.booleans(),
        inputs=st.lists(tensors, max_size=2),
    )
    def backward(
        self, data: st.DataObject, op: str, retain_graph: bool | None, create_graph: bool, inputs: list[Var]
    ) -> Any:
        """``backward(op(a))`` on a new root from a tensor that requires grad (the root does not
        under no_grad), optionally with ``inputs=`` and ``create_graph``."""
        a = data.draw(st.sampled_from([v for v in self.vars if v.requires_grad]), label="a")
        root = self.apply(op, [a])
        if not isinstance(root, Var):
            return root
        create_graph = create_graph and self.has("higher_order", "backward_create_graph")
        retain_graph = retain_graph if self.has("retain_graph") else None
        inputs = list({id(v): v for v in inputs if v.requires_grad and v.node is None}.values())
        inputs = inputs if self.has("backward_inputs") else []
        self.backward_from(root, retain_graph, create_graph, inputs)
        return root

    @precondition(lambda self: self.last_root is not None)
    @rule()
    def backward_again(self) -> None:
        """A second backward from the last root: through a freed graph, unless it was retained."""
        assert self.last_root is not None
        self.backward_from(self.last_root, None, False, [])

    def backward_from(self, root: Var, retain_graph: bool | None, create_graph: bool, inputs: list[Var]) -> None:
        if not root.requires_grad:
            self.run(f"with raises_one_of(['no_grad_fn']):\n    backward({root})\n")
            return
        self.last_root = root
        graph = graph_of(root)
        versions = self.has("version_counter")
        hard = [
            n for n in graph.nodes if (n.freed is Freed.YES and n.saves) or (versions and n.stale(n.must_save))
        ]  # fmt: skip
        soft = [n for n in graph.nodes if n.freed is not Freed.NO or n.stale(n.may_save)]
        if soft or graph.retained:
            inputs = []  # inputs= meets implementation-defined corners there: keep it to clean graphs
        retain = create_graph if retain_graph is None else retain_graph
        call = f"backward({root}"
        call += "" if retain_graph is None else f", retain_graph={retain_graph}"
        call += ", create_graph=True" if create_graph else ""
        call += f", inputs=[{', '.join(map(str, inputs))}])" if inputs else ")"
        if not soft:
            self.run(call + "\n")
            raised = False
        else:
            meanings = ["graph_freed"] if any(n.freed is not Freed.NO for n in soft) else []
            meanings += ["modified_inplace"] if any(n.stale(n.may_save) for n in soft) else []
            self.run(f"with raises_one_of({meanings}, required={bool(hard)}) as error:\n    {call}\n")
            raised = bool(self.ns["error"])
        if raised:
            # Where it stopped is the engine's business, so what it reached is unknown; but when the
            # first node below the root must fail, only a retained root can have received its grad.
            reached = [*graph.leaves.values(), *graph.retained]
            top = root.node.args[0][0] if root.node else root
            if top.node in hard and not top.retains:
                reached = [var for var in reached if var is root]
            for var in reached:
                var.grad = UNKNOWN
            freed = Freed.MAYBE
        else:
            self.accumulate(root, graph, inputs)
            freed = Freed.YES if self.has("graph_freeing") and not inputs else Freed.MAYBE
        if not retain:
            for node in graph.nodes:
                node.freed = Freed.YES if node.freed is Freed.YES else freed

    def accumulate(self, root: Var, graph: Graph, inputs: list[Var]) -> None:
        """Add the oracle's gradient to every leaf (or listed input) and retained tensor reached."""
        grads = oracle.vjp(graph.program, None, **graph.env)
        contributions: dict[int, tuple[Var, np.ndarray]] = {}
        for key, var in graph.leaves.items():
            if inputs and var not in inputs:
                continue
            previous = contributions.get(id(var), (var, 0.0))[1]
            contributions[id(var)] = (var, previous + grads[key])
        for var in graph.retained:
            cut = graph_of(root, cut=var)
            contributions[id(var)] = (var, oracle.vjp(cut.program, None, **cut.env)[var.name])
        for var, g in contributions.values():
            if var.grad is not UNKNOWN:
                var.grad = g if var.grad is None else var.grad + g

    def with_grad(self) -> list[Var]:
        return [v for v in self.vars if isinstance(v.grad, np.ndarray)]

    @precondition(lambda self: self.has("inplace") and self.with_grad())
    @rule(data=st.data())
    def zero_grad(self, data: st.DataObject) -> None:
        var = data.draw(st.sampled_from(self.with_grad()), label="tensor")
        self.run(f"zero_(grad_of({var}))\n")
        var.grad = np.zeros_like(var.grad)

    @precondition(lambda self: self.has("grad_assign") and any(v.grad is not None for v in self.vars))
    @rule(data=st.data())
    def clear_grad(self, data: st.DataObject) -> None:
        var = data.draw(st.sampled_from([v for v in self.vars if v.grad is not None]), label="tensor")
        self.run(f"set_grad({var}, None)\n")
        var.grad = None

    @precondition(lambda self: self.has("inplace", "no_grad") and any(v.node is None for v in self.with_grad()))
    @rule(data=st.data())
    def sgd_step(self, data: st.DataObject) -> None:
        """The optimizer step: an in-place update of a leaf under no_grad (it stays a leaf)."""
        var = data.draw(st.sampled_from([v for v in self.with_grad() if v.node is None]), label="leaf")
        self.run(f"with no_grad():\n    sub_({var}, mul(grad_of({var}), tensor({LR})))\n")
        var.storage.values.append(representable(var.storage.values[-1] - LR * var.grad, self.dtype))

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def tensors_match_the_model(self) -> None:
        if not self.ns:
            return
        adapter, checks = self.adapter, runtime.Checks(self.adapter, self.dtype, self.tolerances)
        if self.has("no_grad"):
            with self.verifying(f"expect_equal(is_grad_enabled(), {self.grad_enabled})"):
                checks.expect_equal(adapter.is_grad_enabled(), self.grad_enabled)
        for var in self.vars:
            t = self.ns[var.name]
            facts = {"requires_grad": var.requires_grad, "is_leaf": var.node is None}
            if self.has("version_counter"):
                facts["version"] = var.storage.version
            for name, want in facts.items():
                with self.verifying(f"expect_equal({name}({var}), {want})"):
                    checks.expect_equal(getattr(adapter, name)(t), want)
            if var.grad is None:
                with self.verifying(f"expect_no_grad({var})"):
                    checks.expect_no_grad(t)
            elif isinstance(var.grad, np.ndarray):
                with self.verifying(f"expect_grad({var}, {literal(var.grad)})"):
                    checks.expect_grad(t, var.grad)

    @contextmanager
    def verifying(self, line: str) -> Iterator[None]:
        """One check of an invariant; on failure ``line``, its runnable form, ends the script."""
        try:
            yield
        except ConformanceFailure as exc:
            self.log.append(line + "\n")
            self.fail(exc.kind, exc.detail)
        except Exception as exc:  # the engine raised while being inspected
            self.log.append(line + "\n")
            self.fail("unexpected_error", f"{type(exc).__name__}: {exc}")

    def teardown(self) -> None:
        """Leave grad mode as it was, even after a failure."""
        while self.modes:
            self.ns[self.modes.pop()[0]].__exit__(None, None, None)


class ModelTemplate:
    """The ``model`` template: random step sequences of ``AutogradModel``, ``length`` steps each."""

    fields = {"length": False}
    code_field = "length"

    def needs(self, rule: Rule) -> list[str]:
        return ["stateful"]

    def ops(self, rule: Rule) -> frozenset[str]:
        return frozenset({*UNARY, *BINARY, "sum", "mean", "mul", "sub_", "zero_"})

    def validate(self, rule: Rule) -> None:
        length = rule.args.get("length", 50)
        if not (isinstance(length, int) and 1 <= length <= 500):
            raise SpecError(rule.path, rule.id, "length", "must be a whole number of steps from 1 to 500")

    def test(
        self,
        adapter: Any,
        rule: Rule,
        dtype: str,
        device: str,
        seed: int,
        overrides: settings | None,
        progress: Callable[[str | None], None],
    ) -> Callable[[], None]:
        """The Hypothesis test that runs the state machine against ``adapter``; it raises ``CheckFailure``."""
        attributes = {
            "adapter": adapter,
            "dtype": dtype,
            "device": device,
            "tolerances": dict(rule.tolerances),
            "progress": staticmethod(progress),
        }
        # An explicit seed, like every rule's: the sequences drawn must not depend on incidental state.
        machine = hypothesis.seed(seed)(type("AutogradModel", (AutogradModel,), attributes))
        loaded = overrides or settings.default
        # A sequence is one case: as many as the batched rules check (``CASES_PER_EXAMPLE`` per example).
        base = settings(
            loaded,
            max_examples=loaded.max_examples * CASES_PER_EXAMPLE,
            stateful_step_count=rule.args.get("length", 50),
        )

        def test() -> None:
            run_state_machine_as_test(machine, settings=base)

        return test
