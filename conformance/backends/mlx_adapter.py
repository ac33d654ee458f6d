"""Adapter for MLX (https://github.com/ml-explore/mlx): a functional engine, so only the adapter protocol's functional core.

MLX differentiates functions (``mx.vjp``, ``mx.grad``) and has no leaf state, ``backward``, grad
modes or in-place ops on the graph. The adapter therefore provides tensors, the op catalog and
``vjp``, declares none of the stateful capabilities, and leaves the stateful methods out: the suite
reports the rules that need them as unsupported and never calls them.

The mapping, in MLX's terms:

* a tensor is an ``mx.array`` made with its dtype given explicitly (``mx.array`` of a float64 NumPy
  array is float32 otherwise); ``requires_grad`` is ignored, as any array can be a primal of ``vjp``.
* MLX has float16, bfloat16, float32 and float64 (float64 on the CPU only, which is the one device
  here), and integer and bool arrays; ``numpy`` reads bfloat16 through float32, as NumPy lacks it.
* an array has no device of its own: ops run on the default device (the CPU with ``mlx[cpu]``).
* ``vjp`` is ``mx.vjp``; nested, it gives higher order, as MLX transforms the pullback itself.
* ``relu`` and ``log_softmax`` are ``mlx.nn``'s; ``clone`` is ``mx.array(a)``, MLX's copy (it has
  no copy op); ``sum_to_size`` is left out, as MLX has no such op.
* ``custom_vjp`` is ``mx.custom_function`` with its ``.vjp``; ``sgd_step`` is
  ``mlx.optimizers.SGD.apply_gradients``.

Self-contained on purpose: it imports only mlx, NumPy and the standard library, so the suite can
inline this file into a standalone reproduction script.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn
import mlx.optimizers
import numpy as np


def _mx_dtype(name: str) -> mx.Dtype:
    """The MLX dtype of a NumPy dtype name (MLX spells bool ``bool_``)."""
    return mx.bool_ if name == "bool" else getattr(mx, name)


def _index(a: mx.array, key: Any) -> mx.array:
    """``a[key]``, with integer lists as arrays (MLX indexes with arrays, not Python lists)."""
    if isinstance(key, tuple):
        key = tuple(mx.array(k) if isinstance(k, (list, np.ndarray)) else k for k in key)
    elif isinstance(key, (list, np.ndarray)):
        key = mx.array(key)
    return a[key]


def _expand(a: mx.array, shape: Sequence[int]) -> mx.array:
    """torch's ``expand`` as ``broadcast_to``: -1 keeps the size of the aligned existing dim; a -1 for a
    new leading dim is passed on, and MLX raises its own error for it."""
    lead = len(shape) - a.ndim
    return mx.broadcast_to(a, tuple(a.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape)))


OPS = types.SimpleNamespace(
    add=mx.add,
    sub=mx.subtract,
    mul=mx.multiply,
    div=mx.divide,
    neg=mx.negative,
    pow=mx.power,
    exp=mx.exp,
    log=mx.log,
    sqrt=mx.sqrt,
    sin=mx.sin,
    cos=mx.cos,
    tanh=mx.tanh,
    sigmoid=mx.sigmoid,
    relu=mlx.nn.relu,
    abs=mx.abs,
    maximum=mx.maximum,
    minimum=mx.minimum,
    where=mx.where,
    gt=mx.greater,
    clamp=lambda a, min=None, max=None: mx.clip(a, min, max),
    sum=lambda a, dim=None, keepdim=False: mx.sum(a, axis=dim, keepdims=keepdim),
    mean=lambda a, dim=None, keepdim=False: mx.mean(a, axis=dim, keepdims=keepdim),
    amax=lambda a, dim=None, keepdim=False: mx.max(a, axis=dim, keepdims=keepdim),
    reshape=lambda a, shape: mx.reshape(a, tuple(shape)),
    permute=lambda a, dims: mx.transpose(a, tuple(dims)),
    transpose=mx.swapaxes,
    expand=_expand,
    broadcast_to=lambda a, shape: mx.broadcast_to(a, tuple(shape)),
    squeeze=mx.squeeze,
    unsqueeze=mx.expand_dims,
    matmul=mx.matmul,
    index=_index,
    cat=lambda ts, dim=0: mx.concatenate(list(ts), axis=dim),
    stack=lambda ts, dim=0: mx.stack(list(ts), axis=dim),
    softmax=lambda a, dim: mx.softmax(a, axis=dim),
    log_softmax=lambda a, dim: mlx.nn.log_softmax(a, axis=dim),
    floor=mx.floor,
    argmax=mx.argmax,
    clone=mx.array,
    to_dtype=lambda a, dtype: a.astype(_mx_dtype(dtype)),
    stop_gradient=mx.stop_gradient,
)
"""The op catalog on mlx.core / mlx.nn, less ``sum_to_size`` (MLX has none) and the in-place ops."""


class MlxAdapter:
    """MLX on the CPU: the functional core only."""

    name = "mlx"
    ops = OPS
    capabilities = frozenset(
        {
            "higher_order",
            "forward_mode",
            "integer_tensors",
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "mixed_dtypes",
            "custom_vjp",
            "functional_optimizer",
        }
    )
    errors = {
        "incompatible_shapes": (ValueError, r"\[broadcast_shapes\] Shapes .* cannot be broadcast"),
        "invalid_expand": (
            ValueError,
            r"\[broadcast_shapes\] Shapes .* cannot be broadcast|Cannot broadcast array of shape"
            r"|\[broadcast_to\] Negative dimensions not allowed",
        ),
        "grad_shape_mismatch": (ValueError, r"\[vjp\] Output shape .* does not match cotangent shape"),
    }

    def engine_version(self) -> str:
        return mx.__version__

    def devices(self) -> Sequence[str]:
        return (mx.default_device().type.name,)

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> mx.array:
        """``requires_grad`` is ignored: any MLX array can be a primal of ``vjp``."""
        return mx.array(np.array(array), dtype=_mx_dtype(dtype))

    def numpy(self, t: mx.array) -> np.ndarray:
        if t.dtype == mx.bfloat16:  # NumPy has no bfloat16 of its own
            t = t.astype(mx.float32)
        return np.array(t, copy=True)

    def dtype(self, t: mx.array) -> str:
        return str(t.dtype).rpartition(".")[2]

    def shape(self, t: mx.array) -> tuple[int, ...]:
        return tuple(t.shape)

    def device(self, t: mx.array) -> str:
        """MLX arrays live in unified memory with no device of their own: the device ops run on."""
        return mx.default_device().type.name

    def vjp(
        self, fn: Callable[..., mx.array], primals: Sequence[mx.array], cotangent: mx.array
    ) -> tuple[mx.array, list[mx.array]]:
        outs, grads = mx.vjp(fn, list(primals), [cotangent])
        return outs[0], list(grads)

    def jvp(
        self, fn: Callable[..., mx.array], primals: Sequence[mx.array], tangents: Sequence[mx.array]
    ) -> tuple[mx.array, mx.array]:
        outs, jvps = mx.jvp(fn, list(primals), list(tangents))
        return outs[0], jvps[0]

    def custom_vjp(
        self, forward: Callable[..., mx.array], vjp: Callable[..., Sequence[mx.array | None]]
    ) -> Callable[..., mx.array]:
        """``mx.custom_function(forward)`` with its ``.vjp``: MLX calls it with the primals, the cotangent and
        the output (the primals bare for a one-input function, a tuple otherwise), and takes its result as
        the inputs' cotangents."""
        op = mx.custom_function(forward)

        @op.vjp
        def op_vjp(primals: Any, cotangent: mx.array, output: mx.array) -> tuple[mx.array | None, ...]:
            inputs = tuple(primals) if isinstance(primals, (tuple, list)) else (primals,)
            return tuple(vjp(inputs, output, cotangent))

        return op

    def sgd_step(self, params: Sequence[mx.array], grads: Sequence[mx.array], lr: float) -> list[mx.array]:
        """``mlx.optimizers.SGD(learning_rate=lr).apply_gradients(grads, params)``, which returns the updated
        parameter tree; the trees are dicts by position, as MLX's optimizer state is a dict."""
        updated = mlx.optimizers.SGD(learning_rate=lr).apply_gradients(dict(enumerate(grads)), dict(enumerate(params)))
        return [updated[i] for i in range(len(params))]
