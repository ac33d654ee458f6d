"""Adapters that break the grad-mode rules: no_grad, enable_grad, set_grad_enabled, inference_mode."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from conformance.backends.pytorch import OPS, TorchAdapter, with_ops

INPLACE = ("add_", "sub_", "mul_", "zero_", "copy_", "setitem_")


class _Mode(contextlib.ContextDecorator):
    """A grad-mode context written the naive way: flag on entry, saved mode back on exit.

    As a plain ``ContextDecorator`` it wraps only the call, so a generator it decorates is
    resumed outside it. ``flag`` None leaves the mode alone (an inert context).
    """

    def __init__(self, flag: bool | None) -> None:
        self.flag = flag

    def __enter__(self) -> None:
        self.saved = torch.is_grad_enabled()
        if self.flag is not None:
            torch.set_grad_enabled(self.flag)

    def __exit__(self, kind: Any, *rest: Any) -> None:
        torch.set_grad_enabled(self.restored(kind is not None))

    def restored(self, failed: bool) -> bool:
        """The mode to leave behind."""
        return self.saved


class _ExitEnables(_Mode):
    """Leaves grad enabled on exit, whatever the mode was before the block."""

    def restored(self, failed: bool) -> bool:
        return True


class _LeaksOnError(_Mode):
    """Restores the saved mode only when the block exits normally."""

    def restored(self, failed: bool) -> bool:
        return torch.is_grad_enabled() if failed else self.saved


class NoGradIsNoop(TorchAdapter):
    """no_grad() changes nothing: every op inside it is still recorded."""

    breaks = (
        "grad_mode.no_grad.result-is-untracked-leaf",
        "grad_mode.no_grad.result-is-constant-later",
        "grad_mode.no_grad.optimizer-step-on-leaf",
    )

    def no_grad(self) -> Any:
        return _Mode(None)


class EnableGradIsNoop(TorchAdapter):
    """enable_grad() changes nothing, so inside no_grad it does not turn recording back on."""

    breaks = ("grad_mode.nesting.inner-block-restores-outer-mode", "grad_mode.decorator.applies-mode-to-calls")

    def enable_grad(self) -> Any:
        return _Mode(None)


class NoGradExitEnables(TorchAdapter):
    """Leaving no_grad sets grad mode on instead of restoring it: nested no_grad blocks leak."""

    breaks = ("grad_mode.nesting.inner-block-restores-outer-mode",)

    def no_grad(self) -> Any:
        return _ExitEnables(False)


class SetGradEnabledIgnored(TorchAdapter):
    """set_grad_enabled(flag) is accepted but never changes the mode."""

    breaks = ("grad_mode.set_grad_enabled.context-sets-mode",)

    def set_grad_enabled(self, flag: bool) -> Any:
        return _Mode(None)


class _WithOnly:
    """A mode that works in a ``with`` statement, while its decorator form returns the function as is."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def __enter__(self) -> None:
        self.context = self.make()
        self.context.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.context.__exit__(*exc)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return fn


class DecoratorForgetsMode(TorchAdapter):
    """no_grad(), enable_grad() and inference_mode() as decorators do nothing."""

    breaks = ("grad_mode.decorator.applies-mode-to-calls", "grad_mode.inference_mode.decorator")

    def no_grad(self) -> Any:
        return _WithOnly(torch.no_grad)

    def enable_grad(self) -> Any:
        return _WithOnly(torch.enable_grad)

    def inference_mode(self) -> Any:
        return _WithOnly(torch.inference_mode)


class GeneratorResumedOutsideNoGrad(TorchAdapter):
    """no_grad as a plain ContextDecorator: a decorated generator only gets the mode while being created."""

    breaks = ("grad_mode.decorator.generator-resumptions",)

    def no_grad(self) -> Any:
        return _Mode(False)


class NoGradLeaksOnError(TorchAdapter):
    """An exception leaving no_grad skips the restore: grad stays off in that thread."""

    breaks = ("grad_mode.no_grad.restored-on-exception",)

    def no_grad(self) -> Any:
        return _LeaksOnError(False)


_PROCESS_WIDE = {"enabled": True}
"""ProcessWideGradMode's flag: one for all threads."""


@contextlib.contextmanager
def _process_wide(flag: bool) -> Iterator[None]:
    saved, _PROCESS_WIDE["enabled"] = _PROCESS_WIDE["enabled"], flag
    try:
        yield
    finally:
        _PROCESS_WIDE["enabled"] = saved


def _under_process_wide_mode(op: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.set_grad_enabled(_PROCESS_WIDE["enabled"]):
            return op(*args, **kwargs)

    return run


class ProcessWideGradMode(TorchAdapter):
    """Grad mode is one global flag that every op consults, so threads share it."""

    breaks = ("grad_mode.thread-local",)
    ops = types.SimpleNamespace(**{name: _under_process_wide_mode(op) for name, op in vars(OPS).items()})

    def no_grad(self) -> Any:
        return _process_wide(False)

    def enable_grad(self) -> Any:
        return _process_wide(True)

    def set_grad_enabled(self, flag: bool) -> Any:
        return _process_wide(flag)

    def is_grad_enabled(self) -> bool:
        return _PROCESS_WIDE["enabled"]


class FactoryFollowsGradMode(TorchAdapter):
    """requires_grad=True is dropped for tensors created while grad mode is off."""

    breaks = ("grad_mode.no_grad.factory-requires-grad",)

    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> torch.Tensor:
        return super().tensor(array, dtype, requires_grad and torch.is_grad_enabled(), device)


class BackwardSkippedUnderNoGrad(TorchAdapter):
    """backward() does nothing while grad mode is off."""

    breaks = ("grad_mode.no_grad.backward-still-computes",)

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        if torch.is_grad_enabled():
            super().backward(t, *args, **kwargs)


class CreateGraphFollowsGradMode(TorchAdapter):
    """The backward pass runs under the caller's grad mode, so create_graph is lost inside no_grad."""

    breaks = ("grad_mode.no_grad.create-graph-still-records",)

    def grad(self, outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Any = None,
             create_graph: bool = False, **kwargs: Any) -> Any:  # fmt: skip
        create_graph = create_graph and torch.is_grad_enabled()
        return super().grad(outputs, inputs, grad_outputs, retain_graph, create_graph, **kwargs)


def _unchecked(op: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """An in-place op that silently runs untracked on a leaf requiring grad."""

    def run(a: torch.Tensor, *args: Any) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not (a.is_leaf and a.requires_grad)):
            return op(a, *args)

    return run


class LeafInplaceUnchecked(TorchAdapter):
    """In-place ops on a leaf that requires grad are allowed with grad mode on."""

    breaks = (
        "grad_mode.inplace.leaf-outside-no-grad-raises",
        "grad_mode.inplace.leaf-setitem-outside-no-grad-raises",
    )
    ops = with_ops(**{name: _unchecked(getattr(OPS, name)) for name in INPLACE})


def _bypassing_version_when_untracked(op: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Under no_grad, write through ``.data``, which has its own version counter."""

    def run(a: torch.Tensor, *args: Any) -> torch.Tensor:
        if torch.is_grad_enabled():
            return op(a, *args)
        op(a.data, *args)
        return a

    return run


class NoGradWritesBypassVersion(TorchAdapter):
    """In-place writes under no_grad do not bump the version counter (the .data pattern)."""

    breaks = ("grad_mode.no_grad.inplace-still-bumps-version",)
    ops = with_ops(**{name: _bypassing_version_when_untracked(getattr(OPS, name)) for name in INPLACE})


class VjpFollowsGradMode(TorchAdapter):
    """The functional vjp records its function under the caller's grad mode."""

    breaks = ("grad_mode.no_grad.functional-vjp-unaffected",)

    def vjp(self, fn: Callable[..., torch.Tensor], primals: Any, cotangent: torch.Tensor) -> Any:
        inner = [p if p.requires_grad else p.detach().requires_grad_() for p in primals]
        out = fn(*inner)
        grads = torch.autograd.grad(out, inner, cotangent, create_graph=True, allow_unused=True, materialize_grads=True)
        return out, list(grads)


class InferenceModeIsNoGrad(TorchAdapter):
    """inference_mode is plain no_grad: its results are ordinary tensors."""

    breaks = (
        "grad_mode.inference_mode.results-are-inference-tensors",
        "grad_mode.inference_mode.saved-for-backward-raises",
    )

    def inference_mode(self) -> Any:
        return torch.no_grad()


def _rejecting_inference(op: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Rejects an inference tensor in any recorded op, whether or not the op saves it."""

    def run(*args: Any, **kwargs: Any) -> torch.Tensor:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        recorded = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if recorded and any(t.is_inference() for t in tensors):
            raise RuntimeError("Inference tensors cannot be saved for backward.")
        return op(*args, **kwargs)

    return run


class InferenceTensorsRejected(TorchAdapter):
    """Inference tensors are refused by every recorded op, even one that saves nothing."""

    breaks = ("grad_mode.inference_mode.unsaved-use-accepted",)
    ops = with_ops(add=_rejecting_inference(OPS.add), mul=_rejecting_inference(OPS.mul))
