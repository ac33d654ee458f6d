"""Adapters that break the broadcasting rules."""

from __future__ import annotations

import types

import torch

from conformance.backends.pytorch import OPS, TorchAdapter


def _with_ops(**overrides: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{**vars(OPS), **overrides})


class _MulNoReduce(torch.autograd.Function):
    """mul whose backward forgets to sum the gradient back over broadcast dims."""

    @staticmethod
    def forward(ctx, a, b):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def]
        a, b = ctx.saved_tensors
        return (g * b).mean().expand(a.shape), (g * a).mean().expand(b.shape)


class MulGradNotReduced(TorchAdapter):
    breaks = ("broadcasting.grad.sum-to-input-shape",)
    ops = _with_ops(mul=_MulNoReduce.apply)


class AddPadsLeft(TorchAdapter):
    """Aligns shapes from the leading dimension instead of the trailing one."""

    breaks = ("broadcasting.forward.trailing-alignment", "broadcasting.error.incompatible-shapes")

    @staticmethod
    def _add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dim() < b.dim():
            a = a.reshape(*a.shape, *([1] * (b.dim() - a.dim())))
        elif b.dim() < a.dim():
            b = b.reshape(*b.shape, *([1] * (a.dim() - b.dim())))
        try:
            return a + b
        except RuntimeError:
            return (a.sum() + b.sum()).expand(1)

    ops = _with_ops(add=_add)
