"""The restricted Python that programs, scenario steps and oracle expressions are written in.

Specs hold code as data: a program is one expression over the op catalog, a scenario is a few
statements over the runtime vocabulary. Both are checked here when specs load, so a typo is a
spec error that names the rule and field, not a failure of the engine under test.

A spec file may come from someone else (``--specs``, a shared rule pack) and its repro scripts are
run by others, so the language is closed: names come from the vocabulary, the only attribute access
is ``np.NAME`` for the NumPy functions in ``NUMPY`` (no file, process or callback API), no name
anywhere starts with ``_``, and constant sizes are bounded (``MAX_ELEMENTS``). The scripts run with
``BUILTINS`` as their only builtins and ``SAFE_NP`` (the ``NUMPY`` names alone) as ``np``.
"""

from __future__ import annotations

import ast
import builtins
import math
import operator
import types
from collections.abc import Iterable
from functools import cache, lru_cache
from types import CodeType
from typing import Any

import numpy as np

# fmt: off
_ALLOWED = (
    ast.Module, ast.Expression, ast.Expr, ast.Assign, ast.AugAssign, ast.Name, ast.Constant, ast.Call,
    ast.keyword, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Lambda, ast.arguments, ast.arg,
    ast.With, ast.withitem, ast.If, ast.For, ast.FunctionDef, ast.Return, ast.Yield, ast.Pass,
    ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Dict, ast.Load, ast.Store, ast.operator,
    ast.unaryop, ast.cmpop, ast.boolop, ast.IfExp, ast.Attribute,
)

NUMPY = frozenset({
    # constants and dtypes
    "pi", "e", "inf", "nan", "newaxis",
    "float16", "float32", "float64", "bool_", "int8", "int16", "int32", "int64", "uint8", "complex64", "complex128",
    # arrays from values and shapes
    "array", "asarray", "copy", "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "eye", "linspace",
    # shapes and layout
    "shape", "size", "ndim", "reshape", "ravel", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze",
    "broadcast_to", "broadcast_shapes", "broadcast_arrays", "stack", "concatenate", "split", "tile", "repeat",
    "resize", "flip", "take", "take_along_axis", "where", "diag", "tril", "triu", "outer", "matmul", "dot",
    "tensordot", "einsum", "trace",
    # elementwise math
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "positive", "power", "sqrt", "square",
    "exp", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2",
    "sinh", "cosh", "tanh", "abs", "absolute", "sign", "floor", "ceil", "round", "clip", "maximum", "minimum",
    "fmax", "fmin", "reciprocal", "mod", "remainder", "floor_divide", "hypot", "heaviside", "logaddexp",
    # reductions and scans
    "sum", "prod", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "argsort", "sort",
    "cumsum", "cumprod", "all", "any", "count_nonzero",
    # comparisons and tests
    "equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "isnan", "isinf", "isfinite",
    "isclose", "allclose", "array_equal", "logical_and", "logical_or", "logical_not", "logical_xor",
})
"""The NumPy attributes the language admits (``np.NAME``): what the oracle expressions, the scenarios and the
generated scripts use, and their kin. Left out on purpose: file and process access (``load``, ``save``,
``fromfile``, ``memmap``, ``loadtxt``, ...), functions that call back into Python (``vectorize``,
``frompyfunc``, ``apply_along_axis``, ``fromfunction``, ``piecewise``), submodules (``random``, ``lib``,
``linalg``: the language has no attribute chains), global state (``seterr``, ``set_printoptions``) and
``empty``/``arange``, whose sizes a float or uninitialized memory can blow up."""
# fmt: on

BUILTINS = ("slice", "len", "list", "tuple", "range", "float", "int", "bool")
"""The Python builtins a program or scenario may call: the only ones its script runs with."""

MAX_ELEMENTS = 1 << 16
"""The bound on a constant in spec code and on a spec's shapes: an integer's magnitude, a constant
sequence's length, the product of a constant shape's dims. Larger is a spec error, not a run that
exhausts the machine's memory."""

SAFE_NP = types.SimpleNamespace(**{name: getattr(np, name) for name in sorted(NUMPY)})
"""``np`` as spec code sees it when it runs: the ``NUMPY`` names and nothing else."""

SAFE_BUILTINS: dict[str, Any] = {name: getattr(builtins, name) for name in BUILTINS}
"""A script's ``__builtins__``: no ``__import__``, ``open``, ``exec``, ``getattr`` or ``type``."""


class LanguageError(ValueError):
    """A program or scenario that uses something outside the language."""


def _bound_names(node: ast.AST) -> list[str]:
    """The identifiers ``node`` introduces (a binding, an argument, a keyword, an attribute)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.FunctionDef):
        return [node.name]
    if isinstance(node, ast.keyword):
        return [node.arg] if node.arg is not None else []
    if isinstance(node, ast.Attribute):
        return [node.attr]
    return []


def _check(tree: ast.AST, known: Iterable[str]) -> None:
    defined = set(known)
    for node in ast.walk(tree):
        bound = None
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound = node.id
        elif isinstance(node, ast.arg):
            bound = node.arg
        elif isinstance(node, ast.FunctionDef):
            bound = node.name
        if bound is not None and bound in known:  # e.g. a def named backward would hide the engine's
            raise LanguageError(f"line {node.lineno}: {bound!r} is a name of the vocabulary; choose another")
        if bound is not None:
            defined.add(bound)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if not isinstance(node, _ALLOWED):
            raise LanguageError(f"line {line}: {type(node).__name__} is not allowed")
        for name in _bound_names(node):
            if name.startswith("_"):
                raise LanguageError(f"line {line}: private or dunder name {name!r} is not allowed")
        if isinstance(node, ast.Attribute):
            if not (isinstance(node.value, ast.Name) and node.value.id == "np"):
                raise LanguageError(f"line {line}: attribute access is allowed on np only")
            if node.attr not in NUMPY:
                raise LanguageError(f"line {line}: np.{node.attr} is not in the language (language.NUMPY)")
        if isinstance(node, ast.keyword) and node.arg is None:
            raise LanguageError(f"line {line}: ** arguments are not allowed")
        if isinstance(node, ast.Constant):
            _check_constant(node.value, line)
        if isinstance(node, ast.Name) and node.id not in defined:
            raise LanguageError(f"line {line}: unknown name {node.id!r}")
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call, ast.Tuple, ast.List)):
            _check_value(_fold(node), line)


def _check_constant(value: Any, line: object) -> None:
    if not (value is None or value is Ellipsis or isinstance(value, (bool, int, float, str))):
        raise LanguageError(f"line {line}: a {type(value).__name__} constant is not allowed")
    if isinstance(value, str) and "__" in value:
        raise LanguageError(f"line {line}: a string with a dunder ('__') is not allowed")
    _check_value(value, line)


class _Unfoldable(Exception):
    """A subexpression whose value is known only when it runs."""


class _TooLarge(Exception):
    """A constant subexpression whose value would exceed ``MAX_ELEMENTS`` if computed."""


_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.LShift: operator.lshift,
    ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}  # fmt: skip
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}
_CASTS = {"int": int, "float": float, "bool": bool, "len": len, "tuple": tuple, "list": list}


def _fold(node: ast.AST) -> Any:
    """The value of a constant subexpression, computed only where it stays small; ``None`` when not constant."""
    try:
        return _value(node)
    except _Unfoldable:
        return None
    except _TooLarge as exc:
        raise LanguageError(f"line {getattr(node, 'lineno', '?')}: constant too large: {exc}") from None


def _value(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_value(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _apply(_UNARY[type(node.op)], _value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        _guard(node.op, left, right)
        return _apply(_BINARY[type(node.op)], left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CASTS and not node.keywords:
        return _apply(_CASTS[node.func.id], *(_value(a) for a in node.args))
    raise _Unfoldable


def _guard(op: ast.operator, left: Any, right: Any) -> None:
    """Refuse to compute what would be huge: a power, a shift or a repetition past the bound."""
    power = isinstance(op, ast.Pow) and isinstance(left, int) and isinstance(right, int)  # a float power is a float
    if power and abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > math.log2(MAX_ELEMENTS):
        raise _TooLarge(f"{left!r} ** {right!r}")
    if isinstance(op, ast.LShift) and isinstance(right, int) and right > math.log2(MAX_ELEMENTS):
        raise _TooLarge(f"... << {right!r}")
    if isinstance(op, ast.Mult):
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, tuple, list)) and isinstance(times, int) and len(seq) * times > MAX_ELEMENTS:
                raise _TooLarge(f"a sequence of {len(seq)} repeated {times} times")


def _apply(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (ArithmeticError, TypeError, ValueError) as exc:  # it fails when it runs, as the engine's code would
        raise _Unfoldable from exc


def _check_value(value: Any, line: object) -> None:
    """A constant within ``MAX_ELEMENTS``: each integer, each sequence's length, a shape's element count."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int) and abs(value) > MAX_ELEMENTS:
        raise LanguageError(f"line {line}: constant too large: {value!r} (at most {MAX_ELEMENTS} in magnitude)")
    if isinstance(value, (str, tuple, list)) and len(value) > MAX_ELEMENTS:
        raise LanguageError(f"line {line}: constant too large: a sequence of {len(value)} items")
    if isinstance(value, (tuple, list)):
        dims = [abs(v) for v in value if isinstance(v, int) and not isinstance(v, bool)]
        if len(dims) == len(value) and math.prod(dims) > MAX_ELEMENTS:
            raise LanguageError(f"line {line}: constant too large: a shape of {math.prod(dims)} elements")
        for item in value:
            _check_value(item, line)


@cache
def compile_expression(source: str, known: frozenset[str] | None = None) -> CodeType:
    """Parse and check one expression; ``known`` None means any name (checked elsewhere)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise LanguageError(f"syntax error: {exc.msg}") from exc
    if known is not None:
        _check(tree, known)
    return compile(tree, "<program>", "eval")


def check_script(source: str, known: Iterable[str]) -> None:
    """Raise ``LanguageError`` unless ``source`` is a valid scenario over ``known`` names."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise LanguageError(f"line {exc.lineno}: syntax error: {exc.msg}") from exc
    _check(tree, known)


def check_size(shape: Any) -> str | None:
    """Why ``shape`` (a spec's shape or nested values) is not a bounded shape, or None when it is."""
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        return f"must be a list of integers, got {shape!r}"
    if any(d < 0 for d in shape):
        return f"has a negative dim: {list(shape)}"
    if math.prod(shape) > MAX_ELEMENTS or len(shape) > 32:
        return f"is too large: {list(shape)} (at most {MAX_ELEMENTS} elements in at most 32 dims)"
    return None


@lru_cache(maxsize=4096)
def called_names(program: str) -> frozenset[str]:
    """The names a program calls: its ops (asked per case, so parsed once per program)."""
    tree = ast.parse(program.strip(), mode="eval")
    return frozenset(n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name))
