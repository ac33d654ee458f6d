"""Adapters that break the end-to-end training rule."""

from __future__ import annotations

import torch

from conformance.backends.pytorch import TorchAdapter, with_ops


def _sub_lost_under_no_grad(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sub_ that, with grad mode off, computes into a new tensor and leaves ``a`` as it was."""
    return a.sub(b) if not torch.is_grad_enabled() else a.sub_(b)


class OptimizerStepLost(TorchAdapter):
    """An in-place update under no_grad writes to a copy: the parameters never move."""

    breaks = ("end_to_end.sgd.linear-regression",)
    ops = with_ops(sub_=_sub_lost_under_no_grad)
