"""Adapters that break the dtypes rules: who may require grad, and the grad's dtype and device."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from conformance.backends.pytorch import OPS, TorchAdapter


def _tensors(args: tuple[Any, ...]) -> Iterator[torch.Tensor]:
    """The tensor arguments of an op call, inside lists (cat, stack) too."""
    for arg in args:
        if isinstance(arg, torch.Tensor):
            yield arg
        elif isinstance(arg, (list, tuple)):
            yield from _tensors(tuple(arg))


def _observed(observe: Callable[[tuple[Any, ...], Any], Any]) -> types.SimpleNamespace:
    """Every op of the catalog, with ``observe(args, out)`` deciding what each call returns."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args, **kwargs: observe(args, fn(*args, **kwargs))

    return types.SimpleNamespace(**{name: wrap(fn) for name, fn in vars(OPS).items()})


class NonFloatRequiresGradIgnored(TorchAdapter):
    """Asking an integer or bool tensor to require grad is silently ignored instead of raising."""

    breaks = ("dtypes.requires-grad.factory-rejects-non-float", "dtypes.requires-grad.method-rejects-non-float")

    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> torch.Tensor:
        t = super().tensor(array, dtype, False, device)
        return t.requires_grad_(requires_grad) if t.is_floating_point() else t

    def requires_grad_(self, t: torch.Tensor, flag: bool = True) -> torch.Tensor:
        return t.requires_grad_(flag) if t.is_floating_point() else t


class NonFloatRequiresGradFalseRaises(TorchAdapter):
    """Checks the dtype before looking at the flag, so requires_grad_(False) raises too."""

    breaks = ("dtypes.requires-grad.false-on-non-float-ok",)

    def requires_grad_(self, t: torch.Tensor, flag: bool = True) -> torch.Tensor:
        if not t.is_floating_point():
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        return t.requires_grad_(flag)


def _note_compute_dtype(args: tuple[Any, ...], out: Any) -> Any:
    if isinstance(out, torch.Tensor) and out.is_floating_point():
        for t in _tensors(args):
            t.compute_dtype = out.dtype
    return out


class GradInComputeDtype(TorchAdapter):
    """A leaf's gradient comes back in the dtype its last op computed in, not in the leaf's."""

    breaks = (
        "dtypes.grad.leaf-dtype",
        "dtypes.grad.mixed-paths-sum-in-leaf-dtype",
        "dtypes.grad.returned-in-input-dtype",
    )
    ops = _observed(_note_compute_dtype)

    @staticmethod
    def _in_compute_dtype(t: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor | None:
        return None if g is None else g.to(getattr(t, "compute_dtype", g.dtype))

    def grad_of(self, t: torch.Tensor) -> torch.Tensor | None:
        return self._in_compute_dtype(t, super().grad_of(t))

    def grad(self, outputs: Any, inputs: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor | None, ...]:
        grads = super().grad(outputs, inputs, *args, **kwargs)
        return tuple(self._in_compute_dtype(t, g) for t, g in zip(inputs, grads))


def _track_non_float(args: tuple[Any, ...], out: Any) -> Any:
    """Integer results remember the float tensor they came from; casting back reattaches it."""
    sources = [getattr(t, "grad_source", t) for t in _tensors(args) if t.requires_grad or hasattr(t, "grad_source")]
    if not (sources and isinstance(out, torch.Tensor)):
        return out
    if not out.is_floating_point():
        out.grad_source = sources[0]
        return out
    if out.requires_grad:
        return out
    source = sources[0].to(out.dtype)
    return out + (source - source.detach())  # straight through: the cast's gradient is the identity


class NonFloatTracksGrad(TorchAdapter):
    """Integer and bool results stay attached to the graph, and casting them back is differentiable."""

    breaks = ("dtypes.non-float-outputs.never-require-grad", "dtypes.cast-to-int.breaks-graph")
    ops = _observed(_track_non_float)

    def requires_grad(self, t: torch.Tensor) -> bool:
        return t.requires_grad or hasattr(t, "grad_source")


class GradWrtNoGradIsZero(TorchAdapter):
    """autograd.grad answers zeros for an input that cannot require grad, instead of raising."""

    breaks = ("dtypes.grad.wrt-integer-raises",)

    def grad(self, outputs: Any, inputs: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor | None, ...]:
        tracked = [t for t in inputs if t.requires_grad]
        grads = iter(super().grad(outputs, tracked, *args, **kwargs) if tracked else ())
        return tuple(next(grads) if t.requires_grad else torch.zeros_like(t) for t in inputs)


class GradOnOtherDevice(TorchAdapter):
    """Gradients are allocated on a fixed device rather than on the leaf's."""

    breaks = ("dtypes.grad.on-leaf-device",)

    def grad_of(self, t: torch.Tensor) -> torch.Tensor | None:
        g = super().grad_of(t)
        return None if g is None else g.to("meta")
