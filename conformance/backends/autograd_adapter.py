"""Adapter for HIPS autograd (https://github.com/HIPS/autograd): a functional engine on NumPy.

autograd differentiates Python functions written against ``autograd.numpy`` (``make_vjp``) and
has no leaf state, ``backward``, grad modes or in-place ops, so the adapter provides only the
protocol's functional core and declares none of the stateful capabilities: the suite reports the
rules that need them as unsupported and never calls the stateful methods, which are left out.

The mapping, in autograd's terms:

* a tensor is a plain NumPy array: autograd's ``ArrayBox`` exists only while a function is traced,
  so ``tensor`` returns ``np.ndarray`` and ``requires_grad`` is ignored (any array can be a primal).
* ``vjp`` is ``autograd.make_vjp`` over every primal (``argnum`` a tuple); nested, it gives higher
  order, as ``make_vjp``'s pullback is itself traced.
* dtypes are NumPy's: float16/32/64 and integer arrays, no bfloat16; float32 stays float32 through
  ``autograd.numpy`` where NumPy keeps it.
* the ops autograd lacks are written with the idioms of its own documentation and examples, from
  its primitives (so their gradients are autograd's): ``sigmoid`` as ``0.5 * (tanh(x / 2) + 1)``
  (its tutorial), ``relu`` as ``maximum(0, x)`` and ``log_softmax`` as ``x - logsumexp(x)`` with
  the max shifted out (its examples), ``sum_to_size`` as the VJP of ``broadcast_to``.
* ``custom_vjp`` is ``autograd.extend.primitive`` with ``defvjp_argnums``; ``sgd_step`` is
  ``autograd.misc.optimizers.sgd`` for one iteration with ``mass=0``, which is plain SGD.

Self-contained on purpose: it imports only autograd, NumPy and the standard library, so the suite
can inline this file into a standalone reproduction script.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import autograd.numpy as anp
import numpy as np
from autograd import make_jvp, make_vjp
from autograd.extend import defvjp_argnums, primitive
from autograd.misc.optimizers import sgd
from autograd.tracer import getval


def _index(a: Any, key: Any) -> Any:
    """``a[key]``, with integer lists as arrays (NumPy reads a list inside a tuple key alike)."""
    if isinstance(key, tuple):
        key = tuple(np.asarray(k) if isinstance(k, list) else k for k in key)
    elif isinstance(key, list):
        key = np.asarray(key)
    return a[key]


def _expand(a: Any, shape: Sequence[int]) -> Any:
    """torch's ``expand`` as ``broadcast_to``: -1 keeps the size of the aligned existing dim."""
    lead = len(shape) - anp.ndim(a)
    return anp.broadcast_to(
        a, tuple(anp.shape(a)[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    )


def _sum_to_size(a: Any, shape: Sequence[int]) -> Any:
    """torch's ``sum_to_size``, which autograd lacks: the VJP of broadcasting ``shape`` to ``a``'s shape.

    The new leading dims are made size-1 first (autograd's ``broadcast_to`` VJP cannot add dims),
    so the reduction is autograd's own, and a shape that does not expand raises NumPy's own error.
    """
    lead = (1,) * (anp.ndim(a) - len(shape))
    pullback, _ = make_vjp(lambda t: anp.broadcast_to(anp.reshape(t, lead + tuple(shape)), anp.shape(a)))(
        np.zeros(tuple(shape), anp.result_type(a))
    )
    return pullback(a)


def _shift(a: Any, dim: int) -> np.ndarray:
    """The max along ``dim``, a constant (``getval`` unboxes it): softmax does not depend on the shift,
    so it needs no gradient, and ``initial`` keeps an empty ``dim`` valid, as torch's softmax is."""
    return np.max(getval(a), axis=dim, keepdims=True, initial=-np.inf)


def _log_softmax(a: Any, dim: int) -> Any:
    """As autograd's examples write it: ``a - logsumexp(a)``, the max shifted out for stability."""
    shifted = a - _shift(a, dim)
    return shifted - anp.log(anp.sum(anp.exp(shifted), axis=dim, keepdims=True))


def _softmax(a: Any, dim: int) -> Any:
    exp = anp.exp(a - _shift(a, dim))
    return exp / anp.sum(exp, axis=dim, keepdims=True)


OPS = types.SimpleNamespace(
    add=anp.add,
    sub=anp.subtract,
    mul=anp.multiply,
    div=anp.divide,
    neg=anp.negative,
    pow=anp.power,
    exp=anp.exp,
    log=anp.log,
    sqrt=anp.sqrt,
    sin=anp.sin,
    cos=anp.cos,
    tanh=anp.tanh,
    sigmoid=lambda a: 0.5 * (anp.tanh(a / 2.0) + 1.0),
    relu=lambda a: anp.maximum(0.0, a),
    abs=anp.abs,
    maximum=anp.maximum,
    minimum=anp.minimum,
    where=anp.where,
    gt=anp.greater,
    clamp=lambda a, min=None, max=None: anp.clip(a, min, max),
    sum=lambda a, dim=None, keepdim=False: anp.sum(a, axis=dim, keepdims=keepdim),
    mean=lambda a, dim=None, keepdim=False: anp.mean(a, axis=dim, keepdims=keepdim),
    amax=lambda a, dim=None, keepdim=False: anp.max(a, axis=dim, keepdims=keepdim),
    reshape=lambda a, shape: anp.reshape(a, tuple(shape)),
    permute=lambda a, dims: anp.transpose(a, tuple(dims)),
    transpose=anp.swapaxes,
    expand=_expand,
    broadcast_to=lambda a, shape: anp.broadcast_to(a, tuple(shape)),
    sum_to_size=_sum_to_size,
    squeeze=lambda a, dim: anp.squeeze(a, axis=dim),
    unsqueeze=anp.expand_dims,
    matmul=anp.matmul,
    index=_index,
    cat=lambda ts, dim=0: anp.concatenate(list(ts), axis=dim),
    stack=lambda ts, dim=0: anp.stack(list(ts), axis=dim),
    softmax=_softmax,
    log_softmax=_log_softmax,
    floor=anp.floor,
    argmax=anp.argmax,
    clone=anp.array,
    to_dtype=lambda a, dtype: a.astype(dtype),
    stop_gradient=getval,
)
"""The op catalog on autograd.numpy, less the in-place ops: autograd cannot differentiate them."""


class AutogradAdapter:
    """HIPS autograd on NumPy: the functional core only."""

    name = "autograd"
    ops = OPS
    op_gaps = {"forward_mode": frozenset({"to_dtype"})}  # astype has a VJP but no JVP: NotImplementedError
    capabilities = frozenset(
        {
            "higher_order",
            "forward_mode",
            "integer_tensors",
            "float32",
            "float64",
            "float16",
            "mixed_dtypes",
            "custom_vjp",
            "functional_optimizer",
        }
    )
    errors = {
        "incompatible_shapes": (ValueError, r"could not be broadcast together"),
        "invalid_expand": (
            ValueError,
            r"could not be broadcast together|more dimensions than allowed|must be non-negative",
        ),
    }

    def engine_version(self) -> str:
        return f"{version('autograd')} (numpy {np.__version__})"

    def devices(self) -> Sequence[str]:
        return ("cpu",)

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> np.ndarray:
        """A NumPy array: ``requires_grad`` is ignored, any array can be a primal of ``make_vjp``."""
        return np.array(array, dtype=dtype)

    def numpy(self, t: Any) -> np.ndarray:
        return np.array(t, copy=True)

    def dtype(self, t: Any) -> str:
        return anp.result_type(t).name

    def shape(self, t: Any) -> tuple[int, ...]:
        return tuple(anp.shape(t))

    def device(self, t: Any) -> str:
        return "cpu"

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> tuple[Any, list[Any]]:
        pullback, out = make_vjp(fn, argnum=tuple(range(len(primals))))(*primals)
        return out, list(pullback(cotangent))

    def jvp(self, fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
        """autograd's own forward mode (``make_jvp``, traced with ``JVPNode``s), over every primal."""
        return make_jvp(fn, argnum=tuple(range(len(primals))))(*primals)(tuple(tangents))

    def custom_vjp(self, forward: Callable[..., Any], vjp: Callable[..., Sequence[Any]]) -> Callable[..., Any]:
        """``autograd.extend.primitive(forward)`` with ``defvjp_argnums``: autograd hands the maker the output
        (``ans``) and the inputs, and the pullback returns ``vjp``'s cotangents of the inputs it asks for."""
        op = primitive(forward)

        def vjp_maker(argnums: Sequence[int], ans: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            def pullback(cotangent: Any) -> tuple[Any, ...]:
                cotangents = vjp(tuple(args), ans, cotangent)
                return tuple(cotangents[i] for i in argnums)

            return pullback

        defvjp_argnums(op, vjp_maker)
        return op

    def sgd_step(self, params: Sequence[Any], grads: Sequence[Any], lr: float) -> list[Any]:
        """``autograd.misc.optimizers.sgd`` for one iteration (``num_iters=1``) with ``mass=0``, where its
        velocity update is ``-g`` and its step ``x - lr * g``: plain SGD. Its ``grad(x, i)`` argument is
        called once, at ``params``, so it returns ``grads``, the gradients there."""
        return sgd(lambda x, i: list(grads), list(params), num_iters=1, step_size=lr, mass=0.0)
