"""PyTorch adapter.

Self-contained on purpose: it imports only torch, NumPy and the standard library, so the suite
can inline this file into a standalone reproduction script.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _opt_dim(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Wrap a reduction so ``dim=None`` means all dims, as in NumPy."""

    def reduce(a: torch.Tensor, dim: Any = None, keepdim: bool = False) -> torch.Tensor:
        if dim is None:
            dim = tuple(range(a.dim()))
        return fn(a, dim=dim, keepdim=keepdim)

    return reduce


def _index(a: torch.Tensor, key: Any) -> torch.Tensor:
    if isinstance(key, tuple):
        key = tuple(torch.as_tensor(k) if isinstance(k, (list, np.ndarray)) else k for k in key)
    elif isinstance(key, (list, np.ndarray)):
        key = torch.as_tensor(key)
    return a[key]


def _setitem(a: torch.Tensor, key: Any, value: Any) -> torch.Tensor:
    a[key] = value
    return a


OPS = types.SimpleNamespace(
    add=torch.add,
    sub=torch.sub,
    mul=torch.mul,
    div=torch.div,
    neg=torch.neg,
    pow=torch.pow,
    exp=torch.exp,
    log=torch.log,
    sqrt=torch.sqrt,
    sin=torch.sin,
    cos=torch.cos,
    tanh=torch.tanh,
    sigmoid=torch.sigmoid,
    relu=torch.relu,
    abs=torch.abs,
    maximum=torch.maximum,
    minimum=torch.minimum,
    where=torch.where,
    gt=torch.gt,
    clamp=torch.clamp,
    sum=_opt_dim(torch.sum),
    mean=_opt_dim(torch.mean),
    amax=_opt_dim(torch.amax),
    reshape=lambda a, shape: torch.reshape(a, tuple(shape)),
    permute=lambda a, dims: torch.permute(a, tuple(dims)),
    transpose=torch.transpose,
    expand=lambda a, shape: a.expand(tuple(shape)),
    broadcast_to=lambda a, shape: torch.broadcast_to(a, tuple(shape)),
    sum_to_size=lambda a, shape: a.sum_to_size(tuple(shape)),
    squeeze=torch.squeeze,
    unsqueeze=torch.unsqueeze,
    matmul=torch.matmul,
    index=_index,
    cat=lambda ts, dim=0: torch.cat(list(ts), dim=dim),
    stack=lambda ts, dim=0: torch.stack(list(ts), dim=dim),
    softmax=lambda a, dim: torch.softmax(a, dim=dim),
    log_softmax=lambda a, dim: torch.log_softmax(a, dim=dim),
    floor=torch.floor,
    argmax=torch.argmax,
    clone=torch.clone,
    to_dtype=lambda a, dtype: a.to(_DTYPES[dtype]),
    stop_gradient=torch.Tensor.detach,
    add_=lambda a, b: a.add_(b),
    sub_=lambda a, b: a.sub_(b),
    mul_=lambda a, b: a.mul_(b),
    zero_=lambda a: a.zero_(),
    copy_=lambda a, b: a.copy_(b),
    setitem_=lambda a, key, value: _setitem(a, key, value),
)


def with_ops(**overrides: Callable[..., Any]) -> types.SimpleNamespace:
    """The torch ops with some replaced: how a variant adapter (or a deliberately broken one) starts."""
    return types.SimpleNamespace(**{**vars(OPS), **overrides})


class TorchAdapter:
    """PyTorch, eager mode."""

    name = "torch"
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
            "bfloat16",
            "mixed_dtypes",
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
        "incompatible_shapes": (RuntimeError, r"must match the size of tensor b .* at non-singleton"),
        "invalid_expand": (
            RuntimeError,
            r"expanded size of the tensor|number of sizes provided|is not expandable to size",
        ),
        "inplace_broadcast": (RuntimeError, r"doesn't match the broadcast shape"),
        "implicit_grad_nonscalar": (RuntimeError, r"grad can be implicitly created only for"),
        "grad_shape_mismatch": (RuntimeError, r"Mismatch in shape"),
        "grad_count_mismatch": (RuntimeError, r"got \d+ tensors and \d+ gradients"),
        "no_grad_fn": (RuntimeError, r"does not require grad and does not have a grad_fn"),
        "input_not_requiring_grad": (RuntimeError, r"differentiated Tensors does not require grad"),
        "unused_input": (RuntimeError, r"appears to not have been used in the graph"),
        "graph_freed": (RuntimeError, r"backward through the graph a second time"),
        "modified_inplace": (RuntimeError, r"modified by an inplace operation"),
        "leaf_inplace": (RuntimeError, r"a leaf Variable that requires grad is being used in an in-place"),
        "leaf_view_inplace": (RuntimeError, r"a view of a leaf Variable that requires grad"),
        "nonfloat_requires_grad": (RuntimeError, r"(?i)only Tensors of floating point.*can require gradients"),
        "nonleaf_requires_grad": (RuntimeError, r"only change requires_grad flags of leaf variables"),
        "retain_grad_without_grad": (RuntimeError, r"can't retain_grad on Tensor that has requires_grad=False"),
        "empty_inputs": (RuntimeError, r"cannot be empty"),
        "invalid_argument": ((ValueError, TypeError), None),
        "grad_assign_mismatch": ((RuntimeError, TypeError), r"assign(ed)? (a )?grad"),
        "device_mismatch": (RuntimeError, r"(?i)device"),
        "detach_view": (RuntimeError, r"Can't detach views in-place"),
        "inference_tensor_saved": (RuntimeError, r"Inference tensors cannot be saved for backward"),
        "hook_without_grad": (RuntimeError, r"cannot register a hook on a tensor that doesn't require gradient"),
        "hook_shape_mismatch": (RuntimeError, r"hook '.*' has changed the size of value"),
        "once_differentiable": (
            RuntimeError,
            r"differentiate twice a function that was marked with @once_differentiable",
        ),
        "nonfloat_differentiated": (RuntimeError, r"(?i)only Tensors of floating point.*can require gradients"),
    }

    def __init__(self) -> None:
        if torch.cuda.is_available():  # device rules need a second device
            self.capabilities = type(self).capabilities | {"devices"}

    def engine_version(self) -> str:
        return torch.__version__

    def devices(self) -> Sequence[str]:
        return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> torch.Tensor:
        t = torch.from_numpy(np.array(array)).to(device=device, dtype=_DTYPES[dtype])
        return t.requires_grad_(requires_grad) if requires_grad else t

    def numpy(self, t: torch.Tensor) -> np.ndarray:
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy(force=True).copy()  # force: a ZeroTensor (abs's second derivative) has no plain storage

    def dtype(self, t: torch.Tensor) -> str:
        return _NAMES[t.dtype]

    def shape(self, t: torch.Tensor) -> tuple[int, ...]:
        return tuple(t.shape)

    def device(self, t: torch.Tensor) -> str:
        return t.device.type

    def vjp(
        self, fn: Callable[..., torch.Tensor], primals: Sequence[torch.Tensor], cotangent: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.enable_grad():
            inner = [p if p.requires_grad else p.detach().requires_grad_() for p in primals]
            out = fn(*inner)
            if not out.requires_grad:  # fn is constant in its primals (e.g. the gradient of a linear fn)
                return out, [torch.zeros_like(p) for p in inner]
            grads = torch.autograd.grad(
                out, inner, cotangent, create_graph=True, allow_unused=True, materialize_grads=True
            )
        return out, list(grads)

    def jvp(
        self, fn: Callable[..., torch.Tensor], primals: Sequence[torch.Tensor], tangents: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward-mode AD with dual tensors (``torch.autograd.forward_ad``), not ``torch.func.jvp``: dual
        tensors compose with the ``torch.autograd.grad`` inside ``vjp`` (forward-over-reverse), which a
        ``torch.func`` transform refuses. Primals are made to require grad, so a ``vjp`` inside ``fn``
        differentiates the dual tensors themselves and keeps their tangents."""
        with fwAD.dual_level(), torch.enable_grad():
            duals = [
                fwAD.make_dual(p if p.requires_grad else p.detach().requires_grad_(), t)
                for p, t in zip(primals, tangents)
            ]
            out = fn(*duals)
            value, tangent = fwAD.unpack_dual(out)
        return value, torch.zeros_like(value) if tangent is None else tangent

    # -- stateful layer ---------------------------------------------------------------------
    def grad_of(self, t: torch.Tensor) -> torch.Tensor | None:
        if not t.is_leaf and not t.retains_grad:
            return None  # torch warns on this access; the value is what the rules speak of
        return t.grad

    def set_grad(self, t: torch.Tensor, value: torch.Tensor | None) -> None:
        t.grad = value

    def is_leaf(self, t: torch.Tensor) -> bool:
        return t.is_leaf

    def requires_grad(self, t: torch.Tensor) -> bool:
        return t.requires_grad

    def has_grad_fn(self, t: torch.Tensor) -> bool:
        return t.grad_fn is not None

    def requires_grad_(self, t: torch.Tensor, flag: bool = True) -> torch.Tensor:
        return t.requires_grad_(flag)

    def backward(
        self,
        t: torch.Tensor,
        gradient: torch.Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[torch.Tensor] | None = None,
    ) -> None:
        t.backward(gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def backward_many(
        self,
        tensors: Sequence[torch.Tensor],
        grad_tensors: Sequence[torch.Tensor | None] | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        torch.autograd.backward(list(tensors), grad_tensors, retain_graph=retain_graph, create_graph=create_graph)

    def grad(
        self,
        outputs: Any,
        inputs: Any,
        grad_outputs: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        allow_unused: bool | None = None,
        materialize_grads: bool = False,
    ) -> tuple[torch.Tensor | None, ...]:
        return torch.autograd.grad(
            outputs,
            inputs,
            grad_outputs,
            retain_graph=retain_graph,
            create_graph=create_graph,
            allow_unused=allow_unused,
            materialize_grads=materialize_grads,
        )

    def retain_grad(self, t: torch.Tensor) -> None:
        t.retain_grad()

    def retains_grad(self, t: torch.Tensor) -> bool:
        return t.retains_grad

    def detach(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach()

    def version(self, t: torch.Tensor) -> int:
        return t._version

    def is_inference(self, t: torch.Tensor) -> bool:
        return t.is_inference()

    def detach_(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach_()

    def shares_storage(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()

    def no_grad(self) -> Any:
        return torch.no_grad()

    def enable_grad(self) -> Any:
        return torch.enable_grad()

    def set_grad_enabled(self, flag: bool) -> Any:
        return torch.set_grad_enabled(flag)

    def is_grad_enabled(self) -> bool:
        return torch.is_grad_enabled()

    def inference_mode(self) -> Any:
        return torch.inference_mode()

    # -- hooks, custom Functions, training ----------------------------------------------------
    def register_hook(self, t: torch.Tensor, fn: Callable[[torch.Tensor], Any]) -> Any:
        return t.register_hook(fn)

    def register_post_accumulate_grad_hook(self, t: torch.Tensor, fn: Callable[[torch.Tensor], None]) -> Any:
        return t.register_post_accumulate_grad_hook(fn)

    def remove_hook(self, handle: Any) -> None:
        handle.remove()

    def function(
        self, forward: Callable[..., Any], backward: Callable[..., Any], once_differentiable: bool = False
    ) -> Any:
        if once_differentiable:
            backward = torch.autograd.function.once_differentiable(backward)
        body = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
        return type("Custom", (torch.autograd.Function,), body).apply

    def save_for_backward(self, ctx: Any, *tensors: torch.Tensor) -> None:
        ctx.save_for_backward(*tensors)

    def saved_tensors(self, ctx: Any) -> tuple[torch.Tensor, ...]:
        return ctx.saved_tensors

    def needs_input_grad(self, ctx: Any) -> tuple[bool, ...]:
        return tuple(ctx.needs_input_grad)

    def mark_non_differentiable(self, ctx: Any, *outputs: torch.Tensor) -> None:
        ctx.mark_non_differentiable(*outputs)

    def optimizer(self, params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(list(params), lr=lr)

    def zero_grad(self, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad()

    def step(self, opt: torch.optim.Optimizer) -> None:
        opt.step()

    # -- functional extensions: custom_vjp, sgd_step --------------------------------------------
    def custom_vjp(
        self, forward: Callable[..., torch.Tensor], vjp: Callable[..., Sequence[torch.Tensor | None]]
    ) -> Callable[..., torch.Tensor]:
        """A ``torch.autograd.Function`` with ``setup_context`` (the form ``torch.func`` transforms too): it saves
        the inputs and the output for its backward, which is ``vjp``."""

        def setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            ctx.save_for_backward(*inputs, output)

        def backward(ctx: Any, cotangent: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
            *inputs, output = ctx.saved_tensors
            return tuple(vjp(tuple(inputs), output, cotangent))

        body = {"forward": staticmethod(forward), "setup_context": staticmethod(setup_context)}
        body["backward"] = staticmethod(backward)
        return type("CustomVJP", (torch.autograd.Function,), body).apply

    def sgd_step(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float) -> list[torch.Tensor]:
        """``torch.optim.SGD``'s ``step()`` on leaf copies of ``params`` whose ``.grad`` are ``grads``: the updated
        copies, detached, are the new parameters (the optimizer updates in place, so it gets copies)."""
        leaves = [p.detach().clone().requires_grad_() for p in params]
        for leaf, g in zip(leaves, grads):
            leaf.grad = g
        torch.optim.SGD(leaves, lr=lr).step()
        return [leaf.detach() for leaf in leaves]
