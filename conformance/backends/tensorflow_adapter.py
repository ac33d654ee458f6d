"""Adapter for TensorFlow (https://www.tensorflow.org), eager mode on the CPU: the functional core only.

TensorFlow differentiates what a ``tf.GradientTape`` records. A tensor has no ``.grad``, no leaf
flag and no ``backward``: gradients are returned by ``tape.gradient``, never stored on tensors, and
there is no global grad mode (``stop_recording`` pauses one tape, ``tf.stop_gradient`` is an op),
no in-place op on a ``tf.Tensor`` and no version counter. So the adapter provides tensors, the op
catalog and ``vjp``, declares none of the stateful capabilities, and leaves the stateful methods
out: the suite reports the rules that need them as unsupported and never calls them.

The mapping, in TensorFlow's terms:

* ``tensor`` is ``tf.constant`` on the device; ``requires_grad`` is ignored, as a tape can watch
  any tensor.
* ``vjp`` is ``tape.watch`` of every primal, the function run under the tape, then
  ``tape.gradient(out, primals, output_gradients=cotangent)``, with
  ``unconnected_gradients=ZERO`` so an unused primal gets zeros. Nested, it gives higher order:
  an inner tape's ``gradient`` is recorded by the enclosing tape.
* ops are ``tf``'s, and for the NumPy-semantics ops ``tf.experimental.numpy``'s (``matmul`` of
  vectors and broadcast batches, ``swapaxes``); ``clamp`` with one bound is ``clip_by_value`` with
  an infinite other bound; ``expand`` is ``broadcast_to`` with torch's ``-1`` read as "keep this
  size"; an index key's integer lists are passed as integer tensors. ``sum_to_size`` is left out:
  TensorFlow has no such op.
* ``custom_vjp`` is ``tf.custom_gradient``; ``sgd_step`` is ``tf.keras.optimizers.SGD`` applied to
  ``tf.Variable``s made from the parameters, read back as tensors.

Declared missing, and why: every stateful capability (above); ``mixed_dtypes``, because
TensorFlow does not promote (float32 times float64 raises ``InvalidArgumentError``); ``devices``,
as the ``tensorflow-cpu`` build has one device.

``TF_CPP_MIN_LOG_LEVEL`` is set to 3 (unless already set) before TensorFlow is imported, to silence
its C++ logs. Self-contained on purpose: it imports only tensorflow, NumPy and the standard
library, so the suite can inline this file into a standalone reproduction script.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

tnp = tf.experimental.numpy


def _key(k: Any) -> Any:
    return tf.constant(k) if isinstance(k, (list, np.ndarray)) else k


def _index(a: tf.Tensor, key: Any) -> tf.Tensor:
    """``a[key]``, an integer list as an integer tensor (TensorFlow reads a bare list as a tuple of ints)."""
    return a[tuple(_key(k) for k in key)] if isinstance(key, tuple) else a[_key(key)]


def _expand(a: tf.Tensor, shape: Sequence[int]) -> tf.Tensor:
    """torch's ``expand``: -1 keeps the size of the aligned existing dim; on a new leading dim it is passed on."""
    lead = len(shape) - a.shape.rank
    return tf.broadcast_to(a, [a.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape)])


def _clamp(a: tf.Tensor, min: float | None = None, max: float | None = None) -> tf.Tensor:
    """``clip_by_value`` needs both bounds: a missing one is infinite."""
    return tf.clip_by_value(a, -np.inf if min is None else min, np.inf if max is None else max)


OPS = types.SimpleNamespace(
    add=tf.add,
    sub=tf.subtract,
    mul=tf.multiply,
    div=tf.divide,
    neg=tf.negative,
    pow=tf.pow,
    exp=tf.exp,
    log=tf.math.log,
    sqrt=tf.sqrt,
    sin=tf.sin,
    cos=tf.cos,
    tanh=tf.tanh,
    sigmoid=tf.sigmoid,
    relu=tf.nn.relu,
    abs=tf.abs,
    maximum=tf.maximum,
    minimum=tf.minimum,
    where=tf.where,
    gt=tf.greater,
    clamp=_clamp,
    sum=lambda a, dim=None, keepdim=False: tf.reduce_sum(a, axis=dim, keepdims=keepdim),
    mean=lambda a, dim=None, keepdim=False: tf.reduce_mean(a, axis=dim, keepdims=keepdim),
    amax=lambda a, dim=None, keepdim=False: tf.reduce_max(a, axis=dim, keepdims=keepdim),
    reshape=lambda a, shape: tf.reshape(a, tuple(shape)),
    permute=lambda a, dims: tf.transpose(a, tuple(dims)),
    transpose=tnp.swapaxes,
    expand=_expand,
    broadcast_to=lambda a, shape: tf.broadcast_to(a, tuple(shape)),
    squeeze=lambda a, dim: tf.squeeze(a, axis=dim),
    unsqueeze=tf.expand_dims,
    matmul=tnp.matmul,
    index=_index,
    cat=lambda ts, dim=0: tf.concat(list(ts), axis=dim),
    stack=lambda ts, dim=0: tf.stack(list(ts), axis=dim),
    softmax=lambda a, dim: tf.nn.softmax(a, axis=dim),
    log_softmax=lambda a, dim: tf.nn.log_softmax(a, axis=dim),
    floor=tf.floor,
    argmax=tf.argmax,
    clone=tf.identity,
    to_dtype=lambda a, dtype: tf.cast(a, dtype),
    stop_gradient=tf.stop_gradient,
)
"""The op catalog, less ``sum_to_size`` (TensorFlow lacks it) and the in-place ops (tensors are immutable)."""


class TensorflowAdapter:
    """TensorFlow 2, eager, on the CPU: the functional core only."""

    name = "tensorflow"
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
            "custom_vjp",
            "functional_optimizer",
        }
    )
    errors = {
        "incompatible_shapes": (tf.errors.InvalidArgumentError, r"Incompatible shapes"),
        "invalid_expand": (
            tf.errors.InvalidArgumentError,
            r"Incompatible shapes|must be no greater than rank of output shape|Dimension -\d+ must be >= 0",
        ),
    }

    def engine_version(self) -> str:
        return tf.__version__

    def devices(self) -> Sequence[str]:
        return ("cpu",)

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> tf.Tensor:
        """``requires_grad`` is ignored: a tape can watch any tensor."""
        with tf.device(device):
            return tf.constant(np.array(array), dtype=dtype)

    def numpy(self, t: tf.Tensor) -> np.ndarray:
        if t.dtype == tf.bfloat16:  # NumPy has no bfloat16 of its own
            t = tf.cast(t, tf.float32)
        return np.array(t.numpy())

    def dtype(self, t: tf.Tensor) -> str:
        return t.dtype.name

    def shape(self, t: tf.Tensor) -> tuple[int, ...]:
        return tuple(t.shape)

    def device(self, t: tf.Tensor) -> str:
        return tf.DeviceSpec.from_string(t.device).device_type.lower()

    def vjp(
        self, fn: Callable[..., tf.Tensor], primals: Sequence[tf.Tensor], cotangent: tf.Tensor
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            tape.watch(list(primals))
            out = fn(*primals)
        grads = tape.gradient(
            out, list(primals), output_gradients=cotangent, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return out, grads

    def jvp(
        self, fn: Callable[..., tf.Tensor], primals: Sequence[tf.Tensor], tangents: Sequence[tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``tf.autodiff.ForwardAccumulator`` over the primals; an output it does not reach gets zeros."""
        with tf.autodiff.ForwardAccumulator(list(primals), list(tangents)) as accumulator:
            out = fn(*primals)
        return out, accumulator.jvp(out, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def custom_vjp(
        self, forward: Callable[..., tf.Tensor], vjp: Callable[..., Sequence[tf.Tensor | None]]
    ) -> Callable[..., tf.Tensor]:
        """``tf.custom_gradient``: the op returns ``forward``'s output and a gradient function, which is
        ``vjp`` on the inputs and output it closes over (a None gradient is TensorFlow's "no gradient")."""

        @tf.custom_gradient
        def op(*inputs: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tuple[tf.Tensor | None, ...]]]:
            output = forward(*inputs)

            def gradient(cotangent: tf.Tensor) -> tuple[tf.Tensor | None, ...]:
                return tuple(vjp(inputs, output, cotangent))

            return output, gradient

        return op

    def sgd_step(self, params: Sequence[tf.Tensor], grads: Sequence[tf.Tensor], lr: float) -> list[tf.Tensor]:
        """``tf.keras.optimizers.SGD(lr).apply_gradients`` on ``tf.Variable``s made from ``params`` (Keras
        optimizers update variables), read back as tensors: the new parameters."""
        variables = [tf.Variable(p) for p in params]
        tf.keras.optimizers.SGD(learning_rate=lr).apply_gradients(zip(grads, variables))
        return [tf.convert_to_tensor(v) for v in variables]
