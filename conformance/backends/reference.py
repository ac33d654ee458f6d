"""Adapter for the reference engine (``conformance.reference``), the built-in backend "numpy".

Self-contained on purpose: it imports only NumPy and the engine, so the suite can inline this file
into a standalone reproduction script. Every error meaning maps to one exception class of the
engine, so no message is matched.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import conformance.reference as ref
from conformance.reference import engine, errors, optim

OPS = types.SimpleNamespace(**ref.ops.CATALOG)


class ReferenceAdapter:
    """The reference engine, on the CPU and on its simulated second device "sim"."""

    name = "numpy"
    ops = OPS
    capabilities = frozenset(
        {
            "stateful",
            "is_leaf",
            "requires_grad_",
            "autograd_grad",
            "backward_inputs",
            "backward_many",
            "backward_create_graph",
            "allow_unused",
            "materialize_grads",
            "retain_grad",
            "retains_grad",
            "grad_assign",
            "no_grad",
            "enable_grad",
            "set_grad_enabled",
            "inference_mode",
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
            "forward_mode",
            "float16",
            "mixed_dtypes",
            "devices",
            "hooks",
            "post_accumulate_hooks",
            "custom_function",
            "needs_input_grad",
            "once_differentiable",
            "optimizer",
            "custom_vjp",
            "functional_optimizer",
        }
    )
    errors = {
        "incompatible_shapes": (errors.IncompatibleShapesError, None),
        "invalid_expand": (errors.InvalidExpandError, None),
        "inplace_broadcast": (errors.InplaceBroadcastError, None),
        "implicit_grad_nonscalar": (errors.ImplicitGradError, None),
        "grad_shape_mismatch": (errors.GradShapeError, None),
        "grad_count_mismatch": (errors.GradCountError, None),
        "no_grad_fn": (errors.NoGradFnError, None),
        "input_not_requiring_grad": (errors.InputNotRequiringGradError, None),
        "unused_input": (errors.UnusedInputError, None),
        "graph_freed": (errors.GraphFreedError, None),
        "modified_inplace": (errors.ModifiedInplaceError, None),
        "leaf_inplace": (errors.LeafInplaceError, None),
        "leaf_view_inplace": (errors.LeafViewInplaceError, None),
        "nonfloat_requires_grad": (errors.NonFloatRequiresGradError, None),
        "nonleaf_requires_grad": (errors.NonLeafRequiresGradError, None),
        "retain_grad_without_grad": (errors.RetainGradError, None),
        "empty_inputs": (errors.EmptyInputsError, None),
        "invalid_argument": (errors.InvalidArgumentError, None),
        "grad_assign_mismatch": (errors.GradAssignError, None),
        "device_mismatch": (errors.DeviceMismatchError, None),
        "detach_view": (errors.DetachViewError, None),
        "inference_tensor_saved": (errors.InferenceTensorSavedError, None),
        "hook_without_grad": (errors.HookWithoutGradError, None),
        "hook_shape_mismatch": (errors.HookShapeError, None),
        "once_differentiable": (errors.OnceDifferentiableError, None),
        "nonfloat_differentiated": (errors.NonFloatRequiresGradError, None),
    }

    def engine_version(self) -> str:
        return f"reference {ref.__version__} (numpy {np.__version__})"

    def devices(self) -> Sequence[str]:
        return engine.DEVICES

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> ref.Tensor:
        return ref.tensor(array, dtype, requires_grad, device)

    def numpy(self, t: ref.Tensor) -> np.ndarray:
        return t.numpy()

    def dtype(self, t: ref.Tensor) -> str:
        return t.dtype.name

    def shape(self, t: ref.Tensor) -> tuple[int, ...]:
        return t.shape

    def device(self, t: ref.Tensor) -> str:
        return t.device

    def vjp(
        self, fn: Callable[..., ref.Tensor], primals: Sequence[ref.Tensor], cotangent: ref.Tensor
    ) -> tuple[ref.Tensor, list[ref.Tensor]]:
        with ref.enable_grad():
            inner = [p if p.requires_grad else p.detach().requires_grad_() for p in primals]
            out = fn(*inner)
            if not out.requires_grad:  # fn is constant in its primals (e.g. the gradient of a linear fn)
                return out, [ref.ops.zeros(p) for p in inner]
            grads = ref.grad(out, inner, cotangent, create_graph=True, allow_unused=True, materialize_grads=True)
        return out, list(grads)

    def jvp(
        self, fn: Callable[..., ref.Tensor], primals: Sequence[ref.Tensor], tangents: Sequence[ref.Tensor]
    ) -> tuple[ref.Tensor, ref.Tensor]:
        """The engine is reverse-mode only, so its forward mode is the double-vjp trick, on its own higher
        order: ``u -> J^T u`` is linear in ``u``, and the vjp of ``u -> sum_i <(J^T u)_i, t_i>`` is ``J t``."""
        with ref.enable_grad():
            out = fn(*primals)
            u = ref.ops.zeros(out).requires_grad_()

            def paired(cotangent: ref.Tensor) -> ref.Tensor:
                _, grads = self.vjp(fn, primals, cotangent)
                terms = [ref.ops.sum(ref.ops.mul(g, t)) for g, t in zip(grads, tangents)]
                total = terms[0]
                for term in terms[1:]:
                    total = ref.ops.add(total, term)
                return ref.ops.to_dtype(total, out.dtype)

            one = ref.tensor(np.ones(()), out.dtype, device=out.device)
            _, (tangent,) = self.vjp(paired, [u], one)
        return out, tangent

    # -- stateful layer ---------------------------------------------------------------------
    def grad_of(self, t: ref.Tensor) -> ref.Tensor | None:
        return t.grad

    def set_grad(self, t: ref.Tensor, value: ref.Tensor | None) -> None:
        t.grad = value

    def is_leaf(self, t: ref.Tensor) -> bool:
        return t.is_leaf

    def requires_grad(self, t: ref.Tensor) -> bool:
        return t.requires_grad

    def has_grad_fn(self, t: ref.Tensor) -> bool:
        return t.grad_fn is not None

    def requires_grad_(self, t: ref.Tensor, flag: bool = True) -> ref.Tensor:
        return t.requires_grad_(flag)

    def backward(
        self,
        t: ref.Tensor,
        gradient: ref.Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[ref.Tensor] | None = None,
    ) -> None:
        t.backward(gradient, retain_graph, create_graph, inputs)

    def backward_many(
        self,
        tensors: Sequence[ref.Tensor],
        grad_tensors: Sequence[ref.Tensor | None] | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        ref.backward(tensors, grad_tensors, retain_graph, create_graph)

    def grad(
        self,
        outputs: Any,
        inputs: Any,
        grad_outputs: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        allow_unused: bool | None = None,
        materialize_grads: bool = False,
    ) -> tuple[ref.Tensor | None, ...]:
        return ref.grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused, materialize_grads)

    def retain_grad(self, t: ref.Tensor) -> None:
        t.retain_grad()

    def retains_grad(self, t: ref.Tensor) -> bool:
        return t.retains_grad

    def detach(self, t: ref.Tensor) -> ref.Tensor:
        return t.detach()

    def version(self, t: ref.Tensor) -> int:
        return t._version

    def is_inference(self, t: ref.Tensor) -> bool:
        return t.is_inference()

    def detach_(self, t: ref.Tensor) -> ref.Tensor:
        return t.detach_()

    def shares_storage(self, a: ref.Tensor, b: ref.Tensor) -> bool:
        return _storage(a.array) is _storage(b.array)

    def no_grad(self) -> Any:
        return ref.no_grad()

    def enable_grad(self) -> Any:
        return ref.enable_grad()

    def set_grad_enabled(self, flag: bool) -> Any:
        return ref.set_grad_enabled(flag)

    def is_grad_enabled(self) -> bool:
        return ref.is_grad_enabled()

    def inference_mode(self) -> Any:
        return ref.inference_mode()

    # -- hooks, custom Functions, training ----------------------------------------------------
    def register_hook(self, t: ref.Tensor, fn: Callable[[ref.Tensor], Any]) -> engine.RemovableHandle:
        return t.register_hook(fn)

    def register_post_accumulate_grad_hook(
        self, t: ref.Tensor, fn: Callable[[ref.Tensor], None]
    ) -> engine.RemovableHandle:
        return t.register_post_accumulate_grad_hook(fn)

    def remove_hook(self, handle: engine.RemovableHandle) -> None:
        handle.remove()

    def function(
        self, forward: Callable[..., Any], backward: Callable[..., Any], once_differentiable: bool = False
    ) -> Any:
        return engine.Function(forward, backward, once_differentiable)

    def save_for_backward(self, ctx: engine.FunctionCtx, *tensors: ref.Tensor) -> None:
        ctx.save_for_backward(*tensors)

    def saved_tensors(self, ctx: engine.FunctionCtx) -> tuple[ref.Tensor, ...]:
        return ctx.saved_tensors

    def needs_input_grad(self, ctx: engine.FunctionCtx) -> tuple[bool, ...]:
        return ctx.needs_input_grad

    def mark_non_differentiable(self, ctx: engine.FunctionCtx, *outputs: ref.Tensor) -> None:
        ctx.mark_non_differentiable(*outputs)

    def optimizer(self, params: Sequence[ref.Tensor], lr: float) -> optim.SGD:
        return optim.SGD(params, lr)

    def zero_grad(self, opt: optim.SGD) -> None:
        opt.zero_grad()

    def step(self, opt: optim.SGD) -> None:
        opt.step()

    # -- functional extensions: custom_vjp, sgd_step --------------------------------------------
    def custom_vjp(
        self, forward: Callable[..., ref.Tensor], vjp: Callable[..., Sequence[ref.Tensor | None]]
    ) -> Callable[..., ref.Tensor]:
        """A custom ``Function`` that saves the inputs and the output for its backward, which is ``vjp``."""

        def op_forward(ctx: engine.FunctionCtx, *inputs: ref.Tensor) -> ref.Tensor:
            output = forward(*inputs)
            ctx.save_for_backward(*inputs, output)
            return output

        def op_backward(ctx: engine.FunctionCtx, cotangent: ref.Tensor) -> tuple[ref.Tensor | None, ...]:
            *inputs, output = ctx.saved_tensors
            return tuple(vjp(tuple(inputs), output, cotangent))

        return engine.Function(op_forward, op_backward, name="CustomVJP")

    def sgd_step(self, params: Sequence[ref.Tensor], grads: Sequence[ref.Tensor], lr: float) -> list[ref.Tensor]:
        return optim.sgd_step(params, grads, lr)


def _storage(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory (NumPy points a view's ``base`` at the owner)."""
    return array if array.base is None else _storage(array.base)
