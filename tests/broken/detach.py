"""Adapters that break the detach rules: aliasing, the version counter, detach_."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from conformance.backends.pytorch import OPS, TorchAdapter, with_ops


class DetachKeepsGraph(TorchAdapter):
    """detach() returns an alias that is still a node of the graph."""

    breaks = ("detach.grad.stops", "detach.result.leaf-without-grad")

    def detach(self, t: torch.Tensor) -> torch.Tensor:
        return t.view_as(t)


class DetachCopies(TorchAdapter):
    """detach() copies: writes through it reach neither the original nor its version counter."""

    breaks = (
        "detach.storage.shared",
        "detach.version.shared",
        "detach.inplace.saved-non-leaf-detected",
        "detach.inplace.saved-leaf-detected",
        "detach.inplace.leaf-write-allowed",
    )

    def detach(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().clone()


class DetachOwnVersion(TorchAdapter):
    """detach() shares storage but has its own version counter (what torch's .data does)."""

    breaks = (
        "detach.version.shared",
        "detach.version.counts-writes",
        "detach.inplace.saved-non-leaf-detected",
        "detach.inplace.saved-leaf-detected",
    )

    def detach(self, t: torch.Tensor) -> torch.Tensor:
        return t.data


class DetachLeafIsSelf(TorchAdapter):
    """Treats a leaf as already detached and returns it as is."""

    breaks = ("detach.grad.stops", "detach.requires-grad.independent-leaf", "detach.inplace.leaf-write-allowed")

    def detach(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.is_leaf else t.detach()


class DetachInPlaceReturnsCopy(TorchAdapter):
    """detach_() returns a detached alias and leaves the tensor (or view) as it was."""

    breaks = ("detach.detach_.makes-leaf", "detach.detach_.view-raises")

    def detach_(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach()


INPLACE = ("add_", "sub_", "mul_", "zero_", "copy_", "setitem_")


class VersionCheckEverything(TorchAdapter):
    """Backward refuses to run after any in-place write, whether or not a node saved the tensor."""

    breaks = ("detach.inplace.unsaved-ok",)

    def __init__(self) -> None:
        self.written = False
        self.ops = with_ops(**{name: self._noting(getattr(OPS, name)) for name in INPLACE})

    def _noting(self, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def op(*args: Any) -> torch.Tensor:
            self.written = True
            return fn(*args)

        return op

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        if self.written:
            raise RuntimeError("a variable needed for gradient computation has been modified by an inplace operation")
        super().backward(t, *args, **kwargs)


def _setitem_untracked(a: torch.Tensor, key: Any, value: Any) -> torch.Tensor:
    a.data[key] = value
    return a


class SetitemUntracked(TorchAdapter):
    """Index assignment writes around the version counter."""

    breaks = ("detach.version.counts-writes",)
    ops = with_ops(setitem_=_setitem_untracked)


class _SigmoidSavesCopy(torch.autograd.Function):
    """sigmoid that saves a private copy of its output, so later writes to it go unnoticed."""

    @staticmethod
    def forward(ctx, a):  # type: ignore[no-untyped-def]
        out = torch.sigmoid(a)
        ctx.saved = out.clone()
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def]
        return g * ctx.saved * (1 - ctx.saved)


class SavedOutputCopied(TorchAdapter):
    breaks = ("detach.inplace.saved-output-detected",)
    ops = with_ops(sigmoid=_SigmoidSavesCopy.apply)
