"""Adapters that break the broadcasting rules, each with a bug an engine could really have."""

from __future__ import annotations

import math
from typing import Any

import torch

from conformance.backends.pytorch import OPS, TorchAdapter, with_ops


class _Mul(torch.autograd.Function):
    """mul's forward, saving its operands: each subclass gets its backward wrong in its own way."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return a * b


class _MulMeanGrad(_Mul):
    """mul whose backward averages the gradient instead of summing it back over broadcast dims."""

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = ctx.saved_tensors
        return (g * b).mean().expand(a.shape), (g * a).mean().expand(b.shape)


class MulGradNotReduced(TorchAdapter):
    breaks = (
        "broadcasting.grad.sum-to-input-shape",
        "broadcasting.grad.implicit-sum",
        "broadcasting.grad.via-autograd-grad",
        "broadcasting.grad.functional-vjp",
    )
    ops = with_ops(mul=_MulMeanGrad.apply)


def _add_aligned_left(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pads the shorter shape on the right (leading alignment) and never raises."""
    if a.dim() < b.dim():
        a = a.reshape(*a.shape, *([1] * (b.dim() - a.dim())))
    elif b.dim() < a.dim():
        b = b.reshape(*b.shape, *([1] * (a.dim() - b.dim())))
    try:
        return a + b
    except RuntimeError:
        return (a.sum() + b.sum()).reshape(1)


class AddAlignsLeading(TorchAdapter):
    breaks = ("broadcasting.forward.trailing-alignment", "broadcasting.error.incompatible-shapes")
    ops = with_ops(add=_add_aligned_left)


class ZeroDTakesFirstShape(TorchAdapter):
    """A 0-d first operand decides the result's shape (the other operand is reduced)."""

    breaks = ("broadcasting.forward.zero-d",)
    ops = with_ops(mul=lambda a, b: (a * b).sum() if a.dim() == 0 else a * b)


class MatmulSqueezes(TorchAdapter):
    """matmul that squeezes size-1 dims of its result."""

    breaks = ("broadcasting.forward.matmul-batch-dims", "broadcasting.grad.matmul-batch")
    ops = with_ops(matmul=lambda a, b: torch.matmul(a, b).squeeze())


def _silently(op: Any) -> Any:
    """``op``, answering zeros of the target shape where it should raise."""

    def forgiving(a: torch.Tensor, shape: Any) -> torch.Tensor:
        try:
            return op(a, shape)
        except RuntimeError:
            return torch.zeros(tuple(shape), dtype=a.dtype)

    return forgiving


class ShapeErrorsSwallowed(TorchAdapter):
    breaks = ("broadcasting.error.expand-non-singleton", "broadcasting.error.sum-to-size-not-expandable")
    ops = with_ops(broadcast_to=_silently(OPS.broadcast_to), sum_to_size=_silently(OPS.sum_to_size))


class _DivSignBug(torch.autograd.Function):
    """div whose gradient for the denominator has the wrong sign."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = ctx.saved_tensors
        return (g / b).sum_to_size(a.shape), (g * a / b**2).sum_to_size(b.shape)


class DivGradSign(TorchAdapter):
    breaks = ("broadcasting.grad.binary-ops",)
    ops = with_ops(div=_DivSignBug.apply)


class _ExpandFirstSlice(torch.autograd.Function):
    """expand whose backward keeps the first slice of each expanded dim instead of summing."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        ctx.in_shape = a.shape
        return a.expand(shape).clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        lead = g.dim() - len(ctx.in_shape)
        g = g[(0,) * lead] if lead else g
        for d, n in enumerate(ctx.in_shape):
            if n == 1 and g.shape[d] != 1:
                g = g.narrow(d, 0, 1)
        return g, None


class ExpandGradFirstSlice(TorchAdapter):
    breaks = ("broadcasting.grad.expand",)
    ops = with_ops(expand=lambda a, shape: _ExpandFirstSlice.apply(a, tuple(shape)))


class WhereDetachesElse(TorchAdapter):
    """where that does not record its else-branch."""

    breaks = ("broadcasting.grad.where-three-way",)
    ops = with_ops(where=lambda c, a, b: torch.where(c, a, b.detach()))


class SumToSizeAverages(TorchAdapter):
    breaks = ("broadcasting.grad.sum-to-size",)
    ops = with_ops(sum_to_size=lambda a, shape: a.sum_to_size(tuple(shape)) * (math.prod(shape) / max(a.numel(), 1)))


class InplaceAddReducesOther(TorchAdapter):
    """add_ that adds the sum of a broadcast operand instead of broadcasting it."""

    breaks = ("broadcasting.inplace.broadcasts-other",)
    ops = with_ops(add_=lambda a, b: a.add_(b) if a.shape == b.shape else a.add_(b.sum()))


class InplaceReturnsNew(TorchAdapter):
    """add_ that quietly returns a new, broadcast tensor when self would have to grow."""

    breaks = ("broadcasting.error.inplace-broadcasts-self",)
    ops = with_ops(
        add_=lambda a, b: torch.add(a, b) if torch.broadcast_shapes(a.shape, b.shape) != a.shape else a.add_(b)
    )


class InplaceMulDropsOther(TorchAdapter):
    """mul_ that records self's history but treats the other operand as a constant."""

    breaks = ("broadcasting.grad.inplace-broadcast-other",)
    ops = with_ops(mul_=lambda a, b: a.mul_(b.detach()))


class GradInComputeDtype(TorchAdapter):
    """Gradients come back in the dtype the op computed in, not the leaf's."""

    breaks = ("broadcasting.promotion.grad-keeps-input-dtype", "broadcasting.promotion.zero-d-does-not-promote")

    def grad_of(self, t: torch.Tensor) -> torch.Tensor | None:
        grad = super().grad_of(t)
        return None if grad is None else grad.double()


def _promote_all(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dtype = torch.promote_types(a.dtype, b.dtype)
    return torch.mul(a.to(dtype), b.to(dtype))


class ZeroDPromotes(TorchAdapter):
    """Type promotion that ignores the 0-d rule: any float64 operand promotes."""

    breaks = ("broadcasting.promotion.zero-d-does-not-promote",)
    ops = with_ops(mul=_promote_all)


class IntegerOperandWins(TorchAdapter):
    """mul whose result takes the integer operand's dtype."""

    breaks = ("broadcasting.grad.integer-operand",)
    ops = with_ops(mul=lambda a, b: torch.mul(a, b).to(b.dtype) if not b.is_floating_point() else torch.mul(a, b))


def _refuse_empty(a: torch.Tensor, b: torch.Tensor) -> None:
    """A gap on one class of cases: a size-0 operand raises (a finding excuses it ``when = "EMPTY"``)."""
    if a.numel() == 0 or b.numel() == 0:
        raise RuntimeError("mul: size-0 operands are not supported")


def _mul_refusing_empty(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    _refuse_empty(a, b)
    return a * b


class _MulZeroDGradDoubled(_Mul):
    """mul whose gradient of a 0-d operand is doubled: a wrong value on other cases than the gap's."""

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = ctx.saved_tensors
        ga, gb = (g * b).sum_to_size(a.shape), (g * a).sum_to_size(b.shape)
        return (2 * ga if a.dim() == 0 else ga), (2 * gb if b.dim() == 0 else gb)


def _mul_refusing_empty_doubling_zero_d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    _refuse_empty(a, b)
    return _MulZeroDGradDoubled.apply(a, b)


class MulRefusesEmpty(TorchAdapter):
    """A known gap: ``tests/test_findings.py`` excuses it with a finding whose condition is ``EMPTY``."""

    breaks = ("broadcasting.grad.sum-to-input-shape",)
    ops = with_ops(mul=_mul_refusing_empty)


class MulRefusesEmptyAndDoublesZeroD(TorchAdapter):
    """The same gap, and a second bug of the same rule on other cases: the finding must not hide it."""

    breaks = ("broadcasting.grad.sum-to-input-shape",)
    ops = with_ops(mul=_mul_refusing_empty_doubling_zero_d)
