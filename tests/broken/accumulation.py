"""Adapters that break the accumulation rules: engines that overwrite, drop or invent .grad."""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from conformance.backends.pytorch import OPS, TorchAdapter


def reached_leaves(t: torch.Tensor) -> list[torch.Tensor]:
    """The leaves a backward pass from ``t`` accumulates into: its graph's AccumulateGrad variables."""
    if t.grad_fn is None:
        return [t] if t.requires_grad else []
    leaves: dict[int, torch.Tensor] = {}
    stack = [t.grad_fn]
    while stack:
        node = stack.pop()
        if hasattr(node, "variable"):
            leaves[id(node.variable)] = node.variable
        stack.extend(child for child, _ in node.next_functions if child is not None)
    return list(leaves.values())


class GradStartsAtZero(TorchAdapter):
    """Allocates a zero .grad when a leaf is created to require grad."""

    breaks = ("accumulation.grad.none-before-backward",)

    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> torch.Tensor:
        t = super().tensor(array, dtype, requires_grad, device)
        if requires_grad:
            t.grad = torch.zeros_like(t)
        return t


class BackwardOverwrites(TorchAdapter):
    """Assigns each pass's gradient to .grad instead of adding it."""

    breaks = (
        "accumulation.backward.adds",
        "accumulation.backward.adds-to-assigned-grad",
        "backward.graph.retain-allows-second-pass",
    )

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        for leaf in reached_leaves(t):
            leaf.grad = None
        super().backward(t, *args, **kwargs)


class OutOfPlaceAccumulation(TorchAdapter):
    """Adds a new pass's gradient into a fresh tensor, so an earlier .grad reference goes stale."""

    breaks = ("accumulation.grad.accumulates-in-place",)

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        before = {id(leaf): leaf.grad for leaf in reached_leaves(t)}
        for leaf in reached_leaves(t):
            leaf.grad = None
        super().backward(t, *args, **kwargs)
        for leaf in reached_leaves(t):
            old = before[id(leaf)]
            if old is not None and leaf.grad is not None:
                leaf.grad = old + leaf.grad


class InPlaceAccumulationAlways(TorchAdapter):
    """Accumulates in place even under create_graph, so .grad loses its graph and old references change."""

    breaks = ("accumulation.grad.create-graph-out-of-place",)

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        before = {id(leaf): leaf.grad for leaf in reached_leaves(t)}
        super().backward(t, *args, **kwargs)
        for leaf in reached_leaves(t):
            old = before[id(leaf)]
            if old is not None and leaf.grad is not old:
                old.copy_(leaf.grad.detach())
                leaf.grad = old


class ZeroGradLeftNone(TorchAdapter):
    """Skips accumulating an all-zero (or empty) gradient into a leaf that has no .grad yet."""

    breaks = ("accumulation.leaf.reached-gets-zeros", "backward.zero-size")

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        fresh = [leaf for leaf in reached_leaves(t) if leaf.grad is None]
        super().backward(t, *args, **kwargs)
        for leaf in fresh:
            if leaf.grad is not None and not leaf.grad.any():
                leaf.grad = None


class ZeroFillsEveryLeaf(TorchAdapter):
    """After backward, gives every leaf it ever created to require grad a .grad, reached or not."""

    breaks = ("accumulation.leaf.unreached-stays-none",)

    def __init__(self) -> None:
        self.created: list[weakref.ref[torch.Tensor]] = []

    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> torch.Tensor:
        t = super().tensor(array, dtype, requires_grad, device)
        if requires_grad:
            self.created.append(weakref.ref(t))
        return t

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        super().backward(t, *args, **kwargs)
        for ref in self.created:
            leaf = ref()
            if leaf is not None and leaf.grad is None:
                leaf.grad = torch.zeros_like(leaf)


class RequiresGradIgnored(TorchAdapter):
    """Makes every floating leaf require grad, so constants get a .grad too."""

    breaks = ("accumulation.leaf.constant-gets-nothing",)

    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> torch.Tensor:
        t = super().tensor(array, dtype, requires_grad, device)
        return t.requires_grad_() if t.is_floating_point() else t


def _first_use_only(keeps_one_edge: Callable[[torch.Tensor], bool]) -> types.SimpleNamespace:
    """The ops, except that a tensor ``keeps_one_edge`` selects is detached after its first use."""

    def wrap(op: Callable[..., Any]) -> Callable[..., Any]:
        def first_use(*args: Any, **kwargs: Any) -> Any:
            kept = []
            for a in args:
                if isinstance(a, torch.Tensor) and a.requires_grad and keeps_one_edge(a):
                    if getattr(a, "used_once", False):
                        a = a.detach()
                    else:
                        a.used_once = True
                kept.append(a)
            return op(*kept, **kwargs)

        return first_use

    return types.SimpleNamespace(**{name: wrap(op) for name, op in vars(OPS).items()})


class LeafGradFromFirstUseOnly(TorchAdapter):
    """Gives a leaf one gradient slot, taken by its first use: later uses of it are dropped."""

    breaks = ("accumulation.paths.sum-over-uses", "accumulation.paths.overlapping-views")
    ops = _first_use_only(lambda t: t.is_leaf)


class SharedNodeGradFromFirstUseOnly(TorchAdapter):
    """Propagates an intermediate's gradient from its first consumer only (no wait for the others)."""

    breaks = ("accumulation.paths.diamond",)
    ops = _first_use_only(lambda t: not t.is_leaf)


class GradReturnsCopy(TorchAdapter):
    """Reads .grad as a copy of the engine's buffer, so in-place changes to it are lost."""

    breaks = ("accumulation.grad.zero-then-accumulate", "accumulation.grad.accumulates-in-place")

    def grad_of(self, t: torch.Tensor) -> torch.Tensor | None:
        g = super().grad_of(t)
        return None if g is None else g.clone()


class GradAssignNoneIgnored(TorchAdapter):
    """Treats assigning None to .grad as a no-op: the old sum survives."""

    breaks = ("accumulation.grad.set-none-restarts",)

    def set_grad(self, t: torch.Tensor, value: torch.Tensor | None) -> None:
        if value is not None:
            super().set_grad(t, value)


class CoercingGradAssign(TorchAdapter):
    """Converts whatever is assigned to .grad to the tensor's dtype and shape instead of validating it."""

    breaks = (
        "accumulation.grad.assign-shape-checked",
        "accumulation.grad.assign-dtype-checked",
        "accumulation.grad.assign-non-tensor-rejected",
    )

    def set_grad(self, t: torch.Tensor, value: Any) -> None:
        if value is not None:
            value = torch.as_tensor(value).to(t.dtype).reshape(t.shape)
        super().set_grad(t, value)


class BackwardManyLastRootOnly(TorchAdapter):
    """Runs a multi-root backward from the last root alone."""

    breaks = ("accumulation.backward-many.sums-weighted-roots", "accumulation.backward-many.implicit-scalar-roots")

    def backward_many(self, tensors: Any, grad_tensors: Any = None, *args: Any, **kwargs: Any) -> None:
        grads = None if grad_tensors is None else grad_tensors[-1:]
        super().backward_many(tensors[-1:], grads, *args, **kwargs)


class BackwardManyWeightsIgnored(TorchAdapter):
    """Seeds every root of a multi-root backward with ones, whatever gradients were given."""

    breaks = ("accumulation.backward-many.sums-weighted-roots",)

    def backward_many(self, tensors: Any, grad_tensors: Any = None, *args: Any, **kwargs: Any) -> None:
        super().backward_many(tensors, [torch.ones_like(t) for t in tensors], *args, **kwargs)


class BackwardManyDedupsRoots(TorchAdapter):
    """Keys roots by identity, so a root listed twice runs once, with its first gradient."""

    breaks = ("accumulation.backward-many.repeated-root-counts-twice",)

    def backward_many(self, tensors: Any, grad_tensors: Any = None, *args: Any, **kwargs: Any) -> None:
        grads = grad_tensors if grad_tensors is not None else [None] * len(tensors)
        unique: dict[int, tuple[torch.Tensor, Any]] = {}
        for t, g in zip(tensors, grads):
            unique.setdefault(id(t), (t, g))
        roots, seeds = zip(*unique.values())
        super().backward_many(list(roots), list(seeds), *args, **kwargs)


class GradAlsoAccumulates(TorchAdapter):
    """Implements autograd.grad as a backward restricted to the inputs, then reads their .grad."""

    breaks = ("accumulation.grad-call.leaves-grad-untouched",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        inputs = list(inputs)
        torch.autograd.backward(outputs, grad_outputs, inputs=inputs)
        return tuple(i.grad for i in inputs)


class BackwardIgnoresInputs(TorchAdapter):
    """Drops backward's inputs argument: every leaf of the graph accumulates."""

    breaks = ("accumulation.inputs.only-listed",)

    def backward(self, t: torch.Tensor, gradient: Any = None, retain_graph: Any = None, create_graph: bool = False,
                 inputs: Any = None) -> None:  # fmt: skip
        super().backward(t, gradient, retain_graph, create_graph)


class NonLeafInputsIgnored(TorchAdapter):
    """Accepts only leaves in backward's inputs; without any, it accumulates into every leaf."""

    breaks = ("accumulation.inputs.non-leaf",)

    def backward(self, t: torch.Tensor, gradient: Any = None, retain_graph: Any = None, create_graph: bool = False,
                 inputs: Any = None) -> None:  # fmt: skip
        leaves = [i for i in inputs or [] if i.is_leaf]
        super().backward(t, gradient, retain_graph, create_graph, leaves or None)
