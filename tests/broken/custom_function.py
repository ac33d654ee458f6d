"""Adapters that break the custom Function rules: the backward used, ctx, None gradients, double backward; and
their functional twins (custom_vjp): the vjp used, what it sees, None cotangents, second order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from conformance.backends.pytorch import TorchAdapter
from conformance.backends.torch_func_adapter import TorchFuncAdapter


class _Ctx:
    """A stand-in ctx for a forward that is run as plain ops."""

    def __init__(self, inputs: tuple[Any, ...]) -> None:
        self.needs_input_grad = tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in inputs)
        self.saved_tensors: tuple[torch.Tensor, ...] = ()

    def save_for_backward(self, *tensors: torch.Tensor) -> None:
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *outputs: torch.Tensor) -> None:
        pass


class ForwardDifferentiated(TorchAdapter):
    """The custom backward is never called: autograd differentiates the forward's ops instead."""

    breaks = ("custom_function.backward.is-the-gradient",)

    def function(
        self, forward: Callable[..., Any], backward: Callable[..., Any], once_differentiable: bool = False
    ) -> Any:
        return lambda *inputs: forward(_Ctx(inputs), *inputs)


class SavedTensorsReversed(TorchAdapter):
    """saved_tensors hands the saved tensors back in reverse order."""

    breaks = ("custom_function.saved-tensors.from-forward",)

    def saved_tensors(self, ctx: Any) -> tuple[torch.Tensor, ...]:
        return tuple(reversed(ctx.saved_tensors))


class SavedTensorsCopied(TorchAdapter):
    """save_for_backward saves copies, so an in-place write to the original goes unnoticed."""

    breaks = ("custom_function.saved-tensors.inplace-detected",)

    def save_for_backward(self, ctx: Any, *tensors: torch.Tensor) -> None:
        ctx.save_for_backward(*(t.detach().clone() for t in tensors))


class NeedsInputGradAllTrue(TorchAdapter):
    """needs_input_grad says True for every input, whether it requires grad or not."""

    breaks = ("custom_function.needs-input-grad.matches",)

    def needs_input_grad(self, ctx: Any) -> tuple[bool, ...]:
        return (True,) * len(ctx.needs_input_grad)


class NoneGradientAsZeros(TorchAdapter):
    """A None gradient from backward is turned into zeros: the leaf gets a .grad of zeros."""

    breaks = ("custom_function.none-gradient.means-none",)

    def function(
        self, forward: Callable[..., Any], backward: Callable[..., Any], once_differentiable: bool = False
    ) -> Any:
        def remembering(ctx: Any, *inputs: Any) -> Any:
            ctx.input_shapes = [a.shape if isinstance(a, torch.Tensor) else None for a in inputs]
            return forward(ctx, *inputs)

        def zero_filled(ctx: Any, g: torch.Tensor) -> Any:
            grads = backward(ctx, g)
            grads = grads if isinstance(grads, tuple) else (grads,)
            return tuple(
                torch.zeros(shape, dtype=g.dtype) if gi is None and shape is not None else gi
                for gi, shape in zip(grads, ctx.input_shapes)
            )

        return super().function(remembering, zero_filled, once_differentiable)


class NonDifferentiableIgnored(TorchAdapter):
    """mark_non_differentiable does nothing: the marked output still requires grad."""

    breaks = ("custom_function.non-differentiable.output",)

    def mark_non_differentiable(self, ctx: Any, *outputs: torch.Tensor) -> None:
        pass


class BackwardNeverRecorded(TorchAdapter):
    """The custom backward always runs with grad mode off: its result cannot be differentiated again."""

    breaks = ("custom_function.double-backward.differentiable-ops",)

    def function(
        self, forward: Callable[..., Any], backward: Callable[..., Any], once_differentiable: bool = False
    ) -> Any:
        def unrecorded(ctx: Any, g: torch.Tensor) -> Any:
            with torch.no_grad():
                return backward(ctx, g)

        return super().function(forward, unrecorded, False)


class OnceDifferentiableIgnored(TorchAdapter):
    """once_differentiable is ignored: a second differentiation silently goes through."""

    breaks = ("custom_function.once-differentiable.raises",)

    def function(
        self, forward: Callable[..., Any], backward: Callable[..., Any], once_differentiable: bool = False
    ) -> Any:
        return super().function(forward, backward, False)


# -- custom_vjp, the functional twin -------------------------------------------------------------------


class CustomVjpDifferentiatesForward(TorchFuncAdapter):
    """custom_vjp ignores the custom vjp: the engine differentiates the forward's ops instead."""

    breaks = (
        "custom_function.vjp.is-the-gradient",
        "custom_function.vjp.sees-inputs-and-output",
        "custom_function.vjp.none-means-zero",
    )

    def custom_vjp(self, forward: Callable[..., Any], vjp: Callable[..., Any]) -> Callable[..., Any]:
        return forward


class CustomVjpInputsReversed(TorchFuncAdapter):
    """The custom vjp is handed the op's inputs in reverse order."""

    breaks = ("custom_function.vjp.sees-inputs-and-output",)

    def custom_vjp(self, forward: Callable[..., Any], vjp: Callable[..., Any]) -> Callable[..., Any]:
        return super().custom_vjp(forward, lambda inputs, output, g: vjp(inputs[::-1], output, g))


class CustomVjpNoneAsCotangent(TorchFuncAdapter):
    """A None from the custom vjp becomes the op's cotangent, not zeros (MLX's custom_function does this)."""

    breaks = ("custom_function.vjp.none-means-zero",)

    def custom_vjp(self, forward: Callable[..., Any], vjp: Callable[..., Any]) -> Callable[..., Any]:
        def filled(inputs: tuple[torch.Tensor, ...], output: torch.Tensor, g: torch.Tensor) -> tuple[Any, ...]:
            return tuple(g if c is None else c for c in vjp(inputs, output, g))

        return super().custom_vjp(forward, filled)


class CustomVjpInputsDetached(TorchFuncAdapter):
    """The custom vjp sees detached inputs, so a nested vjp cannot differentiate what it computes."""

    breaks = ("custom_function.vjp.second-order",)

    def custom_vjp(self, forward: Callable[..., Any], vjp: Callable[..., Any]) -> Callable[..., Any]:
        def detached(inputs: tuple[torch.Tensor, ...], output: torch.Tensor, g: torch.Tensor) -> Any:
            return vjp(tuple(t.detach() for t in inputs), output, g)

        return super().custom_vjp(forward, detached)
