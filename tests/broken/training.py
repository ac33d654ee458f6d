"""Adapters that break the training rules: zero_grad, accumulation, detach between segments, the step (and the
functional step, sgd_step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from conformance.backends.pytorch import TorchAdapter


class ZeroGradDoesNothing(TorchAdapter):
    """zero_grad leaves the gradients in place, so the next step adds the old ones."""

    breaks = ("training.zero-grad.clears",)

    def zero_grad(self, opt: torch.optim.Optimizer) -> None:
        pass


class BackwardOverwritesGrad(TorchAdapter):
    """Each backward replaces the parameters' .grad instead of adding to it."""

    breaks = ("training.zero-grad.without-it-gradients-add", "training.accumulation.micro-batches")

    def __init__(self) -> None:
        self.params: list[torch.Tensor] = []

    def optimizer(self, params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        self.params = list(params)
        return super().optimizer(params, lr)

    def backward(self, t: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        for p in self.params:
            p.grad = None
        super().backward(t, *args, **kwargs)


class DetachKeepsHistory(TorchAdapter):
    """detach() returns an alias still attached to the graph: the second segment reaches into the first."""

    breaks = ("training.recurrent.detach-between-segments",)

    def detach(self, t: torch.Tensor) -> torch.Tensor:
        return t.view_as(t)


class StepTooLarge(TorchAdapter):
    """The optimizer's learning rate is off by a factor of two, in the stateful step and in sgd_step."""

    breaks = (
        "training.sgd.two-layer-trajectory",
        "training.zero-grad.clears",
        "training.zero-grad.without-it-gradients-add",
        "training.accumulation.micro-batches",
        "training.functional.two-layer-trajectory",
        "training.functional.micro-batches",
    )

    def optimizer(self, params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        return super().optimizer(params, 2 * lr)

    def sgd_step(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float) -> list[torch.Tensor]:
        return super().sgd_step(params, grads, 2 * lr)


class SgdStepReturnsOldParams(TorchAdapter):
    """sgd_step steps copies of the parameters but returns the parameters it was given."""

    breaks = ("training.functional.two-layer-trajectory", "training.functional.micro-batches")

    def sgd_step(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float) -> list[torch.Tensor]:
        super().sgd_step(params, grads, lr)
        return list(params)


class StepRecorded(TorchAdapter):
    """The step is recorded in the graph (through a learning rate that requires grad): parameters become non-leaves."""

    breaks = ("training.step.params-stay-leaves",)

    def step(self, opt: torch.optim.Optimizer) -> None:
        for group in opt.param_groups:
            lr = torch.tensor(group["lr"], requires_grad=True)
            for p in group["params"]:
                if p.grad is not None:
                    p.requires_grad_(False)
                    p.sub_(p.grad * lr)
