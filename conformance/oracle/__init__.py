"""The oracle: float64 NumPy forward values and reference VJPs for the op catalog.

Independent of every engine under test. Each op is one line of forward and one line of VJP per
differentiable argument, in the style of HIPS autograd, built on ``unbroadcast``. Programs (see
``language``) are evaluated on a small tape; ``fd_vjp`` gives central finite differences, which
cross-check the table for smooth programs and serve as the reference for second derivatives.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from conformance.spec import language

Array = np.ndarray


def unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``g`` back to ``shape``: leading dims dropped, size-1 dims kept, 0-d stays 0-d."""
    g = np.sum(g, axis=tuple(range(g.ndim - len(shape))))
    kept = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return np.sum(g, axis=kept, keepdims=True).reshape(shape)


def _axes(a: Array, dim: Any) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(a.ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(d % max(a.ndim, 1) for d in dims)


def _keep(g: Array, a: Array, dim: Any, keepdim: bool) -> Array:
    """Re-insert the reduced dims of ``g`` so it broadcasts against ``a``."""
    return g if keepdim else np.expand_dims(g, _axes(a, dim))


def _expand_shape(a: Array, shape: Any) -> tuple[int, ...]:
    """torch's expand: -1 keeps the size of an existing dim; new dims lead and need a size."""
    lead = len(shape) - a.ndim
    if lead < 0 or -1 in shape[:lead]:
        raise ValueError(f"cannot expand size {list(a.shape)} to {list(shape)}")
    return tuple(a.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))


def _sum_to_size(a: Array, shape: Any) -> Array:
    np.broadcast_shapes(tuple(shape), a.shape)  # raises when not expandable
    if np.broadcast_shapes(tuple(shape), a.shape) != a.shape:
        raise ValueError(f"size {list(shape)} is not expandable to size {list(a.shape)}")
    return unbroadcast(a, tuple(shape))


def _amax_vjp(g: Array, ans: Array, a: Array, dim: Any = None, keepdim: bool = False) -> Array:
    """Ties share the gradient evenly (torch's amax convention)."""
    mask = a == _keep(ans, a, dim, keepdim)
    return _keep(g, a, dim, keepdim) * mask / np.sum(mask, axis=_axes(a, dim), keepdims=True)


def _matmul_vjps(g: Array, a: Array, b: Array) -> tuple[Array, Array]:
    """Promote 1-d operands as matmul does, then reduce batch dims with ``unbroadcast``."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g[..., None] if b.ndim == 1 else g
    g2 = g2[..., None, :] if a.ndim == 1 else g2
    ga = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
    gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
    return ga, gb


def _index_vjp(g: Array, ans: Array, a: Array, key: Any) -> Array:
    out = np.zeros_like(a)
    np.add.at(out, _np_key(key), g)
    return out


def _np_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(np.asarray(k) if isinstance(k, list) else k for k in key)
    return np.asarray(key) if isinstance(key, list) else key


def _pow_base(g: Array, ans: Array, a: Array, b: Any) -> Array:
    """d/da a**b = b * a**(b-1), defined as 0 where b == 0 (torch's convention)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(np.asarray(b) == 0, 0.0, b * np.power(a, np.asarray(b) - 1.0))
    return unbroadcast(g * d, np.shape(a))


def _pow_exponent(g: Array, ans: Array, a: Array, b: Array) -> Array:
    """d/db a**b = a**b * log(a), defined as 0 where a == 0 and b >= 0 (torch's convention)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where((a == 0) & (b >= 0), 0.0, ans * np.log(a))
    return unbroadcast(g * d, b.shape)


def _tie(a: Array, b: Array) -> Array:
    """1 where a wins, 0.5 at ties, 0 where b wins: torch's maximum/minimum convention."""
    return (a > b) + 0.5 * (a == b)


def _softmax(a: Array, dim: int) -> Array:
    e = np.exp(a - np.max(a, axis=dim, keepdims=True, initial=-np.inf))  # initial: a size-0 dim has no max
    return e / np.sum(e, axis=dim, keepdims=True)


def _log_softmax(a: Array, dim: int) -> Array:
    shifted = a - np.max(a, axis=dim, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))


def _sum_dim(x: Array, dim: int) -> Array:
    return np.sum(x, axis=dim, keepdims=True)


def _split(g: Array, sizes: list[int], dim: int) -> list[Array]:
    return np.split(g, np.cumsum(sizes)[:-1], axis=dim)


ub = unbroadcast
sh = np.shape

# name: (forward, (vjp for arg 0, vjp for arg 1, ...)). Each vjp is f(g, ans, *args, **kwargs).
# None marks an argument that never receives a gradient; a missing op is not differentiable.
TABLE: dict[str, tuple[Callable[..., Any], tuple[Callable[..., Any] | None, ...]]] = {
    "add": (np.add, (lambda g, ans, a, b: ub(g, sh(a)), lambda g, ans, a, b: ub(g, sh(b)))),
    "sub": (np.subtract, (lambda g, ans, a, b: ub(g, sh(a)), lambda g, ans, a, b: ub(-g, sh(b)))),
    "mul": (np.multiply, (lambda g, ans, a, b: ub(g * b, sh(a)), lambda g, ans, a, b: ub(g * a, sh(b)))),
    "div": (np.divide, (lambda g, ans, a, b: ub(g / b, sh(a)), lambda g, ans, a, b: ub(-g * a / b**2, sh(b)))),
    "neg": (np.negative, (lambda g, ans, a: -g,)),
    "pow": (np.power, (_pow_base, _pow_exponent)),
    "exp": (np.exp, (lambda g, ans, a: g * ans,)),
    "log": (np.log, (lambda g, ans, a: g / a,)),
    "sqrt": (np.sqrt, (lambda g, ans, a: g / (2 * ans),)),
    "sin": (np.sin, (lambda g, ans, a: g * np.cos(a),)),
    "cos": (np.cos, (lambda g, ans, a: -g * np.sin(a),)),
    "tanh": (np.tanh, (lambda g, ans, a: g * (1 - ans**2),)),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), (lambda g, ans, a: g * ans * (1 - ans),)),
    "relu": (lambda a: np.maximum(a, 0.0), (lambda g, ans, a: g * (a > 0),)),
    "abs": (np.abs, (lambda g, ans, a: g * np.sign(a),)),
    "maximum": (
        np.maximum,
        (lambda g, ans, a, b: ub(g * _tie(a, b), sh(a)), lambda g, ans, a, b: ub(g * _tie(b, a), sh(b))),
    ),
    "minimum": (
        np.minimum,
        (lambda g, ans, a, b: ub(g * _tie(b, a), sh(a)), lambda g, ans, a, b: ub(g * _tie(a, b), sh(b))),
    ),
    "where": (np.where, (None, lambda g, ans, c, a, b: ub(g * c, sh(a)), lambda g, ans, c, a, b: ub(g * ~c, sh(b)))),
    "clamp": (
        lambda a, min=None, max=None: np.clip(a, min, max),
        (lambda g, ans, a, min=None, max=None: g * ((min is None or a >= min) & (max is None or a <= max)),),
    ),
    "sum": (
        lambda a, dim=None, keepdim=False: np.sum(a, axis=_axes(a, dim), keepdims=keepdim),
        (lambda g, ans, a, dim=None, keepdim=False: np.broadcast_to(_keep(g, a, dim, keepdim), a.shape).copy(),),
    ),
    "mean": (
        lambda a, dim=None, keepdim=False: (  # sum / count: an empty mean is NaN without NumPy's warning
            np.sum(a, axis=_axes(a, dim), keepdims=keepdim) / math.prod(a.shape[d] for d in _axes(a, dim))
        ),
        (
            lambda g, ans, a, dim=None, keepdim=False: (
                np.broadcast_to(_keep(g, a, dim, keepdim), a.shape) * (ans.size / max(a.size, 1))
            ),
        ),
    ),
    "amax": (lambda a, dim=None, keepdim=False: np.amax(a, axis=_axes(a, dim), keepdims=keepdim), (_amax_vjp,)),
    "reshape": (lambda a, shape: np.reshape(a, tuple(shape)), (lambda g, ans, a, shape: g.reshape(a.shape),)),
    "permute": (
        lambda a, dims: np.transpose(a, dims),
        (lambda g, ans, a, dims: np.transpose(g, np.argsort(_axes(a, dims))),),  # negative dims normalized
    ),
    "transpose": (lambda a, d0, d1: np.swapaxes(a, d0, d1), (lambda g, ans, a, d0, d1: np.swapaxes(g, d0, d1),)),
    "expand": (
        lambda a, shape: np.broadcast_to(a, _expand_shape(a, shape)).copy(),
        (lambda g, ans, a, shape: ub(g, a.shape),),
    ),
    "broadcast_to": (
        lambda a, shape: np.broadcast_to(a, tuple(shape)).copy(),
        (lambda g, ans, a, shape: ub(g, a.shape),),
    ),
    "sum_to_size": (_sum_to_size, (lambda g, ans, a, shape: np.broadcast_to(g, a.shape).copy(),)),
    "squeeze": (
        lambda a, dim: np.squeeze(a, dim) if a.ndim and a.shape[dim] == 1 else a.copy(),
        (lambda g, ans, a, dim: g.reshape(a.shape),),
    ),
    "unsqueeze": (lambda a, dim: np.expand_dims(a, dim), (lambda g, ans, a, dim: g.reshape(a.shape),)),
    "matmul": (
        np.matmul,
        (lambda g, ans, a, b: _matmul_vjps(g, a, b)[0], lambda g, ans, a, b: _matmul_vjps(g, a, b)[1]),
    ),
    "index": (lambda a, key: a[_np_key(key)], (_index_vjp,)),
    "softmax": (_softmax, (lambda g, ans, a, dim: ans * (g - _sum_dim(g * ans, dim)),)),
    "log_softmax": (_log_softmax, (lambda g, ans, a, dim: g - np.exp(ans) * _sum_dim(g, dim),)),
    "clone": (np.copy, (lambda g, ans, a: g,)),
    "floor": (np.floor, (lambda g, ans, a: np.zeros_like(g),)),
    "to_dtype": (lambda a, dtype: np.array(a, dtype=np.float64), (lambda g, ans, a, dtype: g,)),
    "stop_gradient": (np.copy, (lambda g, ans, a: np.zeros_like(g),)),  # not SMOOTH: FD sees the identity
}
"""The reference VJP table. ``cat`` and ``stack`` take a list and are handled in ``SEQUENCE_OPS``."""

SEQUENCE_OPS: dict[str, tuple[Callable[..., Array], Callable[..., list[Array]]]] = {
    "cat": (
        lambda ts, dim=0: np.concatenate(ts, axis=dim),
        lambda g, ts, dim=0: _split(g, [t.shape[dim] for t in ts], dim),
    ),
    "stack": (
        lambda ts, dim=0: np.stack(ts, axis=dim),
        lambda g, ts, dim=0: [np.take(g, i, axis=dim) for i in range(len(ts))],
    ),
}

DETACHING = frozenset({"stop_gradient"})
"""Ops whose gradient is not the derivative of their value (it is zero by definition): no finite difference
of a value can be the reference for a program that calls one, at any order."""

NON_DIFFERENTIABLE: dict[str, Callable[..., Array]] = {"gt": np.greater, "argmax": np.argmax}
"""Ops whose outputs never carry a gradient."""

SMOOTH = frozenset(
    {
        "add",
        "sub",
        "mul",
        "div",
        "neg",
        "exp",
        "log",
        "sqrt",
        "sin",
        "cos",
        "tanh",
        "sigmoid",
        "sum",
        "mean",
        "reshape",
        "permute",
        "transpose",
        "expand",
        "broadcast_to",
        "sum_to_size",
        "squeeze",
        "unsqueeze",
        "matmul",
        "index",
        "softmax",
        "log_softmax",
        "clone",
        "cat",
        "stack",
        "to_dtype",
    }
)
"""Ops differentiable everywhere in their domain: finite differences must agree with the table."""


class Node:
    """A value on the oracle's tape: its parents and, for each, the VJP that reaches it."""

    __slots__ = ("order", "parents", "value")
    _counter = itertools.count()

    def __init__(self, value: Array, parents: list[tuple[Node, Callable[[Array], Array]]]) -> None:
        self.value = np.asarray(value, dtype=np.float64)
        self.parents = parents
        self.order = next(Node._counter)


def _unwrap(x: Any) -> Any:
    if isinstance(x, Node):
        return x.value
    if isinstance(x, (list, tuple)) and any(isinstance(i, Node) for i in x):
        return [_unwrap(i) for i in x]
    return x


def _traced(name: str) -> Callable[..., Any]:
    if name in NON_DIFFERENTIABLE:
        return lambda *args, **kw: NON_DIFFERENTIABLE[name](*map(_unwrap, args), **kw)
    if name in SEQUENCE_OPS:
        forward, vjp = SEQUENCE_OPS[name]

        def sequence_op(ts: list[Any], *args: Any, **kw: Any) -> Node:
            values = [_unwrap(t) for t in ts]
            nodes = [(i, t) for i, t in enumerate(ts) if isinstance(t, Node)]
            return Node(
                forward(values, *args, **kw),
                [(t, lambda g, i=i: vjp(g, values, *args, **kw)[i]) for i, t in nodes],
            )

        return sequence_op
    forward, vjps = TABLE[name]

    def op(*args: Any, **kw: Any) -> Node:
        values = [_unwrap(a) for a in args]
        ans = np.asarray(forward(*values, **kw))
        parents = [
            (arg, lambda g, f=f: f(g, ans, *values, **kw))
            for arg, f in zip(args, vjps)
            if isinstance(arg, Node) and f is not None
        ]
        return Node(ans, parents)

    return op


OPS = {name: _traced(name) for name in [*TABLE, *SEQUENCE_OPS, *NON_DIFFERENTIABLE]}


def evaluate(program: str, inputs: Mapping[str, Any]) -> tuple[Any, dict[str, Node]]:
    """Run ``program`` on float64 copies of ``inputs``; the result and the input nodes.

    Lower-case inputs are differentiable; upper-case ones (``RESULT``) are constants.
    """
    nodes = {k: Node(np.array(v, dtype=np.float64), []) for k, v in inputs.items() if not k.isupper()}
    constants = {k: v for k, v in inputs.items() if k.isupper()}
    scope = {**OPS, "shape": lambda t: np.shape(_unwrap(t)), **constants, **nodes}
    result = eval(language.compile_expression(program), {"__builtins__": language.SAFE_BUILTINS}, scope)
    return result, nodes


def value(program: str, **inputs: Array) -> Array:
    """The program's output in float64."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result, _ = evaluate(program, inputs)
    return np.asarray(_unwrap(result))


def vjp(program: str, cotangent: Array | None = None, **inputs: Array) -> dict[str, Array]:
    """cotangent^T J for every input, in float64: zeros for an input the output does not use.

    ``cotangent`` defaults to ones (the implicit gradient of a one-element output).
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # kinks (sqrt'(0) = inf) are drawn on purpose
        return _reverse(*evaluate(program, inputs), cotangent)


def jacobian_product(program: str, direction: Mapping[str, Array], **inputs: Array) -> Array:
    """``J @ direction`` in float64, exactly: row ``k`` of the Jacobian is the VJP of the unit cotangent ``e_k``, so
    ``(J d)_k = sum_i <VJP_i(e_k), d_i>`` over the inputs named in ``direction`` (the others held constant). One
    evaluation of the program, its tape walked once per output element; an output with no elements gives zeros."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result, nodes = evaluate(program, inputs)
        out = np.asarray(_unwrap(result))
        units = np.eye(out.size).reshape(out.size, *out.shape)
        rows = [_reverse(result, nodes, unit) for unit in units]
    flat = [sum(float(np.sum(row[n] * np.asarray(d, dtype=np.float64))) for n, d in direction.items()) for row in rows]
    return np.reshape(flat, out.shape)


def _reverse(out: Any, nodes: dict[str, Node], cotangent: Array | None) -> dict[str, Array]:
    """The graph walk: VJPs from ``out`` back to the input nodes, in reverse creation order."""
    if not isinstance(out, Node):
        return {name: np.zeros_like(n.value) for name, n in nodes.items()}
    seed = np.ones_like(out.value) if cotangent is None else np.asarray(cotangent, dtype=np.float64)
    grads: dict[int, Array] = {id(out): np.broadcast_to(seed, out.value.shape).copy()}
    pending = {id(out): out}
    while pending:
        node = pending.pop(max(pending, key=lambda k: pending[k].order))
        g = grads.pop(id(node))
        if not node.parents:
            grads[id(node)] = g  # an input: keep its total
            continue
        for parent, parent_vjp in node.parents:
            contribution = np.asarray(parent_vjp(g), dtype=np.float64)
            grads[id(parent)] = grads.get(id(parent), 0.0) + contribution
            pending[id(parent)] = parent
    return {
        name: np.asarray(grads.get(id(n), np.zeros_like(n.value))).reshape(n.value.shape) for name, n in nodes.items()
    }


def jvp(program: str, tangents: Mapping[str, Array], **inputs: Array) -> Array:
    """``J @ tangents`` in float64: the forward-mode reference, built from the oracle's own VJP table
    (``jacobian_product``).

    Exact, not finite differences, with the same conventions (kinks, ties) as the reverse rules. Where the
    output is NaN the tangent is NaN, meaning "not defined here": an empty mean is 0/0, forward mode (torch's)
    applies the same 0/0 to the tangents, and the rows (there are none) give 0; the ops.*.jvp rules check only
    dtype and shape there. ``tangents`` maps input names to arrays of their shapes.
    """
    out = value(program, **inputs)
    return np.where(np.isnan(out), np.nan, jacobian_product(program, tangents, **inputs))


def fd_vjp(
    fn: Callable[..., Array], inputs: Mapping[str, Array], cotangent: Array | None = None, eps: float = 1e-6
) -> dict[str, Array]:
    """Central finite differences of ``<cotangent, fn(**inputs)>``, per input, in float64.

    ``fn`` is a Python function of arrays, so it can itself be an oracle VJP: that is how
    second derivatives get a reference.
    """
    base = {k: np.array(v, dtype=np.float64) for k, v in inputs.items() if not k.isupper()}
    constants = {k: v for k, v in inputs.items() if k.isupper()}
    out = np.asarray(fn(**base, **constants), dtype=np.float64)
    weights = np.ones_like(out) if cotangent is None else np.asarray(cotangent, dtype=np.float64)
    grads = {}
    for name, x in base.items():
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            step = eps * max(1.0, abs(float(x[i])))
            hi, lo = x.copy(), x.copy()
            hi[i] += step
            lo[i] -= step
            f_hi = np.sum(weights * fn(**{**base, name: hi}, **constants))
            f_lo = np.sum(weights * fn(**{**base, name: lo}, **constants))
            g[i] = (f_hi - f_lo) / (2 * step)
        grads[name] = g
    return grads


def along(
    fn: Callable[..., Any], inputs: Mapping[str, Array], direction: Mapping[str, Array], eps: float = 1e-6
) -> Any:
    """Central difference of ``fn(**inputs)`` along ``direction`` (a step for some of the inputs, all at
    once): ``(fn(x + h d) - fn(x - h d)) / 2h``, for an ``fn`` that returns an array or a dict of them.

    Two evaluations, whatever the sizes: of the value it is ``J d``; of the oracle's VJP it is the
    Hessian-vector product ``H d``, which is what second-order checks need (H is symmetric).
    """
    scale = max([1.0, *(float(np.max(np.abs(inputs[n]), initial=0.0)) for n in direction)])
    step = eps * scale / max([1.0, *(float(np.max(np.abs(d), initial=0.0)) for d in direction.values())])

    def at(sign: float) -> Any:
        return fn(**{**inputs, **{n: inputs[n] + sign * step * np.asarray(d) for n, d in direction.items()}})

    hi, lo = at(1.0), at(-1.0)
    if isinstance(hi, dict):
        return {k: (np.asarray(hi[k]) - np.asarray(lo[k])) / (2 * step) for k in hi}
    return (np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64)) / (2 * step)


def program_fd_vjp(program: str, cotangent: Array | None = None, **inputs: Array) -> dict[str, Array]:
    """``fd_vjp`` of a program string."""
    return fd_vjp(lambda **kw: value(program, **kw), inputs, cotangent)


def is_smooth(program: str) -> bool:
    """Whether every op in ``program`` is in ``SMOOTH`` (so finite differences must agree)."""
    return language.called_names(program) <= SMOOTH


def sgd(program: str, params: Mapping[str, Array], lr: float, steps: int, **data: Array) -> dict[str, Array]:
    """Plain SGD on ``program``'s one-element output: each parameter after every step, stacked."""
    current = {name: np.asarray(v, dtype=np.float64) for name, v in params.items()}
    trajectory: dict[str, list[Array]] = {name: [] for name in params}
    for _ in range(steps):
        grads = vjp(program, None, **current, **data)
        current = {name: current[name] - lr * grads[name] for name in params}
        for name in params:
            trajectory[name].append(current[name])
    return {name: np.stack(values) for name, values in trajectory.items()}


NAMESPACE: dict[str, Any] = {
    "np": language.SAFE_NP,
    "value": value,
    "vjp": vjp,
    "jvp": jvp,
    "sgd": sgd,
    "fd_vjp": fd_vjp,
    "program_fd_vjp": program_fd_vjp,
    "unbroadcast": unbroadcast,
}
"""What a scenario's ``oracle`` expressions may call, besides its drawn arrays."""
