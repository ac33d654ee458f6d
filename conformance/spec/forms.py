"""The op forms a random program's steps draw from: every differentiable form of the ops table, fitted to operands.

A form is one ``ops.<op>.<form>.vjp`` rule of ``specs/ops.toml`` (a form without one, ``differentiable = false``,
is not drawn; the in-place ops are not in the table). Its program, e.g. ``sum(x, dim=(0, -1), keepdim=True)``,
is split into operands (its ``given.names``) and literal arguments. A step fits the form to a drawn operand:
each literal the op reads against the operand's shape (a dim, dims, a permutation, a shape, an index key) is
redrawn with the literal's structure (how many dims, which are negative, which indices repeat, which slice
bounds are set), so ``sum(x, dim=(0, -1))`` becomes two distinct dims of whatever the operand has. A literal
with no such role (``min=0.5``, ``'float64'``, ``keepdim=True``) is kept as written, and the oracle rejects a
form that does not fit (it raises where the op would).
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.draw.strategies import away_from_kinks
from conformance.spec.specs import DOMAINS, Given, default_specs_dir, load_file
from conformance.vocabulary import OPS

Shape = tuple[int, ...]
RESULT = "RESULT"
"""A form's target shape (``broadcast_to(x, RESULT)``): always drawn."""

JUMPS = {"floor": "X - np.round(X)", "where": "C"}
"""Where a form's value jumps (the ops table keeps a single op's draws off its ``kinks``; a jump of a value
matters only downstream of it, where finite differences of a program would cross it): as ``kinks``."""


@dataclass(frozen=True)
class Argument:
    """One argument of a form's call: ``key`` is its position or keyword; it either holds operands (``template``,
    their names as ``{x}`` fields) or is a literal ``value``."""

    key: int | str
    value: Any = None
    template: str | None = None

    def render(self, names: Mapping[str, str]) -> str:
        text = self.template.format(**names) if self.template is not None else repr(self.value)
        return text if isinstance(self.key, int) else f"{self.key}={text}"


@dataclass(frozen=True)
class Form:
    """One argument form of one op, from the ops table."""

    op: str
    name: str
    arguments: tuple[Argument, ...]
    operands: tuple[str, ...]
    """The tensor inputs, in the table's order (``given.names``)."""
    wrt: tuple[str, ...]
    given: Given
    ops: frozenset[str]
    """The catalog ops its program calls (``where``'s calls ``gt``): an engine needs them all."""

    @property
    def id(self) -> str:
        return f"{self.op}.{self.name}"

    @property
    def primary(self) -> str:
        """The operand bound to an earlier value: the first that gets a gradient (``where``'s ``a``, not ``c``)."""
        return self.wrt[0]

    @property
    def kinks(self) -> tuple[str, ...]:
        """The form's kinks and jumps: oracle expressions over its operands whose zeros a step must avoid."""
        return tuple(k for k in (self.given.kinks, JUMPS.get(self.op)) if k is not None)

    def call(self, arguments: tuple[Argument, ...], names: Mapping[str, str]) -> str:
        """The call with drawn ``arguments``, each operand written as ``names`` says (a value's name or expression)."""
        return f"{self.op}({', '.join(a.render(names) for a in arguments)})"


def _argument(key: int | str, node: ast.expr, operands: tuple[str, ...]) -> Argument:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if names & set(operands):
        marked = _Mark(operands).visit(node)
        return Argument(key, template=ast.unparse(marked))
    if names == {RESULT}:
        return Argument(key, RESULT)
    return Argument(key, eval(compile(ast.Expression(node), "<form>", "eval"), {"__builtins__": {}, "slice": slice}))


class _Mark(ast.NodeTransformer):
    """Operand names become ``{name}`` format fields."""

    def __init__(self, operands: tuple[str, ...]) -> None:
        self.operands = operands

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(f"{{{node.id}}}", node.ctx) if node.id in self.operands else node


def parse(op: str, name: str, program: str, given: Given, wrt: tuple[str, ...]) -> Form:
    """A form from its program text: ``op(args...)`` over ``given.names``."""
    call = ast.parse(program.strip(), mode="eval").body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == op):
        raise ValueError(f"ops table form {op}.{name}: {program!r} is not a call of {op}, so no step can draw it")
    arguments = [_argument(i, node, given.names) for i, node in enumerate(call.args)]
    arguments += [_argument(str(k.arg), k.value, given.names) for k in call.keywords]
    called = {n.func.id for n in ast.walk(call) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return Form(op, name, tuple(arguments), given.names, wrt, given, frozenset(called & set(OPS)))


@functools.cache
def catalog() -> tuple[Form, ...]:
    """Every differentiable form of the ops table (its ``.vjp`` rules), in the table's order."""
    forms = []
    for rule in load_file(default_specs_dir() / "ops.toml"):
        _, op, name, kind = rule.id.split(".")
        if kind == "vjp" and not op.endswith("_"):
            wrt = tuple(rule.args.get("wrt", rule.given.names))
            forms.append(parse(op, name, rule.args["program"], rule.given, wrt))
    return tuple(forms)


def in_domain(value: np.ndarray, domain: str) -> bool:
    """Whether every element of ``value`` lies where a drawn input of ``domain`` could (its bound away from
    the singularity: positive and nonzero from their low end, unit from its high end; real is any value)."""
    low, high = DOMAINS[domain]
    if domain == "positive":
        return bool(np.min(value, initial=low) >= low)
    if domain == "nonzero":
        return bool(np.min(np.abs(value), initial=low) >= low)
    if domain == "unit":
        return bool(np.max(np.abs(value), initial=0.0) <= high)
    return True


def off_kinks(form: Form, operands: Mapping[str, np.ndarray]) -> bool:
    """Whether the operands keep the form's kinks and jumps at least ``KINK_MARGIN`` away."""
    if not form.kinks:
        return True
    try:
        result = np.broadcast_shapes(*(np.shape(v) for v in operands.values()))
    except ValueError:
        result = ()
    return all(away_from_kinks(k, operands, result) for k in form.kinks)


# -- the literal arguments, redrawn to fit the primary operand's shape ---------------------------------------


def _index(draw: st.DrawFn, literal: int, size: int) -> int | None:
    """An index into a dim of ``size``, negative where the literal is."""
    if size < 1:
        return None
    return draw(st.integers(-size, -1)) if literal < 0 else draw(st.integers(0, size - 1))


def _dim(draw: st.DrawFn, literal: Any, ndim: int) -> int | None:
    return _index(draw, literal, ndim) if isinstance(literal, int) else None


def _new_dim(draw: st.DrawFn, literal: Any, ndim: int) -> int | None:
    return _dim(draw, literal, ndim + 1)


def _dims(draw: st.DrawFn, literal: Any, ndim: int) -> Any:
    """An int or a tuple of distinct dims, as many as the literal has."""
    if isinstance(literal, int):
        return _dim(draw, literal, ndim)
    if len(literal) > ndim:
        return None
    axes = draw(st.permutations(range(ndim)))[: len(literal)]
    return tuple(a - ndim if d < 0 else a for a, d in zip(axes, literal))


def _permutation(draw: st.DrawFn, literal: Any, ndim: int) -> tuple[int, ...]:
    """A permutation of all the operand's dims, negative at the literal's negative positions."""
    axes = draw(st.permutations(range(ndim)))
    return tuple(a - ndim if i < len(literal) and literal[i] < 0 else a for i, a in enumerate(axes))


def _reshape(draw: st.DrawFn, literal: Any, shape: Shape) -> tuple[int, ...] | None:
    """A shape of as many dims as the literal with the operand's size, ``-1`` where the literal has it."""
    size = math.prod(shape)
    if not literal:
        return () if size == 1 else None
    if size == 0:
        return tuple(literal)
    out, left = [], size
    for i, n in enumerate(literal):
        if n == -1:
            out.append(-1)
        elif i == len(literal) - 1 and -1 not in literal:
            out.append(left)
        else:
            out.append(draw(st.sampled_from([d for d in range(1, left + 1) if left % d == 0])))
            left //= out[-1]
    return tuple(out)


def _target(draw: st.DrawFn, literal: Any, shape: Shape) -> tuple[int, ...]:
    """A shape ``shape`` broadcasts to (for ``RESULT``: a leading dim may be added and a size-1 dim grow), or,
    for a literal like ``(2, -1, -1)``, as many new leading sizes as it has, then ``-1`` for every dim."""
    if literal == RESULT:
        lead = draw(st.lists(st.integers(1, 3), max_size=1))
        return (*lead, *(draw(st.integers(1, 3)) if n == 1 else n for n in shape))
    new = sum(n != -1 for n in literal)
    return (*draw(st.lists(st.integers(1, 3), min_size=new, max_size=new)), *(-1 for _ in shape))


def _key_part(draw: st.DrawFn, literal: Any, size: int) -> Any:
    """One dim's part of an index key: an int, a list of ints that repeats where the literal does, or a slice
    with the literal's bounds set."""
    if isinstance(literal, int):
        return _index(draw, literal, size)
    if isinstance(literal, list):
        picks = {v: _index(draw, v, size) for v in dict.fromkeys(literal)}
        return None if None in picks.values() else [picks[v] for v in literal]
    start = None if literal.start is None else draw(st.integers(0, size))
    stop = None if literal.stop is None else draw(st.integers(0, size))
    return slice(start, stop, None if literal.step is None else draw(st.integers(1, 3)))


def _key(draw: st.DrawFn, literal: Any, shape: Shape) -> Any:
    parts = literal if isinstance(literal, tuple) else (literal,)
    if len(parts) > len(shape):
        return None
    drawn = tuple(_key_part(draw, p, n) for p, n in zip(parts, shape))
    return None if None in drawn else drawn if isinstance(literal, tuple) else drawn[0]


Drawer = Callable[[st.DrawFn, Any, Shape], Any]


def _on_ndim(fn: Callable[[st.DrawFn, Any, int], Any]) -> Drawer:
    return lambda draw, literal, shape: fn(draw, literal, len(shape))


_DIM, _DIMS, _NEW_DIM = _on_ndim(_dim), _on_ndim(_dims), _on_ndim(_new_dim)
ROLES: dict[str, dict[int | str, Drawer]] = {
    **{op: {1: _DIMS, "dim": _DIMS} for op in ("sum", "mean", "amax")},
    **{op: {1: _DIM, "dim": _DIM} for op in ("softmax", "log_softmax", "cat")},
    "stack": {1: _NEW_DIM, "dim": _NEW_DIM},
    "transpose": {1: _DIM, 2: _DIM},
    "squeeze": {1: _DIM},
    "unsqueeze": {1: _NEW_DIM},
    "permute": {1: _on_ndim(_permutation)},
    "reshape": {1: _reshape},
    "expand": {1: _target},
    "broadcast_to": {1: _target},
    "index": {1: _key},
}
"""How an op reads its literal arguments against its first operand's shape: the drawer that refits each one.
An op or argument not here keeps its literal as written."""


def fit(draw: st.DrawFn, form: Form, shape: Shape) -> tuple[Argument, ...] | None:
    """The form's arguments with each shape-dependent literal redrawn for an operand of ``shape``; None where
    the form cannot fit it (more dims named than it has, an index into an empty dim, a 0-d reshaped to (2,))."""
    roles = ROLES.get(form.op, {})
    out = []
    for argument in form.arguments:
        drawer = roles.get(argument.key)
        if argument.template is None and drawer is not None:
            value = drawer(draw, argument.value, shape)
            if value is None:
                return None
            argument = Argument(argument.key, value)
        out.append(argument)
    return tuple(out)


def dim_of(arguments: tuple[Argument, ...]) -> int:
    """The ``dim`` argument (by position or keyword; 0 by default)."""
    return next((a.value for a in arguments if a.key in (1, "dim") and a.template is None), 0)


def operand_shape(draw: st.DrawFn, form: Form, shape: Shape, arguments: tuple[Argument, ...]) -> Shape | None:
    """A shape for a fresh leaf as a further operand of ``form``, whose primary operand has ``shape``, as the
    form's ``given.shapes`` relates them; None where none fits (matmul of a 0-d)."""
    kind = form.given.shapes
    if kind == "matmul":
        if not shape:
            return None
        p = draw(st.integers(1, 3))
        options = [(shape[-1],), (shape[-1], p), (*shape[:-2][-1:], shape[-1], p)]
        return draw(st.sampled_from(options))
    if kind in ("broadcastable", "reducible"):
        kept = shape[len(shape) - draw(st.integers(0, len(shape))) :]  # trailing dims
        if kind == "reducible":  # what the primary sums to: each kept dim as is or 1
            return tuple(draw(st.sampled_from([n, 1])) for n in kept)
        dims = tuple(draw(st.sampled_from([n, 1] if n != 1 else [1, 2, 3])) for n in kept)
        lead = draw(st.lists(st.integers(1, 3), max_size=1)) if len(kept) == len(shape) else []
        return (*lead, *dims)
    if form.op == "cat" and shape:
        dim = dim_of(arguments) % len(shape)
        return (*shape[:dim], draw(st.integers(0, 3)), *shape[dim + 1 :])
    return shape


def takes(form: Form, shape: Shape) -> bool:
    """Whether a value of ``shape`` can be the form's primary operand: the table's ``min_dims`` and ``min_side``
    (what the form's literals need: a dim to name, an element to index; a matmul operand has a dim)."""
    given = form.given
    ndim = max(given.min_dims, 1 if given.shapes == "matmul" else 0)
    return len(shape) >= ndim and min(shape, default=given.min_side) >= given.min_side


def fits(form: Form, shape: Shape, other: Shape) -> bool:
    """Whether an earlier value of shape ``other`` may be a further operand next to a primary of ``shape``, as the
    form's ``given.shapes`` relates them."""
    kind = form.given.shapes
    if kind == "same":
        return other == shape
    try:
        if kind == "matmul":
            np.matmul(np.zeros(shape), np.zeros(other))  # raises where the shapes do not multiply
        elif kind == "reducible":
            return np.broadcast_shapes(shape, other) == shape
        elif kind == "broadcastable":
            np.broadcast_shapes(shape, other)
    except ValueError:
        return False
    return True
