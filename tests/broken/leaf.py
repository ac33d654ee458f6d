"""Adapters that break the leaf rules: is_leaf, requires_grad propagation, retain_grad, views."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch

from conformance.backends.pytorch import OPS, TorchAdapter, with_ops


class IsLeafMeansRequiresGrad(TorchAdapter):
    """Confuses "leaf" with "trainable": a leaf is whatever requires grad."""

    breaks = ("leaf.created.is-leaf", "leaf.no-grad-inputs.result-is-leaf", "leaf.op-result.non-leaf")

    def is_leaf(self, t: torch.Tensor) -> bool:
        return t.requires_grad


class RequiresGradFromFirstInput(TorchAdapter):
    """add tracks its first input only, so add(no_grad, grad) does not require grad."""

    breaks = ("leaf.requires-grad.or-over-inputs",)
    ops = with_ops(add=lambda a, b: torch.add(a, b if a.requires_grad else b.detach()))


class RequiresGradReturnsCopy(TorchAdapter):
    """requires_grad_ returns a flagged copy instead of flagging the tensor in place."""

    breaks = ("leaf.requires-grad.makes-leaf", "leaf.requires-grad.settable-on-leaves")

    def requires_grad_(self, t: torch.Tensor, flag: bool = True) -> torch.Tensor:
        return t.detach().clone().requires_grad_(flag)


class NonLeafRequiresGradIgnored(TorchAdapter):
    """Silently ignores requires_grad_ on a non-leaf instead of raising."""

    breaks = ("leaf.non-leaf.requires-grad-frozen",)

    def requires_grad_(self, t: torch.Tensor, flag: bool = True) -> torch.Tensor:
        return t if not t.is_leaf else super().requires_grad_(t, flag)


def _retaining(fn: Callable[..., Any]) -> Callable[..., Any]:
    def op(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.requires_grad and not out.is_leaf:
            out.retain_grad()
        return out

    return op


class GradsOnEveryNode(TorchAdapter):
    """Stores a gradient on every node of the graph, non-leaves included."""

    breaks = ("leaf.non-leaf.grad-is-none",)
    ops = types.SimpleNamespace(**{name: _retaining(fn) for name, fn in vars(OPS).items()})


class RetainGradIgnored(TorchAdapter):
    """retain_grad() is accepted and does nothing."""

    breaks = ("leaf.retain-grad.keeps-grad", "leaf.retain-grad.needs-requires-grad")

    def retain_grad(self, t: torch.Tensor) -> None:
        return None


class RetainedGradOverwritten(TorchAdapter):
    """A retained non-leaf grad holds the last backward's gradient instead of accumulating."""

    breaks = ("leaf.retain-grad.accumulates",)

    def __init__(self) -> None:
        self.retained: list[torch.Tensor] = []

    def retain_grad(self, t: torch.Tensor) -> None:
        t.retain_grad()
        self.retained.append(t)

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        for r in self.retained:
            r.grad = None
        super().backward(t, *args, **kwargs)


class RetainGradHookOnLeaves(TorchAdapter):
    """retain_grad() installs its storing hook on leaves too, so a leaf's grad is counted twice."""

    breaks = ("leaf.retain-grad.leaf-unchanged", "leaf.retain-grad.leaf-flag-stays-false")

    def retain_grad(self, t: torch.Tensor) -> None:
        if not t.is_leaf:
            return t.retain_grad()

        def store(g: torch.Tensor) -> None:
            t.grad = g.clone() if t.grad is None else t.grad + g

        t.register_hook(store)
        t.hooked = True

    def retains_grad(self, t: torch.Tensor) -> bool:
        return t.retains_grad or getattr(t, "hooked", False)


def _self_tracked(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    return lambda a, b: fn(a, b if a.requires_grad else b.detach())


class InplaceIgnoresOperandGrad(TorchAdapter):
    """In-place ops record history only when self already requires grad."""

    breaks = ("leaf.inplace.no-grad-leaf-joins-graph",)
    ops = with_ops(mul_=_self_tracked(OPS.mul_), copy_=_self_tracked(OPS.copy_))


class ViewsAreLeaves(TorchAdapter):
    """A view of a leaf is made a leaf of its own, so its gradient never reaches the base."""

    breaks = ("leaf.view.of-leaf-is-non-leaf",)
    ops = with_ops(index=lambda a, key: OPS.index(a.detach(), key).requires_grad_(a.requires_grad))


class IndexCopies(TorchAdapter):
    """Indexing returns a copy, so in-place writes through it never reach the base."""

    breaks = ("leaf.view.inplace-on-leaf-view-raises", "leaf.view.inplace-on-non-leaf-view")
    ops = with_ops(index=lambda a, key: OPS.index(a, key).clone())


class CloneDetaches(TorchAdapter):
    """clone() copies the data only: the copy is cut from the graph."""

    breaks = ("leaf.clone.differentiable",)
    ops = with_ops(clone=lambda a: a.detach().clone())


class CastMakesLeaf(TorchAdapter):
    """A dtype cast of a leaf returns a new leaf instead of a node in the graph."""

    breaks = ("leaf.cast.is-non-leaf",)
    ops = with_ops(to_dtype=lambda a, dtype: OPS.to_dtype(a.detach(), dtype).requires_grad_(a.requires_grad))
