"""Adapter for tinygrad (https://github.com/tinygrad/tinygrad), a lazy engine that compiles its kernels.

Self-contained on purpose: it imports only tinygrad, NumPy and the standard library, so the suite
can inline this file into a standalone reproduction script.

Thin by design: every method is one of tinygrad's own calls. Where tinygrad has no counterpart of a
feature, the capability is left out and the method raises ``NotImplementedError`` saying so; where
it has one with other semantics, the mapping is faithful and the rules report the difference.
tinygrad 0.14 has no ``requires_grad``, no grad modes and no graph freeing; the mapping, in its terms:

* every floating tensor is differentiable: ``backward`` fills ``.grad`` of every live floating tensor
  the output depends on (intermediates too), and ``Tensor.gradient`` rejects non-float tensors. So
  ``requires_grad`` is "is floating point", ``tensor`` ignores its ``requires_grad`` argument (tinygrad's
  ``Tensor`` has none) and the capability ``requires_grad_`` is not declared.
* tinygrad has no leaf flag and no ``grad_fn``: its public ``Tensor`` holds ``uop``, ``grad`` and
  ``is_param`` (an optimizer's mark, True for op results too). So the capability ``is_leaf`` is not
  declared and ``is_leaf``, ``has_grad_fn`` raise, rather than read the kind of tinygrad's internal
  ``UOp`` node.
* ``.grad`` is a plain attribute: ``set_grad`` assigns it, as ``t.grad = value`` does.
* ``backward`` is ``Tensor.backward(gradient)``: the graph is never freed and every gradient is a
  lazy graph that can be differentiated again, so ``retain_graph`` and ``create_graph`` ask for what
  it always does and are not passed (``retain_graph`` and ``backward_create_graph`` are declared);
  ``inputs`` is passed when set, and tinygrad's ``TypeError`` says it has no such argument.
* ``grad`` is ``Tensor.gradient(*inputs, gradient=...)`` on one output (``.grad`` untouched).
* ``vjp`` is ``Tensor.gradient`` too; nested, it gives higher order.
* in place: ``+=``, ``-=``, ``*=`` (``Tensor.assign`` of the result), ``assign`` of a constant or a
  tensor, and ``__setitem__``. An indexed or detached tensor writes through to its base once the base
  is realized (holds a buffer), so ``shares_storage`` follows tinygrad's own walk in ``assign``:
  through movement ops and ``DETACH`` to the node that holds the buffer, if there is one yet.
* ``broadcast_to`` is ``expand`` (tinygrad's public broadcast); ``sum_to_size`` is left out, as
  tinygrad has no such op.
* devices are tinygrad's, lower-cased (``CPU`` is ``cpu``).
* the optimizer is ``nn.optim.SGD``; ``zero_grad`` is its own (``.grad`` becomes None) and ``step``
  runs in ``Context(TRAINING=1)``, as tinygrad requires of an optimizer step. No hooks and no custom
  functions: tinygrad has no API for either.
"""

from __future__ import annotations

import operator
import types
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
from tinygrad import Device, Tensor, dtypes, nn
from tinygrad.helpers import Context
from tinygrad.uop.ops import GroupOp, Ops, UOp

_DTYPES = {
    name: getattr(dtypes, name)
    for name in ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                 "uint16", "uint32", "uint64", "bool")
}  # fmt: skip
_NAMES = {v: k for k, v in _DTYPES.items()}


def _setitem(a: Tensor, key: Any, value: Any) -> Tensor:
    a[key] = value
    return a


def _storage(t: Tensor) -> UOp | None:
    """The node holding ``t``'s buffer, found as tinygrad's ``assign`` finds it to write through a view:
    through movement ops and ``DETACH``; None before the tensor is realized, when a write stays local."""
    u = t.uop
    while not u.has_buffer_identity() and u.op in GroupOp.Movement | {Ops.DETACH, Ops.BITCAST}:
        u = u.src[0]
    return u if u.has_buffer_identity(after_ok=True) else None


OPS = types.SimpleNamespace(
    add=Tensor.add,
    sub=Tensor.sub,
    mul=Tensor.mul,
    div=Tensor.div,
    neg=Tensor.neg,
    pow=Tensor.pow,
    exp=Tensor.exp,
    log=Tensor.log,
    sqrt=Tensor.sqrt,
    sin=Tensor.sin,
    cos=Tensor.cos,
    tanh=Tensor.tanh,
    sigmoid=Tensor.sigmoid,
    relu=Tensor.relu,
    abs=Tensor.abs,
    maximum=Tensor.maximum,
    minimum=Tensor.minimum,
    where=Tensor.where,
    gt=operator.gt,
    clamp=lambda a, min=None, max=None: a.clamp(min, max),
    sum=lambda a, dim=None, keepdim=False: a.sum(dim, keepdim),
    mean=lambda a, dim=None, keepdim=False: a.mean(dim, keepdim),
    amax=lambda a, dim=None, keepdim=False: a.max(dim, keepdim),
    reshape=lambda a, shape: a.reshape(tuple(shape)),
    permute=lambda a, dims: a.permute(tuple(dims)),
    transpose=Tensor.transpose,
    expand=lambda a, shape: a.expand(tuple(shape)),
    broadcast_to=lambda a, shape: a.expand(tuple(shape)),
    squeeze=Tensor.squeeze,
    unsqueeze=Tensor.unsqueeze,
    matmul=Tensor.matmul,
    index=operator.getitem,
    cat=lambda ts, dim=0: ts[0].cat(*ts[1:], dim=dim),
    stack=lambda ts, dim=0: ts[0].stack(*ts[1:], dim=dim),
    softmax=lambda a, dim: a.softmax(dim),
    log_softmax=lambda a, dim: a.log_softmax(dim),
    floor=Tensor.floor,
    argmax=Tensor.argmax,
    clone=Tensor.clone,
    to_dtype=lambda a, dtype: a.cast(_DTYPES[dtype]),
    stop_gradient=Tensor.detach,
    add_=operator.iadd,
    sub_=operator.isub,
    mul_=operator.imul,
    zero_=lambda a: a.assign(0),
    copy_=Tensor.assign,
    setitem_=_setitem,
)
"""Every op of the catalog but ``sum_to_size``, which tinygrad lacks."""


def _lacks(feature: str) -> NotImplementedError:
    return NotImplementedError(f"tinygrad has no {feature}")


class TinygradAdapter:
    """tinygrad 0.14, on its CPU device."""

    name = "tinygrad"
    ops = OPS
    capabilities = frozenset(
        {
            "stateful",
            "autograd_grad",
            "backward_create_graph",
            "retain_graph",
            "grad_assign",
            "higher_order",
            "inplace",
            "views",
            "detach",
            "integer_tensors",
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "mixed_dtypes",
            "optimizer",
        }
    )
    errors = {
        "incompatible_shapes": (IndexError, r"objects cannot be broadcast to a single shape"),
        "invalid_expand": (ValueError, r"cannot broadcast"),
        "implicit_grad_nonscalar": (AssertionError, r"backward must be called on a scalar tensor"),
        "inplace_broadcast": (ValueError, r"cannot broadcast .* to new_shape"),
        # backward reshapes the gradient (ValueError) then asserts its shape; Tensor.gradient broadcasts it (RuntimeError)
        "grad_shape_mismatch": (
            (ValueError, AssertionError, RuntimeError),
            r"size mismatch, can't reshape|grad shape must match|cannot broadcast .* into",
        ),
        # Tensor.gradient's one check covers four meanings: only float tensors require grad.
        "no_grad_fn": (RuntimeError, r"only float Tensors have gradient"),
        "input_not_requiring_grad": (RuntimeError, r"only float Tensors have gradient"),
        "nonfloat_requires_grad": (RuntimeError, r"only float Tensors have gradient"),
        "nonfloat_differentiated": (RuntimeError, r"only float Tensors have gradient"),
    }

    def engine_version(self) -> str:
        return f"{version('tinygrad')} ({Device.DEFAULT})"

    def devices(self) -> Sequence[str]:
        return (Device.DEFAULT.lower(),)

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> Tensor:
        """``requires_grad`` is ignored: tinygrad differentiates every floating tensor."""
        return Tensor(np.array(array), device=device.upper(), dtype=_DTYPES[dtype])

    def numpy(self, t: Tensor) -> np.ndarray:
        return t.numpy().copy()  # tinygrad reads bfloat16 back as float32

    def dtype(self, t: Tensor) -> str:
        return _NAMES[t.dtype]

    def shape(self, t: Tensor) -> tuple[int, ...]:
        return tuple(t.shape)

    def device(self, t: Tensor) -> str:
        return str(t.device).lower()

    def vjp(
        self, fn: Callable[..., Tensor], primals: Sequence[Tensor], cotangent: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        out = fn(*primals)
        return out, out.gradient(*primals, gradient=cotangent)

    # -- stateful layer ---------------------------------------------------------------------
    def grad_of(self, t: Tensor) -> Tensor | None:
        return t.grad

    def set_grad(self, t: Tensor, value: Tensor | None) -> None:
        t.grad = value

    def is_leaf(self, t: Tensor) -> bool:
        raise _lacks("is_leaf: no leaf flag (is_param marks op results too)")

    def requires_grad(self, t: Tensor) -> bool:
        return t.is_floating_point()

    def has_grad_fn(self, t: Tensor) -> bool:
        raise _lacks("grad_fn")

    def requires_grad_(self, t: Tensor, flag: bool = True) -> Tensor:
        raise _lacks("requires_grad: every floating tensor is differentiable")

    def backward(
        self,
        t: Tensor,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[Tensor] | None = None,
    ) -> None:
        t.backward(gradient, **({} if inputs is None else {"inputs": inputs}))

    def grad(
        self,
        outputs: Tensor | Sequence[Tensor],
        inputs: Tensor | Sequence[Tensor],
        grad_outputs: Tensor | Sequence[Tensor | None] | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        allow_unused: bool | None = None,
        materialize_grads: bool = False,
    ) -> tuple[Tensor | None, ...]:
        outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        grads = [grad_outputs] if grad_outputs is None or isinstance(grad_outputs, Tensor) else list(grad_outputs)
        if len(outputs) != 1 or len(grads) != 1:
            raise _lacks("gradient of several outputs at once: Tensor.gradient takes one")
        return tuple(outputs[0].gradient(*inputs, gradient=grads[0]))

    def detach(self, t: Tensor) -> Tensor:
        return t.detach()

    def optimizer(self, params: Sequence[Tensor], lr: float) -> nn.optim.Optimizer:
        return nn.optim.SGD(list(params), lr=lr)

    def zero_grad(self, opt: nn.optim.Optimizer) -> None:
        opt.zero_grad()

    def step(self, opt: nn.optim.Optimizer) -> None:
        with Context(TRAINING=1):  # tinygrad's optimizers step only in training mode
            opt.step()

    def shares_storage(self, a: Tensor, b: Tensor) -> bool:
        storage = _storage(a)
        return storage is not None and storage is _storage(b)
