"""Adapters that break the functional-core rules: forward mode, and the functional twins of the stateful rules.

Each subclasses the torch or torch-func adapter and breaks one thing of ``vjp``, ``jvp`` or ``stop_gradient``
(the per-op jvp breakers and the stop_gradient that lets gradients through are in ``ops.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from conformance.backends.pytorch import TorchAdapter, with_ops
from conformance.backends.torch_func_adapter import TorchFuncAdapter

# -- forward mode ------------------------------------------------------------------------------------


class JvpDoubled(TorchFuncAdapter):
    """jvp returns twice J t: wrong against the reference wherever a tangent is not zero."""

    breaks = (
        "forward_mode.jvp.primal-and-linear-in-tangent",
        "forward_mode.jvp.unused-input-zero-tangent",
        "forward_mode.hvp.forward-over-reverse",
        "forward_mode.hvp.forward-over-reverse-coupled",
        "forward_mode.hvp.mixed-partials",
        "forward_mode.hvp.reverse-over-forward",
        "detach.stop-gradient.jvp-stops",
        "properties.programs.jvp",
    )

    def jvp(self, fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
        out, tangent = super().jvp(fn, primals, tangents)
        return out, tangent * 2.0


class JvpReturnsTangentAsOutput(TorchFuncAdapter):
    """jvp's first result is the output tangent again, not the function's value."""

    breaks = ("forward_mode.jvp.primal-and-linear-in-tangent", "detach.stop-gradient.jvp-stops")

    def jvp(self, fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
        _, tangent = super().jvp(fn, primals, tangents)
        return tangent, tangent


class JvpOfConstantIsNone(TorchAdapter):
    """An output that no primal reaches gets None for its tangent (forward_ad's own answer), not zeros."""

    breaks = ("forward_mode.jvp.unused-input-zero-tangent",)

    def jvp(self, fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
        with torch.autograd.forward_ad.dual_level(), torch.enable_grad():
            duals = [
                torch.autograd.forward_ad.make_dual(p.detach().requires_grad_(), t) for p, t in zip(primals, tangents)
            ]
            value, tangent = torch.autograd.forward_ad.unpack_dual(fn(*duals))
        return value, tangent


class JvpBlindToReverse(TorchAdapter):
    """jvp's dual tensors do not require grad, so a vjp inside the function detaches them: forward mode
    cannot see through a reverse pass (forward-over-reverse gives zeros)."""

    breaks = (
        "forward_mode.hvp.forward-over-reverse",
        "forward_mode.hvp.forward-over-reverse-coupled",
        "forward_mode.hvp.mixed-partials",
    )

    def jvp(self, fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
        with torch.autograd.forward_ad.dual_level():
            duals = [torch.autograd.forward_ad.make_dual(p.detach(), t) for p, t in zip(primals, tangents)]
            value, tangent = torch.autograd.forward_ad.unpack_dual(fn(*duals))
        return value, torch.zeros_like(value) if tangent is None else tangent


class JvpTangentNotDifferentiable(TorchAdapter):
    """jvp's output tangent is detached: a vjp of it (reverse-over-forward) gives zeros."""

    breaks = ("forward_mode.hvp.reverse-over-forward",)

    def jvp(self, fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
        out, tangent = super().jvp(fn, primals, tangents)
        return out, tangent.detach()


# -- stop_gradient at second order -----------------------------------------------------------------


class _LeakyStop(torch.autograd.Function):
    """A stop_gradient whose gradient is zero, but only in value: ``g * (a - a.detach())`` has a derivative."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a)
        return a.clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (a,) = ctx.saved_tensors
        return g * (a - a.detach())


class StopGradientLeaksAtSecondOrder(TorchAdapter):
    """stop_gradient's first-order gradient is zero, but the gradient of that gradient is not."""

    breaks = ("detach.stop-gradient.second-order",)
    ops = with_ops(stop_gradient=_LeakyStop.apply)


# -- the functional vjp ----------------------------------------------------------------------------


class VjpUnusedGivesNone(TorchAdapter):
    """vjp returns None for a primal the output does not use (autograd.grad without materialize_grads)."""

    breaks = ("backward.vjp.unused-input-zeros",)

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> Any:
        with torch.enable_grad():
            inner = [p.detach().requires_grad_() for p in primals]
            out = fn(*inner)
            grads = torch.autograd.grad(out, inner, cotangent, create_graph=True, allow_unused=True)
        return out, list(grads)


class VjpFitsCotangent(TorchFuncAdapter):
    """vjp makes a cotangent of another shape fit the output (broadcast, or summed down) instead of raising."""

    breaks = ("backward.vjp.cotangent-shape-mismatch-raises",)

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> Any:
        out = fn(*primals)
        if cotangent.shape != out.shape:
            fit = cotangent.sum_to_size(out.shape) if cotangent.dim() > out.dim() else cotangent.expand(out.shape)
            cotangent = fit.contiguous()
        return super().vjp(fn, primals, cotangent)


class VjpAffineInCotangent(TorchFuncAdapter):
    """vjp pulls back the cotangent plus one half: affine, not linear, in the cotangent."""

    breaks = ("backward.vjp.linear-in-cotangent",)

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> Any:
        return super().vjp(fn, primals, cotangent + 0.5)


class VjpGradInCotangentDtype(TorchFuncAdapter):
    """vjp returns every gradient in the cotangent's dtype instead of its primal's."""

    breaks = ("dtypes.vjp.grad-in-input-dtype",)

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> Any:
        out, grads = super().vjp(fn, primals, cotangent)
        return out, [g.to(cotangent.dtype) for g in grads]


class VjpComputesInFloat32(TorchFuncAdapter):
    """vjp runs a float64 function in float32 and casts the results back: float64 in name only."""

    breaks = ("dtypes.vjp.float64-stays-float64",)

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> Any:
        narrow = [p.float() if p.dtype == torch.float64 else p for p in primals]
        out, grads = super().vjp(fn, narrow, cotangent.float())
        return out.double(), [g.double() if p.dtype == torch.float64 else g for g, p in zip(grads, primals)]


class VjpCastsIntegerPrimals(TorchFuncAdapter):
    """vjp casts an integer primal to float and differentiates it, where it must refuse."""

    breaks = ("dtypes.vjp.wrt-integer-raises",)

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> Any:
        floats = [p if p.is_floating_point() else p.to(cotangent.dtype) for p in primals]
        return super().vjp(fn, floats, cotangent)


class VjpConstantAtThirdOrder(TorchAdapter):
    """Gradients are differentiable once, not twice: a vjp nested two deep returns constants."""

    breaks = ("higher_order.vjp.third-order",)

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> Any:
        self.depth += 1
        try:
            out, grads = super().vjp(fn, primals, cotangent)
        finally:
            self.depth -= 1
        return out, [g.detach() for g in grads] if self.depth >= 2 else grads
