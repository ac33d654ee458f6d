"""Adapters that break the higher-order rules: create_graph, nested vjp, unused inputs, kinks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from conformance.backends.pytorch import OPS, TorchAdapter, with_ops


class CreateGraphIgnored(TorchAdapter):
    """grad() and backward() drop create_graph: every gradient is a constant."""

    breaks = (
        "higher_order.create_graph.grad-is-differentiable",
        "higher_order.create_graph.third-order",
        "higher_order.backward-create-graph.grad-field-is-differentiable",
    )

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, **kwargs: Any) -> Any:
        return super().grad(outputs, inputs, grad_outputs, **{**kwargs, "create_graph": False})

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        super().backward(t, *args, **{**kwargs, "create_graph": False})


class AlwaysCreateGraph(TorchAdapter):
    """grad() always records the backward pass, so a plain gradient is differentiable."""

    breaks = ("higher_order.no-create-graph.grad-is-constant",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, **kwargs: Any) -> Any:
        return super().grad(outputs, inputs, grad_outputs, **{**kwargs, "create_graph": True})


class CreateGraphGradsRequireGrad(TorchAdapter):
    """With create_graph, every returned gradient is marked as requiring grad, constants included."""

    breaks = ("higher_order.create_graph.linear-first-grad-is-constant",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, **kwargs: Any) -> Any:
        grads = super().grad(outputs, inputs, grad_outputs, **kwargs)
        if not kwargs.get("create_graph"):
            return grads
        return tuple(g if g is None or g.requires_grad else g.detach().requires_grad_() for g in grads)


class _MulDetachedBackward(torch.autograd.Function):
    """mul whose backward is right but uses detached saved inputs: it cannot be differentiated again."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = (t.detach() for t in ctx.saved_tensors)
        return (g * b).sum_to_size(a.shape), (g * a).sum_to_size(b.shape)


def _mul_first_order_only(a: Any, b: Any) -> torch.Tensor:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return _MulDetachedBackward.apply(a, b)
    return torch.mul(a, b)


class FirstOrderOnlyMul(TorchAdapter):
    """mul's backward is not itself differentiable: second derivatives through mul are lost."""

    breaks = (
        "higher_order.create_graph.third-order",
        "higher_order.hvp.grad-of-dot-with-vector",
        "higher_order.backward-of-grad.accumulates-second-derivative",
        "higher_order.mixed-partials",
        "higher_order.vjp.nested-second-order",
    )
    ops = with_ops(mul=_mul_first_order_only)


def _detached(grads: Any) -> Any:
    if isinstance(grads, (list, tuple)):
        return [_detached(g) for g in grads]
    return grads.detach() if isinstance(grads, torch.Tensor) else grads


class GradOutputsDetached(TorchAdapter):
    """grad() detaches grad_outputs, so the gradient is constant in them."""

    breaks = ("higher_order.grad-outputs-requiring-grad",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, **kwargs: Any) -> Any:
        return super().grad(outputs, inputs, _detached(grad_outputs), **kwargs)


class DetachIsView(TorchAdapter):
    """detach() returns a view that is still part of the graph."""

    breaks = ("higher_order.detach-respected-at-second-order",)

    def detach(self, t: torch.Tensor) -> torch.Tensor:
        return t.view_as(t)


class UnusedInputsAllowed(TorchAdapter):
    """allow_unused defaults to True: an unused input silently gets None."""

    breaks = ("higher_order.unused.second-order-raises",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, **kwargs: Any) -> Any:
        allow_unused = kwargs.get("allow_unused")
        return super().grad(outputs, inputs, grad_outputs, **{**kwargs, "allow_unused": allow_unused is not False})


class AllowUnusedGivesZeros(TorchAdapter):
    """allow_unused=True fills unused inputs with zeros instead of None."""

    breaks = ("higher_order.unused.allow-unused-gives-none",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, **kwargs: Any) -> Any:
        materialize = bool(kwargs.get("materialize_grads") or kwargs.get("allow_unused"))
        return super().grad(outputs, inputs, grad_outputs, **{**kwargs, "materialize_grads": materialize})


class MaterializeGradsIgnored(TorchAdapter):
    """materialize_grads is accepted and dropped."""

    breaks = (
        "higher_order.unused.materialize-grads-gives-zeros",
        "higher_order.unused.materialize-without-allow-unused-invalid",
    )

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, **kwargs: Any) -> Any:
        return super().grad(outputs, inputs, grad_outputs, **{**kwargs, "materialize_grads": False})


def _vjp(
    fn: Callable[..., torch.Tensor], primals: Sequence[torch.Tensor], cotangent: torch.Tensor, **options: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """TorchAdapter.vjp with its autograd.grad options overridden."""
    with torch.enable_grad():
        inner = [p if p.requires_grad else p.detach().requires_grad_() for p in primals]
        out = fn(*inner)
        grads = torch.autograd.grad(
            out, inner, cotangent, **{"create_graph": True, "allow_unused": True, "materialize_grads": True, **options}
        )
    return out, list(grads)


class VjpNotDifferentiable(TorchAdapter):
    """The functional vjp returns constants, so it does not nest."""

    breaks = ("higher_order.vjp.nested-second-order", "higher_order.vjp.double-vjp-is-jvp")

    def vjp(self, fn: Any, primals: Any, cotangent: torch.Tensor) -> Any:
        return _vjp(fn, primals, cotangent, create_graph=False)


class VjpUnusedGivesNone(TorchAdapter):
    """The functional vjp returns None, not zeros, for a primal the function does not use."""

    breaks = ("higher_order.vjp.nested-unused-gives-zeros",)

    def vjp(self, fn: Any, primals: Any, cotangent: torch.Tensor) -> Any:
        return _vjp(fn, primals, cotangent, materialize_grads=False)


class ReluGradOneAtZero(TorchAdapter):
    """relu as where(a >= 0, a, 0): its gradient at 0 is 1."""

    breaks = ("higher_order.kink.relu-abs-clamp-at-zero",)
    ops = with_ops(relu=lambda a: torch.where(a >= 0, a, torch.zeros_like(a)))


def _amax_first_index(a: torch.Tensor, dim: Any = None, keepdim: bool = False) -> torch.Tensor:
    """The full amax as a gather at argmax: all of the gradient goes to the first maximum."""
    if dim is not None:
        return OPS.amax(a, dim, keepdim)
    top = a.reshape(-1)[a.argmax()]
    return top.reshape([1] * a.dim()) if keepdim else top


class TiesGoToFirst(TorchAdapter):
    """maximum, minimum and amax give the whole gradient to one of the tied values."""

    breaks = ("higher_order.kink.maximum-minimum-ties-split", "higher_order.kink.amax-ties-split")
    ops = with_ops(
        maximum=lambda a, b: torch.where(a >= b, a, b),
        minimum=lambda a, b: torch.where(a <= b, a, b),
        amax=_amax_first_index,
    )


class PowViaExpLog(TorchAdapter):
    """pow as exp(b * log(a)): NaN gradients at a = 0."""

    breaks = ("higher_order.kink.sqrt-pow-at-zero",)
    ops = with_ops(pow=lambda a, b: torch.exp(b * torch.log(a)))


class _SqrtSkippingZeros(torch.autograd.Function):
    """sqrt whose backward returns 0 wherever the incoming gradient is 0, hiding 0 * inf."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor) -> torch.Tensor:
        root = torch.sqrt(a)
        ctx.save_for_backward(root)
        return root

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (root,) = ctx.saved_tensors
        return torch.where(g == 0, torch.zeros_like(g), g / (2 * root))


class SqrtSkipsZeroCotangent(TorchAdapter):
    """An engine that skips zero cotangents: the where-NaN trap disappears."""

    breaks = ("higher_order.kink.where-nan-trap",)
    ops = with_ops(sqrt=_SqrtSkippingZeros.apply)
