"""Adapters that break the backward rules: lax argument checks, wrong roots, wrong graph lifetimes."""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

import torch

from conformance.backends.pytorch import OPS, TorchAdapter


def _ones_if_none(outputs: Sequence[torch.Tensor], grads: Sequence[Any] | None) -> list[torch.Tensor]:
    """Explicit gradients, with ones standing in for each missing one whatever the output's size."""
    grads = grads if grads is not None else [None] * len(outputs)
    return [torch.ones_like(t) if g is None else g for t, g in zip(outputs, grads)]


class ImplicitGradOnlyForZeroDim(TorchAdapter):
    """Reads 'scalar output' as 'zero dims', rejecting one-element outputs such as shape (1, 1)."""

    breaks = ("backward.implicit.one-element-output",)

    def backward(self, t: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> None:
        if gradient is None and t.dim() != 0:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        super().backward(t, gradient, *args, **kwargs)


class ImplicitGradWhenAtMostOneElement(TorchAdapter):
    """Checks numel() > 1 instead of numel() != 1, so an empty output gets an implicit gradient."""

    breaks = ("backward.implicit.non-scalar-raises",)

    def backward(self, t: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> None:
        if gradient is None and t.numel() == 0:
            gradient = torch.ones_like(t)
        super().backward(t, gradient, *args, **kwargs)


class ImplicitOnesForAnyOutput(TorchAdapter):
    """Seeds any output with ones when no gradient is given: the gradient of its sum."""

    breaks = (
        "backward.implicit.non-scalar-raises",
        "backward.implicit.grad-call-raises",
        "backward.implicit.backward-many-raises",
    )

    def backward(self, t: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> None:
        super().backward(t, _ones_if_none([t], [gradient])[0], *args, **kwargs)

    def backward_many(self, tensors: Any, grad_tensors: Any = None, *args: Any, **kwargs: Any) -> None:
        super().backward_many(tensors, _ones_if_none(tensors, grad_tensors), *args, **kwargs)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        return super().grad(outputs, inputs, _ones_if_none([outputs], [grad_outputs])[0], *args, **kwargs)


class IgnoresExplicitGradient(TorchAdapter):
    """Always seeds with ones: the explicit gradient / grad_outputs is accepted and dropped."""

    breaks = ("backward.gradient.vjp", "backward.grad-call.vjp")

    def backward(self, t: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> None:
        super().backward(t, torch.ones_like(t), *args, **kwargs)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        return super().grad(outputs, inputs, torch.ones_like(outputs), *args, **kwargs)


class BroadcastsGradient(TorchAdapter):
    """Broadcasts an explicit gradient to the output's shape instead of checking it."""

    breaks = ("backward.gradient.shape-mismatch-raises", "backward.grad-call.shape-mismatch-raises")

    def backward(self, t: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> None:
        super().backward(t, torch.broadcast_to(gradient, t.shape), *args, **kwargs)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        return super().grad(outputs, inputs, torch.broadcast_to(grad_outputs, outputs.shape), *args, **kwargs)


class StrictGradientDtype(TorchAdapter):
    """Rejects a gradient whose floating dtype differs from the output's instead of casting it."""

    breaks = ("backward.gradient.other-float-dtype-cast",)

    def backward(self, t: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> None:
        if gradient is not None and gradient.dtype != t.dtype:
            raise TypeError(f"gradient has dtype {gradient.dtype}, expected {t.dtype}")
        super().backward(t, gradient, *args, **kwargs)


class AlwaysCreatesGraph(TorchAdapter):
    """Records the backward pass whatever create_graph says, so .grad can carry a graph."""

    breaks = ("backward.gradient.graph-not-recorded",)

    def backward(self, t: torch.Tensor, gradient: Any = None, retain_graph: Any = None, create_graph: bool = False,
                 inputs: Any = None) -> None:  # fmt: skip
        super().backward(t, gradient, retain_graph, True, inputs)


class SilentWithoutGraph(TorchAdapter):
    """Treats an output that does not require grad as a graph with nothing to do."""

    breaks = ("backward.no-grad-fn.backward-raises", "backward.no-grad-fn.grad-raises")

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        if t.requires_grad:
            super().backward(t, *args, **kwargs)

    def grad(self, outputs: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if outputs.requires_grad:
            return super().grad(outputs, inputs, *args, **kwargs)
        return tuple(torch.zeros_like(i) for i in inputs)


class GradZerosForConstantInputs(TorchAdapter):
    """Returns zeros for an input that does not require grad, as a functional transform would."""

    breaks = ("backward.grad-call.input-not-requiring-grad-raises",)

    def grad(self, outputs: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = list(inputs)
        variables = [i for i in inputs if i.requires_grad]
        found = iter(super().grad(outputs, variables, *args, **kwargs) if variables else ())
        return tuple(next(found) if i.requires_grad else torch.zeros_like(i) for i in inputs)


class LeafRootIgnored(TorchAdapter):
    """Starts backward at the root's grad_fn, so a leaf root (which has none) does nothing."""

    breaks = ("backward.root.leaf",)

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        if t.grad_fn is not None:
            super().backward(t, *args, **kwargs)


_LATEST: list[torch.Tensor] = []
"""The most recent op output of ``TapeReplaysFromLatest``."""


def _recording(op: Any) -> Any:
    def record(*args: Any, **kwargs: Any) -> Any:
        out = op(*args, **kwargs)
        _LATEST[:] = [out]
        return out

    return record


class TapeReplaysFromLatest(TorchAdapter):
    """A tape engine that always replays from the end of the tape, whatever root it is given."""

    breaks = ("backward.root.intermediate",)
    ops = types.SimpleNamespace(**{name: _recording(op) for name, op in vars(OPS).items()})

    def backward(self, t: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> None:
        latest = _LATEST[0] if _LATEST else t
        root = latest if latest.requires_grad and latest.shape == t.shape else t
        super().backward(root, gradient, *args, **kwargs)


class RetainsGraphAlways(TorchAdapter):
    """Never frees saved tensors: retain_graph is forced on, so a second pass never raises."""

    breaks = (
        "backward.graph.second-backward-raises",
        "backward.graph.last-pass-frees",
        "backward.graph.grad-call-frees-unless-retained",
    )

    def backward(self, t: torch.Tensor, gradient: Any = None, retain_graph: Any = None, *args: Any,
                 **kwargs: Any) -> None:  # fmt: skip
        super().backward(t, gradient, True, *args, **kwargs)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Any = None, *args: Any,
             **kwargs: Any) -> Any:  # fmt: skip
        return super().grad(outputs, inputs, grad_outputs, True, *args, **kwargs)


class IgnoresRetainGraph(TorchAdapter):
    """Frees the graph after every pass, whatever retain_graph (or create_graph) says."""

    breaks = (
        "backward.graph.retain-allows-second-pass",
        "backward.graph.grad-call-frees-unless-retained",
        "backward.graph.retain-defaults-to-create-graph",
    )

    def backward(self, t: torch.Tensor, gradient: Any = None, retain_graph: Any = None, *args: Any,
                 **kwargs: Any) -> None:  # fmt: skip
        super().backward(t, gradient, False, *args, **kwargs)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Any = None, *args: Any,
             **kwargs: Any) -> Any:  # fmt: skip
        return super().grad(outputs, inputs, grad_outputs, False, *args, **kwargs)


class FreesEveryGraph(TorchAdapter):
    """Marks a root as consumed after a non-retaining pass, even when its graph saved nothing."""

    breaks = ("backward.graph.nothing-saved-reusable",)

    def backward(self, t: torch.Tensor, gradient: Any = None, retain_graph: Any = None, *args: Any,
                 **kwargs: Any) -> None:  # fmt: skip
        if getattr(t, "consumed", False):
            raise RuntimeError("Trying to backward through the graph a second time")
        super().backward(t, gradient, retain_graph, *args, **kwargs)
        t.consumed = not retain_graph


class EmptyInputsMeansAll(TorchAdapter):
    """Tests inputs for truth, so inputs=[] behaves like no inputs argument."""

    breaks = ("backward.inputs.empty-raises",)

    def backward(self, t: torch.Tensor, gradient: Any = None, retain_graph: Any = None, create_graph: bool = False,
                 inputs: Any = None) -> None:  # fmt: skip
        super().backward(t, gradient, retain_graph, create_graph, inputs or None)


class BackwardInputsMaterializeZeros(TorchAdapter):
    """Implements backward(inputs=...) through grad(materialize_grads=True), so unused inputs get zeros."""

    breaks = ("backward.inputs.unused-ignored",)

    def backward(self, t: torch.Tensor, gradient: Any = None, retain_graph: Any = None, create_graph: bool = False,
                 inputs: Any = None) -> None:  # fmt: skip
        if inputs is None:
            return super().backward(t, gradient, retain_graph, create_graph)
        grads = torch.autograd.grad(t, inputs, gradient, retain_graph, create_graph, materialize_grads=True)
        for i, g in zip(inputs, grads):
            i.grad = g if i.grad is None else i.grad + g
        return None


class GradAllowsUnusedByDefault(TorchAdapter):
    """Defaults allow_unused to True, so an unused input silently yields None."""

    breaks = ("backward.grad-call.unused-input-raises",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Any = None,
             create_graph: bool = False, allow_unused: Any = None, materialize_grads: bool = False) -> Any:  # fmt: skip
        allow = True if allow_unused is None else allow_unused
        return super().grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow, materialize_grads)


class GradMaterializesUnused(TorchAdapter):
    """Returns zeros for unused inputs under allow_unused=True, as if materialize_grads were set."""

    breaks = ("backward.grad-call.allow-unused-none",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Any = None,
             create_graph: bool = False, allow_unused: Any = None, materialize_grads: bool = False) -> Any:  # fmt: skip
        materialize = materialize_grads or bool(allow_unused)
        return super().grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused, materialize)


class MaterializeIgnored(TorchAdapter):
    """Reads materialize_grads as allow_unused only: unused inputs yield None, not zeros."""

    breaks = ("backward.grad-call.materialize-grads-zeros",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Any = None,
             create_graph: bool = False, allow_unused: Any = None, materialize_grads: bool = False) -> Any:  # fmt: skip
        allow = True if materialize_grads else allow_unused
        return super().grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow)


class MaterializeOverridesAllowUnused(TorchAdapter):
    """Lets materialize_grads silently override an explicit allow_unused=False."""

    breaks = ("backward.grad-call.materialize-needs-allow-unused",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Any = None,
             create_graph: bool = False, allow_unused: Any = None, materialize_grads: bool = False) -> Any:  # fmt: skip
        allow = None if materialize_grads else allow_unused
        return super().grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow, materialize_grads)


class BackwardManyZipsGradients(TorchAdapter):
    """Pairs roots and gradients with zip, silently dropping the roots left without one."""

    breaks = ("backward.backward-many.count-mismatch-raises",)

    def backward_many(self, tensors: Any, grad_tensors: Any = None, *args: Any, **kwargs: Any) -> None:
        if grad_tensors is not None:
            tensors = list(tensors)[: len(grad_tensors)]
        super().backward_many(tensors, grad_tensors, *args, **kwargs)
