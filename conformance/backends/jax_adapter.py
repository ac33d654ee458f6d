"""JAX adapter: a functional engine, so only the adapter protocol's functional core.

JAX differentiates functions (``jax.vjp``) and has no leaf state, ``backward``, grad modes or
in-place ops. The adapter therefore provides tensors, the op catalog and ``vjp``, declares none of
the stateful capabilities, and leaves the stateful methods out: the suite reports the rules that
need them as unsupported and never calls them. Of the functional extensions it has ``jvp`` and
``custom_vjp`` (``jax.custom_vjp``), not ``sgd_step``: JAX has no optimizer of its own (optax is
a separate library).

Self-contained on purpose: it imports only jax, NumPy and the standard library, so the suite can
inline this file into a standalone reproduction script.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _index(a: jax.Array, key: Any) -> jax.Array:
    """``a[key]``; JAX rejects a Python list as an index, so integer lists become arrays."""
    if isinstance(key, tuple):
        key = tuple(jnp.asarray(k) if isinstance(k, (list, np.ndarray)) else k for k in key)
    elif isinstance(key, (list, np.ndarray)):
        key = jnp.asarray(key)
    return a[key]


def _expand(a: jax.Array, shape: Sequence[int]) -> jax.Array:
    """torch's ``expand``: -1 keeps the size of the aligned existing dimension; a new leading dim needs a size."""
    lead = len(shape) - a.ndim
    if -1 in tuple(shape)[: max(lead, 0)]:
        raise ValueError(f"Incompatible shapes for broadcasting: -1 for a new leading dim in {tuple(shape)}")
    return jnp.broadcast_to(a, tuple(a.shape[i - lead] if s == -1 else s for i, s in enumerate(shape)))


def _sum_to_size(a: jax.Array, shape: Sequence[int]) -> jax.Array:
    """torch's ``sum_to_size``, which JAX lacks as an op: the VJP of ``broadcast_to(shape -> a.shape)``.

    So the reduction is JAX's own unbroadcast rule, and a non-expandable ``shape`` raises JAX's own
    broadcasting error.
    """
    _, pullback = jax.vjp(lambda t: jnp.broadcast_to(t, a.shape), jnp.zeros(tuple(shape), a.dtype))
    return pullback(a)[0]


OPS = types.SimpleNamespace(
    add=jnp.add,
    sub=jnp.subtract,
    mul=jnp.multiply,
    div=jnp.divide,
    neg=jnp.negative,
    pow=jnp.power,
    exp=jnp.exp,
    log=jnp.log,
    sqrt=jnp.sqrt,
    sin=jnp.sin,
    cos=jnp.cos,
    tanh=jnp.tanh,
    sigmoid=jax.nn.sigmoid,
    relu=jax.nn.relu,
    abs=jnp.abs,
    maximum=jnp.maximum,
    minimum=jnp.minimum,
    where=jnp.where,
    gt=jnp.greater,
    clamp=lambda a, min=None, max=None: jnp.clip(a, min, max),
    sum=lambda a, dim=None, keepdim=False: jnp.sum(a, axis=dim, keepdims=keepdim),
    mean=lambda a, dim=None, keepdim=False: jnp.mean(a, axis=dim, keepdims=keepdim),
    amax=lambda a, dim=None, keepdim=False: jnp.max(a, axis=dim, keepdims=keepdim),
    reshape=lambda a, shape: jnp.reshape(a, tuple(shape)),
    permute=lambda a, dims: jnp.transpose(a, tuple(dims)),
    transpose=jnp.swapaxes,
    expand=_expand,
    broadcast_to=lambda a, shape: jnp.broadcast_to(a, tuple(shape)),
    sum_to_size=_sum_to_size,
    squeeze=jnp.squeeze,
    unsqueeze=jnp.expand_dims,
    matmul=jnp.matmul,
    index=_index,
    cat=lambda ts, dim=0: jnp.concatenate(list(ts), axis=dim),
    stack=lambda ts, dim=0: jnp.stack(list(ts), axis=dim),
    softmax=lambda a, dim: jax.nn.softmax(a, axis=dim),
    log_softmax=lambda a, dim: jax.nn.log_softmax(a, axis=dim),
    floor=jnp.floor,
    argmax=jnp.argmax,
    clone=jnp.copy,
    to_dtype=lambda a, dtype: a.astype(dtype),
    stop_gradient=jax.lax.stop_gradient,
)
"""The op catalog on jax.numpy / jax.nn, less the in-place ops: JAX arrays are immutable."""


class JaxAdapter:
    """JAX on the CPU: the functional core only."""

    name = "jax"
    ops = OPS
    capabilities = frozenset(
        {
            "higher_order",
            "forward_mode",
            "integer_tensors",
            "float32",
            "float16",
            "bfloat16",
            "mixed_dtypes",
            "custom_vjp",
        }
    )
    errors = {
        # ValueError in general; TypeError ("add got incompatible shapes") when a size-0 dim is involved.
        "incompatible_shapes": ((ValueError, TypeError), r"(?i)incompatible shapes for broadcasting"),
        "invalid_expand": (
            ValueError,
            r"Cannot broadcast to shape with fewer dimensions|Incompatible (shapes|types) for broadcasting",
        ),
        "grad_shape_mismatch": (ValueError, r"unexpected JAX type \(e\.g\. shape/dtype\) for argument to VJP"),
    }

    def __init__(self) -> None:
        # float64 exists only with x64 on; without it JAX silently makes float32 arrays.
        jax.config.update("jax_enable_x64", True)
        if jax.config.read("jax_enable_x64"):
            self.capabilities = type(self).capabilities | {"float64"}

    def engine_version(self) -> str:
        return jax.__version__

    def devices(self) -> Sequence[str]:
        return ("cpu",)

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> jax.Array:
        """``requires_grad`` is ignored: any JAX array can be a primal of ``vjp``."""
        return jax.device_put(jnp.asarray(np.array(array), dtype=dtype), jax.devices(device)[0])

    def numpy(self, t: jax.Array) -> np.ndarray:
        if t.dtype == jnp.bfloat16:  # NumPy has no bfloat16 of its own
            t = t.astype(jnp.float32)
        return np.array(t)

    def dtype(self, t: jax.Array) -> str:
        return t.dtype.name

    def shape(self, t: jax.Array) -> tuple[int, ...]:
        return tuple(t.shape)

    def device(self, t: jax.Array) -> str:
        return next(iter(t.devices())).platform

    def vjp(
        self, fn: Callable[..., jax.Array], primals: Sequence[jax.Array], cotangent: jax.Array
    ) -> tuple[jax.Array, list[jax.Array]]:
        out, pullback = jax.vjp(fn, *primals)
        return out, list(pullback(cotangent))

    def jvp(
        self, fn: Callable[..., jax.Array], primals: Sequence[jax.Array], tangents: Sequence[jax.Array]
    ) -> tuple[jax.Array, jax.Array]:
        return jax.jvp(fn, tuple(primals), tuple(tangents))

    def custom_vjp(
        self, forward: Callable[..., jax.Array], vjp: Callable[..., Sequence[jax.Array | None]]
    ) -> Callable[..., jax.Array]:
        """``jax.custom_vjp(forward)`` with ``defvjp(fwd, bwd)``: ``fwd`` keeps the inputs and the output as
        residuals, ``bwd`` is ``vjp`` on them (JAX reads a None cotangent as zeros)."""
        op = jax.custom_vjp(forward)

        def fwd(*inputs: jax.Array) -> tuple[jax.Array, tuple[tuple[jax.Array, ...], jax.Array]]:
            output = forward(*inputs)
            return output, (inputs, output)

        def bwd(residuals: tuple[tuple[jax.Array, ...], jax.Array], cotangent: jax.Array) -> tuple[Any, ...]:
            inputs, output = residuals
            return tuple(vjp(inputs, output, cotangent))

        op.defvjp(fwd, bwd)
        return op
