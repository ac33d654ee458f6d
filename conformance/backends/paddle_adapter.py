"""Adapter for PaddlePaddle (https://www.paddlepaddle.org.cn), the CPU build, in dynamic-graph mode.

Self-contained on purpose: it imports only paddle, NumPy and the standard library, so the suite
can inline this file into a standalone reproduction script.

Thin by design: every method is one of paddle's own calls, so a difference from PyTorch's rules
shows up as a failing rule, never as a fix here. The mapping, in paddle's terms:

* ``requires_grad`` is ``not stop_gradient``; ``requires_grad_`` is paddle's own ``requires_grad_``
  (it sets ``stop_gradient``); ``is_leaf`` and ``.grad`` (readable and assignable) are paddle's.
* ``has_grad_fn`` is ``not is_leaf``: paddle hangs a leaf's accumulation node (``GradNodeAccumulation``)
  on its ``grad_fn`` (where torch keeps ``AccumulateGrad`` out of ``grad_fn``), so ``grad_fn is not None``
  holds for every leaf made by ``to_tensor``; paddle's ``is_leaf`` tells a leaf from an op's result.
* ``backward`` is ``Tensor.backward(grad_tensor, retain_graph)``; ``backward_many`` is
  ``paddle.autograd.backward``; ``grad`` is ``paddle.grad``. Arguments paddle lacks
  (``create_graph`` and ``inputs`` on backward, ``materialize_grads``) are passed on only when set,
  so paddle's own ``TypeError`` says it has no such argument; ``backward_create_graph`` and
  ``backward_inputs`` are not declared.
* ``retain_grad`` is ``retain_grads()``; paddle has no ``retains_grad`` query, so the ``retains_grad``
  capability is not declared (the method reads the attribute all the same: paddle's own ``AttributeError``).
* ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``is_grad_enabled`` are paddle's.
* ``version`` is ``inplace_version``; ``shares_storage`` is ``_is_shared_buffer_with`` (paddle's
  only query of whether two tensors hold one buffer; ``data_ptr`` differs for a view at an offset).
* ``vjp`` is ``paddle.grad`` with ``allow_unused=True``, an unused primal getting zeros, and
  ``create_graph=True`` only inside an enclosing vjp (so it nests for higher order): as a paddle
  user writes a first-order gradient, since paddle raises for ``create_graph`` through an op that
  has no double-grad kernel.

* hooks are ``register_hook`` (its handle's ``remove``); a custom function is a ``PyLayer`` made
  from the forward and backward (``saved_tensors`` is ``ctx.saved_tensor()``; paddle has no
  ``needs_input_grad``, so that raises paddle's ``AttributeError``, and no once-differentiable mark, so the
  ``once_differentiable`` capability is not declared); the optimizer is ``paddle.optimizer.SGD``, ``zero_grad`` its ``clear_grad()`` (zeros, by
  paddle's default).

Ops: tensor-number arithmetic goes through paddle's operators (``paddle.add`` and friends accept
only tensors); the in-place ``add_``, ``subtract_`` and ``multiply_`` take only a tensor too (``y: Tensor``;
they read ``y.shape``), so a Python number is handed to them as a 0-d tensor of it, in the target's dtype
when that is floating, as paddle's own operators read a number (``x * 2.0`` keeps ``x``'s dtype);
``sum_to_size`` is left out, as paddle has no such op.

Declared missing: float16 and bfloat16, because the CPU build registers too few kernels for them
(``add``, ``matmul``, ``tanh``, ``mean``, ``where`` ... raise ``NotFound``: a float16 tensor exists
but cannot be computed with); ``inference_mode`` (paddle has none); ``backward_inputs`` and
``backward_create_graph`` (paddle's ``Tensor.backward`` has neither ``inputs`` nor ``create_graph``; only
``paddle.grad`` has ``create_graph``); ``retains_grad`` (no such query); ``devices`` (the CPU build has one).
"""

from __future__ import annotations

import operator
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F


def _setitem(a: paddle.Tensor, key: Any, value: Any) -> paddle.Tensor:
    a[key] = value
    return a


OPS = types.SimpleNamespace(
    add=operator.add,
    sub=operator.sub,
    mul=operator.mul,
    div=operator.truediv,
    neg=paddle.neg,
    pow=paddle.pow,
    exp=paddle.exp,
    log=paddle.log,
    sqrt=paddle.sqrt,
    sin=paddle.sin,
    cos=paddle.cos,
    tanh=paddle.tanh,
    sigmoid=F.sigmoid,
    relu=F.relu,
    abs=paddle.abs,
    maximum=paddle.maximum,
    minimum=paddle.minimum,
    where=paddle.where,
    gt=operator.gt,
    clamp=lambda a, min=None, max=None: paddle.clip(a, min, max),
    sum=lambda a, dim=None, keepdim=False: paddle.sum(a, axis=dim, keepdim=keepdim),
    mean=lambda a, dim=None, keepdim=False: paddle.mean(a, axis=dim, keepdim=keepdim),
    amax=lambda a, dim=None, keepdim=False: paddle.amax(a, axis=dim, keepdim=keepdim),
    reshape=lambda a, shape: paddle.reshape(a, list(shape)),
    permute=lambda a, dims: paddle.transpose(a, list(dims)),
    transpose=paddle.swapaxes,
    expand=lambda a, shape: paddle.expand(a, list(shape)),
    broadcast_to=lambda a, shape: paddle.broadcast_to(a, list(shape)),
    squeeze=lambda a, dim: paddle.squeeze(a, axis=dim),
    unsqueeze=paddle.unsqueeze,
    matmul=paddle.matmul,
    index=lambda a, key: a[key],
    cat=lambda ts, dim=0: paddle.concat(list(ts), axis=dim),
    stack=lambda ts, dim=0: paddle.stack(list(ts), axis=dim),
    softmax=lambda a, dim: F.softmax(a, axis=dim),
    log_softmax=lambda a, dim: F.log_softmax(a, axis=dim),
    floor=paddle.floor,
    argmax=paddle.argmax,
    clone=paddle.clone,
    to_dtype=lambda a, dtype: a.astype(dtype),
    stop_gradient=paddle.Tensor.detach,
    add_=lambda a, b: a.add_(_tensor_operand(a, b)),
    sub_=lambda a, b: a.subtract_(_tensor_operand(a, b)),
    mul_=lambda a, b: a.multiply_(_tensor_operand(a, b)),
    zero_=lambda a: a.zero_(),
    copy_=lambda a, b: a.copy_(b),
    setitem_=_setitem,
)
"""Every op of the catalog but ``sum_to_size``, which paddle lacks."""


def _tensor_operand(a: paddle.Tensor, b: Any) -> Any:
    """``b`` as paddle's in-place methods take it: a tensor. A Python number becomes a 0-d tensor of it, in
    ``a``'s dtype when ``a`` is floating (as paddle's operators read a number: ``x * 2.0`` keeps ``x``'s dtype),
    else in paddle's default dtype for it."""
    if isinstance(b, paddle.Tensor) or not isinstance(b, (int, float)):
        return b
    return paddle.to_tensor(b, dtype=a.dtype if a.is_floating_point() else None, place=a.place)


def _given(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments that were set: the others are left to paddle, which may not have them."""
    return {k: v for k, v in kwargs.items() if v is not None and v is not False}


_NOT_IN_GRAPH = (ValueError, r"input does not appear in the backward graph")
"""paddle.grad's one error for an input the output does not reach: unused, not requiring grad, or
an output that is itself out of any graph."""


class PaddleAdapter:
    """PaddlePaddle 3, dynamic graph, on the CPU."""

    name = "paddle"
    ops = OPS
    op_gaps = {
        # "(Unavailable) The Op amax_grad doesn't have any grad op": no double-backward kernel
        "higher_order": frozenset({"amax", "floor", "log_softmax", "softmax", "index.slices", "pow.tensors"})
    }
    capabilities = frozenset(
        {
            "stateful",
            "is_leaf",
            "requires_grad_",
            "autograd_grad",
            "backward_many",
            "allow_unused",
            "retain_grad",
            "grad_assign",
            "no_grad",
            "enable_grad",
            "set_grad_enabled",
            "higher_order",
            "graph_freeing",
            "retain_graph",
            "inplace",
            "views",
            "version_counter",
            "detach",
            "detach_",
            "integer_tensors",
            "float32",
            "float64",
            "mixed_dtypes",
            "hooks",
            "custom_function",
            "optimizer",
        }
    )
    errors = {
        "incompatible_shapes": (ValueError, r"Broadcast dimension mismatch"),
        "invalid_expand": (
            ValueError,
            r"non-singleton dimension does not match|for non-existing dimensions must be positive"
            r"|must be greater than or equal to the rank",
        ),
        "inplace_broadcast": (ValueError, r"is different from that of inplace tensor"),
        "grad_shape_mismatch": (AssertionError, r"Tensor shape not match"),
        "grad_count_mismatch": (AssertionError, r"length of grad_(tensors|outputs) must be equal to"),
        "no_grad_fn": _NOT_IN_GRAPH,
        "input_not_requiring_grad": _NOT_IN_GRAPH,
        "unused_input": _NOT_IN_GRAPH,
        "graph_freed": (SystemError, r"TensorWrappers of \w+ do not exist"),
        "modified_inplace": (RuntimeError, r"modified by an inplace operation"),
        # an in-place op says "Leaf Var", a setitem "Leaf Tensor": the same error (paddle has no views of a leaf)
        "leaf_inplace": (ValueError, r"Leaf (Var|Tensor) .* that doesn't stop gradient can't use inplace strategy"),
        "grad_assign_mismatch": ((ValueError, RuntimeError), r"must be Tensor, but got|has different data type"),
        "hook_without_grad": (RuntimeError, r"Cannot register hook on a tensor that stop gradient"),
    }

    def __init__(self) -> None:
        self._depth = 0
        """How many vjp calls are running their function: only inside one must a vjp's gradients be
        differentiable (``create_graph``), and paddle refuses ``create_graph`` for an op with no
        double-grad kernel, so a first-order vjp must not ask for it."""

    def engine_version(self) -> str:
        return paddle.__version__

    def devices(self) -> Sequence[str]:
        return ("cpu",)

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> paddle.Tensor:
        return paddle.to_tensor(np.array(array, dtype=dtype), place=device, stop_gradient=not requires_grad)

    def numpy(self, t: paddle.Tensor) -> np.ndarray:
        return t.numpy()

    def dtype(self, t: paddle.Tensor) -> str:
        return str(t.dtype).removeprefix("paddle.")

    def shape(self, t: paddle.Tensor) -> tuple[int, ...]:
        return tuple(t.shape)

    def device(self, t: paddle.Tensor) -> str:
        return "cpu" if t.place.is_cpu_place() else str(t.place)

    def vjp(
        self, fn: Callable[..., paddle.Tensor], primals: Sequence[paddle.Tensor], cotangent: paddle.Tensor
    ) -> tuple[paddle.Tensor, list[paddle.Tensor]]:
        with paddle.enable_grad():
            inner = [p if not p.stop_gradient else p.detach().requires_grad_(True) for p in primals]
            self._depth += 1
            try:
                out = fn(*inner)
            finally:
                self._depth -= 1
            if out.stop_gradient:  # fn is constant in its primals (e.g. the gradient of a linear fn)
                return out, [paddle.zeros_like(p) for p in inner]
            grads = paddle.grad(out, inner, cotangent, create_graph=self._depth > 0, allow_unused=True)
        return out, [paddle.zeros_like(p) if g is None else g for p, g in zip(inner, grads, strict=True)]

    # -- stateful layer ---------------------------------------------------------------------
    def grad_of(self, t: paddle.Tensor) -> paddle.Tensor | None:
        return t.grad

    def set_grad(self, t: paddle.Tensor, value: paddle.Tensor | None) -> None:
        t.grad = value

    def is_leaf(self, t: paddle.Tensor) -> bool:
        return t.is_leaf

    def requires_grad(self, t: paddle.Tensor) -> bool:
        return not t.stop_gradient

    def has_grad_fn(self, t: paddle.Tensor) -> bool:
        return not t.is_leaf  # a leaf's grad_fn is its GradNodeAccumulation, not an op's node

    def requires_grad_(self, t: paddle.Tensor, flag: bool = True) -> paddle.Tensor:
        return t.requires_grad_(flag)

    def backward(
        self,
        t: paddle.Tensor,
        gradient: paddle.Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[paddle.Tensor] | None = None,
    ) -> None:
        t.backward(gradient, **_given(retain_graph=retain_graph, create_graph=create_graph, inputs=inputs))

    def backward_many(
        self,
        tensors: Sequence[paddle.Tensor],
        grad_tensors: Sequence[paddle.Tensor | None] | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        paddle.autograd.backward(
            list(tensors), grad_tensors, **_given(retain_graph=retain_graph, create_graph=create_graph)
        )

    def grad(
        self,
        outputs: Any,
        inputs: Any,
        grad_outputs: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        allow_unused: bool | None = None,
        materialize_grads: bool = False,
    ) -> tuple[paddle.Tensor | None, ...]:
        given = _given(retain_graph=retain_graph, allow_unused=allow_unused, materialize_grads=materialize_grads)
        return tuple(paddle.grad(outputs, inputs, grad_outputs, create_graph=create_graph, **given))

    def retain_grad(self, t: paddle.Tensor) -> None:
        t.retain_grads()

    def retains_grad(self, t: paddle.Tensor) -> bool:
        return t.retains_grad  # not declared (``retains_grad``): paddle's own AttributeError says it has none

    def detach(self, t: paddle.Tensor) -> paddle.Tensor:
        return t.detach()

    def version(self, t: paddle.Tensor) -> int:
        return t.inplace_version

    def detach_(self, t: paddle.Tensor) -> paddle.Tensor:
        return t.detach_()

    def shares_storage(self, a: paddle.Tensor, b: paddle.Tensor) -> bool:
        return a._is_shared_buffer_with(b)

    def no_grad(self) -> Any:
        return paddle.no_grad()

    def enable_grad(self) -> Any:
        return paddle.enable_grad()

    def set_grad_enabled(self, flag: bool) -> Any:
        return paddle.set_grad_enabled(flag)

    def is_grad_enabled(self) -> bool:
        return paddle.is_grad_enabled()

    # -- hooks, custom functions (PyLayer), training -------------------------------------------
    def register_hook(self, t: paddle.Tensor, fn: Callable[[paddle.Tensor], Any]) -> Any:
        return t.register_hook(fn)

    def remove_hook(self, handle: Any) -> None:
        handle.remove()

    def function(
        self, forward: Callable[..., Any], backward: Callable[..., Any], once_differentiable: bool = False
    ) -> Any:
        if once_differentiable:  # not declared: the suite never asks for it
            raise NotImplementedError("paddle's PyLayer has no once-differentiable mark")
        body = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
        return type("Custom", (paddle.autograd.PyLayer,), body).apply

    def save_for_backward(self, ctx: Any, *tensors: paddle.Tensor) -> None:
        ctx.save_for_backward(*tensors)

    def saved_tensors(self, ctx: Any) -> tuple[paddle.Tensor, ...]:
        return tuple(ctx.saved_tensor())

    def needs_input_grad(self, ctx: Any) -> tuple[bool, ...]:
        return tuple(ctx.needs_input_grad)  # paddle's PyLayerContext has none: its AttributeError says so

    def mark_non_differentiable(self, ctx: Any, *outputs: paddle.Tensor) -> None:
        ctx.mark_non_differentiable(*outputs)

    def optimizer(self, params: Sequence[paddle.Tensor], lr: float) -> paddle.optimizer.SGD:
        return paddle.optimizer.SGD(learning_rate=lr, parameters=list(params))

    def zero_grad(self, opt: paddle.optimizer.SGD) -> None:
        opt.clear_grad()  # paddle's default: set_to_zero=True

    def step(self, opt: paddle.optimizer.SGD) -> None:
        opt.step()
