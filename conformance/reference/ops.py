"""The op catalog as a declarative VJP table, in the style of HIPS autograd.

Each op is one ``Op`` entry: a forward on NumPy arrays and, per positional argument, a VJP
``vjp(g, ans, *args, **kwargs)``. VJPs are written with the ops of this very table, so a VJP that runs
under ``create_graph`` records a graph of its own, and higher derivatives come for free. ``saves``
names what each VJP reads (``ans`` is the output); the engine saves exactly that, checks it against
the version counter and frees it after backward. What a VJP does not save reaches it as a ``Meta``
(shape, dtype, device), so reading a value it did not declare fails loudly.

Conventions at kinks are PyTorch's: relu'(0) = 0, abs'(0) = 0, clamp passes the gradient at its
bounds, maximum/minimum give each side half at a tie, amax splits a tie evenly, d/da a**0 = 0 and
d/db a**b = 0 where a == 0 and b >= 0.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from conformance.reference.engine import Meta, Op, Tensor, inplace, is_grad_enabled
from conformance.reference.errors import (
    IncompatibleShapesError,
    InplaceBroadcastError,
    InvalidExpandError,
    LeafViewInplaceError,
)

Shape = tuple[int, ...]

# -- NumPy side: PyTorch's broadcasting errors and dtype promotion ------------------------------


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy's broadcasting, raising PyTorch's error."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        ndim = builtins.max(len(s) for s in shapes)
        padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
        for dim in range(ndim):
            sizes = [p[dim] for p in padded if p[dim] != 1]
            if any(n != sizes[0] for n in sizes):
                other = next(n for n in sizes if n != sizes[0])
                raise IncompatibleShapesError(
                    f"The size of tensor a ({sizes[0]}) must match the size of tensor b ({other}) "
                    f"at non-singleton dimension {dim}"
                ) from None
        raise


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
_NUMBER_DTYPES = {
    bool: np.dtype(bool),
    int: np.dtype(np.int64),
    float: np.dtype(np.float32),
    complex: np.dtype(np.complex64),
}


def promote(*operands: Any) -> list[Any]:
    """Cast array operands to PyTorch's result dtype.

    Dimensioned arrays outrank 0-d arrays, which outrank Python numbers; a lower rank decides only
    when it holds a higher category (bool < int < float < complex). A Python float counts as float32.
    """
    ranks = (
        [x.dtype for x in operands if isinstance(x, np.ndarray) and x.ndim],
        [x.dtype for x in operands if isinstance(x, np.ndarray) and not x.ndim],
        [_NUMBER_DTYPES[type(x)] for x in operands if type(x) in _NUMBER_DTYPES],
    )
    result = None
    for dtypes in ranks:
        if not dtypes:
            continue
        top = builtins.max(_CATEGORY[d.kind] for d in dtypes)
        if result is None or top > _CATEGORY[result.kind]:  # within a rank the top category decides alone
            result = np.result_type(*(d for d in dtypes if _CATEGORY[d.kind] == top))
    return [x.astype(result) if isinstance(x, np.ndarray) and x.dtype != result else x for x in operands]


def elementwise(f: Any) -> Any:
    """A NumPy function of broadcastable operands, with PyTorch's shape error and dtype promotion."""

    def forward(*operands: Any) -> np.ndarray:
        broadcast_shapes(*(np.shape(x) for x in operands))
        return f(*promote(*operands))

    return forward


def _divide(total: np.ndarray, count: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.divide(total, count, dtype=total.dtype)


def _axes(ndim: int, dim: Any) -> tuple[int, ...]:
    """Reduced dims, non-negative. A 0-d tensor reduces over dim 0 (or -1) as over nothing."""
    if dim is None or ndim == 0:
        return tuple(range(ndim))
    return normalize_axis_tuple(dim, ndim)


def _expanded(have: Shape, want: Any) -> Shape:
    """PyTorch's expand: new dims lead, -1 keeps a size, only size-1 dims grow."""
    want = tuple(want)
    lead = len(want) - len(have)
    if lead < 0:
        raise InvalidExpandError(
            f"the number of sizes provided ({len(want)}) must be >= the tensor's dims ({len(have)})"
        )
    out = list(want)
    for i, n in enumerate(have):
        target = want[lead + i]
        if target == -1:
            out[lead + i] = n
        elif n not in (1, target):
            raise InvalidExpandError(
                f"The expanded size of the tensor ({target}) must match the existing size ({n}) at non-singleton "
                f"dimension {lead + i}. Target sizes: {list(want)}. Tensor sizes: {list(have)}"
            )
    if any(n < 0 for n in out):
        raise InvalidExpandError(f"invalid expand target {list(want)} for a tensor of size {list(have)}")
    return tuple(out)


def _sum_to_size(a: np.ndarray, shape: Any) -> np.ndarray:
    shape = tuple(shape)
    try:
        expandable = np.broadcast_shapes(shape, a.shape) == a.shape
    except ValueError:
        expandable = False
    if not expandable:
        raise InvalidExpandError(f"size {list(shape)} is not expandable to size {list(a.shape)}")
    a = a.sum(axis=tuple(range(a.ndim - len(shape))))
    return a.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1), keepdims=True)


def _squeeze(a: np.ndarray, dim: Any = None) -> np.ndarray:
    return np.squeeze(a, axis=tuple(d for d in _axes(a.ndim, dim) if a.shape[d] == 1))


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.matmul(*promote(a, b))
    except ValueError:
        raise IncompatibleShapesError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied") from None


def _softmax(a: np.ndarray, dim: int) -> np.ndarray:
    axes = _axes(a.ndim, dim)
    e = np.exp(a - np.max(a, axis=axes, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axes, keepdims=True)


def _log_softmax(a: np.ndarray, dim: int) -> np.ndarray:
    axes = _axes(a.ndim, dim)
    shifted = a - np.max(a, axis=axes, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))


def _clamp(a: np.ndarray, min: Any = None, max: Any = None) -> np.ndarray:
    a = a if min is None else np.maximum(a, min)
    return a if max is None else np.minimum(a, max)


def _where(c: np.ndarray, a: Any, b: Any) -> np.ndarray:
    broadcast_shapes(np.shape(c), np.shape(a), np.shape(b))
    return np.where(c, *promote(a, b))


def _copy(a: np.ndarray, b: Any) -> np.ndarray:
    if broadcast_shapes(a.shape, np.shape(b)) != a.shape:
        raise InplaceBroadcastError(f"output with shape {list(a.shape)} doesn't match the broadcast shape")
    return np.broadcast_to(b, a.shape).astype(a.dtype)


def _index_put(a: np.ndarray, key: Any, value: Any) -> np.ndarray:
    out = a.copy()
    out[key] = value
    return out


def _index_add(a: np.ndarray, key: Any, value: np.ndarray) -> np.ndarray:
    out = a.copy()
    np.add.at(out, key, value)
    return out


def _view_put(base: np.ndarray, value: np.ndarray, steps: Any) -> np.ndarray:
    out = base.copy(order="K")  # same layout, so the steps give a view again
    target = out
    for op, args, kwargs in steps:
        target = op.forward(target, *args, **kwargs)
    target[...] = value
    return out


def _key(key: Any) -> Any:
    """A NumPy index from slices, ints, lists and integer tensors."""
    if isinstance(key, tuple):
        return tuple(_key(k) for k in key)
    if isinstance(key, Tensor):
        return key.array
    if isinstance(key, list):
        return np.asarray(key, dtype=np.int64) if not key or not isinstance(key[0], bool) else np.asarray(key)
    return key


def _as_view_key(key: Any) -> Any:
    """``key`` with a trailing Ellipsis, so that indexing every dim by an int gives a 0-d view, not a scalar."""
    parts = key if isinstance(key, tuple) else (key,)
    return key if any(k is Ellipsis for k in parts) else (*parts, Ellipsis)


def _is_basic(key: Any) -> bool:
    """Whether ``key`` gives a view (slices, ints, None, ...) rather than a copy."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, (int, slice, type(None), type(Ellipsis))) for k in parts)


# -- VJP helpers, written with the table's own ops ----------------------------------------------


def zeros(like: Tensor | Meta) -> Tensor:
    return Tensor(np.zeros(like.shape, like.dtype), device=like.device)


def constant(array: Any, like: Tensor) -> Tensor:
    """A value that carries no gradient (a mask, a weight), on ``like``'s device."""
    return Tensor(np.asarray(array), device=like.device)


def unbroadcast(g: Tensor, shape: Shape) -> Tensor:
    """``g`` summed back to ``shape``: the gradient of broadcasting."""
    return g if g.shape == tuple(shape) else sum_to_size(g, shape)


def restore_reduced(g: Tensor, shape: Shape, dim: Any, keepdim: bool) -> Tensor:
    """``g`` with the dims a reduction removed put back as size 1, so it broadcasts to ``shape``."""
    if keepdim:
        return g
    axes = _axes(len(shape), dim)
    return reshape(g, tuple(1 if i in axes else n for i, n in enumerate(shape)))


def _value(x: Any) -> Any:
    return x.array if isinstance(x, Tensor) else x


def _share(g: Tensor, wins: np.ndarray, ties: np.ndarray) -> Tensor:
    """All of ``g`` where this side wins, half at a tie (maximum/minimum's convention)."""
    return where(constant(wins, g), g, where(constant(ties, g), g * 0.5, 0.0))


def _pow_base(g: Tensor, ans: Any, a: Tensor, b: Any) -> Tensor:
    """d/da a**b = b * a**(b-1), taken as 0 where b == 0 (so it is finite at a == 0)."""
    if isinstance(b, Tensor):
        return unbroadcast(where(constant(b.array == 0, g), 0.0, g * b * a ** (b - 1)), a.shape)
    return zeros(g) if b == 0 else g * b * a ** (b - 1)


def _pow_exponent(g: Tensor, ans: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """d/db a**b = a**b * log(a), taken as 0 where a == 0 and b >= 0."""
    at_zero = constant((a.array == 0) & (b.array >= 0), g)
    return unbroadcast(where(at_zero, 0.0, g * ans * log(a)), b.shape)


def _amax_vjp(g: Tensor, ans: Tensor, a: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """The gradient goes to the maxima, split evenly between ties."""
    axes = _axes(a.ndim, dim)
    hit = a.array == (ans.array if keepdim else np.expand_dims(ans.array, axes))
    weights = (hit / hit.sum(axis=axes, keepdims=True)).astype(g.dtype)
    return broadcast_to(restore_reduced(g, a.shape, dim, keepdim), a.shape) * constant(weights, g)


def _as_matrices(g: Tensor, a: Any, b: Any) -> Tensor:
    """matmul treats a 1-d operand as a matrix and drops that dim from its result: put it back in ``g``."""
    g = unsqueeze(g, -1) if b.ndim == 1 else g
    return unsqueeze(g, -2) if a.ndim == 1 else g


def _matmul_vjp_a(g: Tensor, ans: Any, a: Any, b: Tensor) -> Tensor:
    b2 = unsqueeze(b, -1) if b.ndim == 1 else b
    ga = _as_matrices(g, a, b) @ transpose(b2, -1, -2)
    return reshape(unbroadcast(ga, (1, *a.shape) if a.ndim == 1 else a.shape), a.shape)


def _matmul_vjp_b(g: Tensor, ans: Any, a: Tensor, b: Any) -> Tensor:
    a2 = unsqueeze(a, 0) if a.ndim == 1 else a
    gb = transpose(a2, -1, -2) @ _as_matrices(g, a, b)
    return reshape(unbroadcast(gb, (*b.shape, 1) if b.ndim == 1 else b.shape), b.shape)


def _piece(g: Tensor, parts: Any, i: int, dim: int) -> Tensor:
    """The slice of ``g`` that ``cat`` took from its ``i``-th input."""
    d = dim % g.ndim
    start = builtins.sum(p.shape[d] for p in parts[:i])
    return index(g, (slice(None),) * d + (slice(start, start + parts[i].shape[d]),))


def _replay(g: Tensor, steps: Any) -> Tensor:
    for op, args, kwargs in steps:
        g = op(g, *args, **kwargs)
    return g


# -- the table ----------------------------------------------------------------------------------

add = Op(
    "add",
    elementwise(np.add),
    (lambda g, ans, a, b: unbroadcast(g, a.shape), lambda g, ans, a, b: unbroadcast(g, b.shape)),
)
sub = Op(
    "sub",
    elementwise(np.subtract),
    (lambda g, ans, a, b: unbroadcast(g, a.shape), lambda g, ans, a, b: unbroadcast(-g, b.shape)),
)
mul = Op(
    "mul",
    elementwise(np.multiply),
    (lambda g, ans, a, b: unbroadcast(g * b, a.shape), lambda g, ans, a, b: unbroadcast(g * a, b.shape)),
    saves=("b", "a"),
)
div = Op(
    "div",
    elementwise(np.divide),
    (lambda g, ans, a, b: unbroadcast(g / b, a.shape), lambda g, ans, a, b: unbroadcast(-g * a / (b * b), b.shape)),
    saves=("b", "a b"),
)
neg = Op("neg", np.negative, (lambda g, ans, a: -g,))
_pow = Op("pow", elementwise(np.power), (_pow_base, _pow_exponent), saves=("a b", "a b ans"))
exp = Op("exp", np.exp, (lambda g, ans, a: g * ans,), saves=("ans",))
log = Op("log", np.log, (lambda g, ans, a: g / a,), saves=("a",))
sqrt = Op("sqrt", np.sqrt, (lambda g, ans, a: g / (2 * ans),), saves=("ans",))
sin = Op("sin", np.sin, (lambda g, ans, a: g * cos(a),), saves=("a",))
cos = Op("cos", np.cos, (lambda g, ans, a: -g * sin(a),), saves=("a",))
tanh = Op("tanh", np.tanh, (lambda g, ans, a: g * (1 - ans * ans),), saves=("ans",))
sigmoid = Op("sigmoid", lambda a: 1 / (1 + np.exp(-a)), (lambda g, ans, a: g * ans * (1 - ans),), saves=("ans",))
relu = Op(
    "relu", lambda a: np.maximum(a, 0), (lambda g, ans, a: where(constant(ans.array > 0, g), g, 0.0),), saves=("ans",)
)
sign = Op("sign", np.sign, (lambda g, ans, a: zeros(g),))
abs = Op("abs", np.abs, (lambda g, ans, a: g * sign(a),), saves=("a",))
maximum = Op(
    "maximum",
    elementwise(np.maximum),
    (
        lambda g, ans, a, b: unbroadcast(_share(g, _value(a) > _value(b), _value(a) == _value(b)), a.shape),
        lambda g, ans, a, b: unbroadcast(_share(g, _value(b) > _value(a), _value(a) == _value(b)), b.shape),
    ),
    saves=("a b", "a b"),
)
minimum = Op(
    "minimum",
    elementwise(np.minimum),
    (
        lambda g, ans, a, b: unbroadcast(_share(g, _value(a) < _value(b), _value(a) == _value(b)), a.shape),
        lambda g, ans, a, b: unbroadcast(_share(g, _value(b) < _value(a), _value(a) == _value(b)), b.shape),
    ),
    saves=("a b", "a b"),
)
where = Op(
    "where",
    _where,
    (
        None,
        lambda g, ans, c, a, b: unbroadcast(where(c, g, 0.0), a.shape),
        lambda g, ans, c, a, b: unbroadcast(where(c, 0.0, g), b.shape),
    ),
    saves=("", "c", "c"),
)
gt = Op("gt", elementwise(np.greater))
clamp = Op(
    "clamp",
    _clamp,
    (
        lambda g, ans, a, min=None, max=None: where(
            constant((min is None or a.array >= min) & (max is None or a.array <= max), g), g, 0.0
        ),
    ),
    saves=("a",),
)
sum = Op(
    "sum",
    lambda a, dim=None, keepdim=False: np.sum(a, axis=_axes(a.ndim, dim), keepdims=keepdim),
    (lambda g, ans, a, dim=None, keepdim=False: broadcast_to(restore_reduced(g, a.shape, dim, keepdim), a.shape),),
)
mean = Op(
    "mean",
    # sum / count rather than np.mean: the mean of nothing is NaN as in torch, without NumPy's warning
    lambda a, dim=None, keepdim=False: _divide(
        np.sum(a, axis=_axes(a.ndim, dim), keepdims=keepdim), math.prod(a.shape[d] for d in _axes(a.ndim, dim))
    ),
    (
        lambda g, ans, a, dim=None, keepdim=False: (
            broadcast_to(restore_reduced(g, a.shape, dim, keepdim), a.shape)
            / math.prod(a.shape[d] for d in _axes(a.ndim, dim))
        ),
    ),
)
amax = Op(
    "amax",
    lambda a, dim=None, keepdim=False: np.amax(a, axis=_axes(a.ndim, dim), keepdims=keepdim),
    (_amax_vjp,),
    saves=("a ans",),
)
reshape = Op(
    "reshape", lambda a, shape: np.reshape(a, tuple(shape)), (lambda g, ans, a, shape: reshape(g, a.shape),), view=True
)
permute = Op(
    "permute",
    lambda a, dims: np.transpose(a, tuple(dims)),
    (lambda g, ans, a, dims: permute(g, tuple(np.argsort(normalize_axis_tuple(tuple(dims), a.ndim)))),),
    view=True,
)
transpose = Op("transpose", np.swapaxes, (lambda g, ans, a, d0, d1: transpose(g, d0, d1),), view=True)
expand = Op(
    "expand",
    lambda a, shape: np.broadcast_to(a, _expanded(a.shape, shape)),
    (lambda g, ans, a, shape: unbroadcast(g, a.shape),),
    view=True,
)
broadcast_to = Op(
    "broadcast_to",
    lambda a, shape: np.broadcast_to(a, _expanded(a.shape, shape)),
    (lambda g, ans, a, shape: unbroadcast(g, a.shape),),
    view=True,
)
sum_to_size = Op("sum_to_size", _sum_to_size, (lambda g, ans, a, shape: broadcast_to(g, a.shape),))
squeeze = Op("squeeze", _squeeze, (lambda g, ans, a, dim=None: reshape(g, a.shape),), view=True)
unsqueeze = Op("unsqueeze", np.expand_dims, (lambda g, ans, a, dim: reshape(g, a.shape),), view=True)
matmul = Op("matmul", _matmul, (_matmul_vjp_a, _matmul_vjp_b), saves=("b", "a"))
_index = Op(
    "index", lambda a, key: a[_as_view_key(key)], (lambda g, ans, a, key: index_add(zeros(a), key, g),), view=True
)
index_add = Op(
    "index_add",
    _index_add,
    (lambda g, ans, a, key, value: g, None, lambda g, ans, a, key, value: unbroadcast(_index(g, key), value.shape)),
)
index_put = Op(
    "index_put",
    _index_put,
    (
        lambda g, ans, a, key, value: index_put(g, key, 0.0),
        None,
        lambda g, ans, a, key, value: unbroadcast(_index(g, key), value.shape),
    ),
)
view_put = Op(
    "copy_slices",
    _view_put,
    (
        lambda g, ans, base, value, steps: view_put(g, zeros(value), steps),
        lambda g, ans, base, value, steps: _replay(g, steps),
    ),
)
_cat = Op(
    "cat",
    lambda *parts, dim=0: np.concatenate(promote(*parts), axis=dim),
    (lambda i, g, ans, *parts, dim=0: _piece(g, parts, i, dim),),
    variadic=True,
)
_stack = Op(
    "stack",
    lambda *parts, dim=0: np.stack(promote(*parts), axis=dim),
    (lambda i, g, ans, *parts, dim=0: _index(g, (slice(None),) * (dim % ans.ndim) + (i,)),),
    variadic=True,
)
softmax = Op("softmax", _softmax, (lambda g, ans, a, dim: ans * (g - sum(g * ans, dim, keepdim=True)),), saves=("ans",))
log_softmax = Op(
    "log_softmax", _log_softmax, (lambda g, ans, a, dim: g - exp(ans) * sum(g, dim, keepdim=True),), saves=("ans",)
)
floor = Op("floor", np.floor, (lambda g, ans, a: zeros(g),))
argmax = Op("argmax", lambda a, dim=None, keepdim=False: np.argmax(a, axis=dim, keepdims=keepdim))
clone = Op("clone", np.copy, (lambda g, ans, a: g,))
_to_dtype = Op("to_dtype", lambda a, dtype: a.astype(dtype), (lambda g, ans, a, dtype: to_dtype(g, a.dtype),))
_zero = Op("zero", np.zeros_like, (lambda g, ans, a: zeros(g),))
_copy_op = Op("copy", _copy, (lambda g, ans, a, b: zeros(g), lambda g, ans, a, b: unbroadcast(g, b.shape)))


# -- signatures the table's generic call does not give ------------------------------------------


def pow(a: Tensor, b: Tensor | float) -> Tensor:
    return _pow(a, b)


def index(a: Tensor, key: Any) -> Tensor:
    return _index(a, _key(key))


def cat(tensors: Any, dim: int = 0) -> Tensor:
    return _cat(*tensors, dim=dim)


def stack(tensors: Any, dim: int = 0) -> Tensor:
    return _stack(*tensors, dim=dim)


def to_dtype(a: Tensor, dtype: Any) -> Tensor:
    """A differentiable cast; casting to the tensor's own dtype returns it unchanged (as in PyTorch)."""
    return a if a.dtype == np.dtype(dtype) else _to_dtype(a, np.dtype(dtype))


def stop_gradient(a: Tensor) -> Tensor:
    """``a``'s value with a zero gradient at every order: ``detach``, the functional way."""
    return a.detach()


def add_(a: Tensor, b: Any) -> Tensor:
    return inplace(add, a, b)


def sub_(a: Tensor, b: Any) -> Tensor:
    return inplace(sub, a, b)


def mul_(a: Tensor, b: Any) -> Tensor:
    return inplace(mul, a, b)


def zero_(a: Tensor) -> Tensor:
    return inplace(_zero, a)


def copy_(a: Tensor, b: Any) -> Tensor:
    return inplace(_copy_op, a, b)


def setitem_(a: Tensor, key: Any, value: Any) -> Tensor:
    """``a[key] = value``. With a basic key this writes through a view, hence the view error on a leaf."""
    key = _key(key)
    if is_grad_enabled() and a.is_leaf and a.requires_grad and _is_basic(key):
        raise LeafViewInplaceError(
            "a view of a leaf Variable that requires grad is being used in an in-place operation."
        )
    return inplace(index_put, a, key, value)


CATALOG_NAMES = (
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu",
    "abs", "maximum", "minimum", "where", "gt", "clamp", "sum", "mean", "amax", "reshape", "permute",
    "transpose", "expand", "broadcast_to", "sum_to_size", "squeeze", "unsqueeze", "matmul", "index", "cat",
    "stack", "softmax", "log_softmax", "floor", "argmax", "clone", "to_dtype", "stop_gradient", "add_", "sub_",
    "mul_", "zero_", "copy_", "setitem_",
)  # fmt: skip
CATALOG = {name: globals()[name] for name in CATALOG_NAMES}
"""The suite's op catalog, by name."""

# -- operator sugar, so engine code (and users) can write ``a * b + c`` --------------------------

Tensor.__add__ = lambda a, b: add(a, b)
Tensor.__radd__ = lambda a, b: add(b, a)
Tensor.__sub__ = lambda a, b: sub(a, b)
Tensor.__rsub__ = lambda a, b: sub(b, a)
Tensor.__mul__ = lambda a, b: mul(a, b)
Tensor.__rmul__ = lambda a, b: mul(b, a)
Tensor.__truediv__ = lambda a, b: div(a, b)
Tensor.__rtruediv__ = lambda a, b: div(b, a)
Tensor.__neg__ = lambda a: neg(a)
Tensor.__pow__ = lambda a, b: pow(a, b)
Tensor.__matmul__ = lambda a, b: matmul(a, b)
Tensor.__getitem__ = lambda a, key: index(a, key)
Tensor.__setitem__ = lambda a, key, value: setitem_(a, key, value)
Tensor.__iadd__ = lambda a, b: add_(a, b)
Tensor.__isub__ = lambda a, b: sub_(a, b)
Tensor.__imul__ = lambda a, b: mul_(a, b)
