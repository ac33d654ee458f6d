"""An optimizer for the reference engine: plain SGD, as ``torch.optim.SGD`` without momentum.

``step`` updates each parameter in place with grad mode off, so a parameter stays a leaf and its
version counter counts the update; ``zero_grad`` sets each ``.grad`` to None (PyTorch's default,
``set_to_none=True``), or zeros it in place. ``sgd_step`` is the same step as a function of values.
"""

from __future__ import annotations

from collections.abc import Iterable

from conformance.reference import ops
from conformance.reference.engine import Tensor, no_grad


class SGD:
    """``p -= lr * p.grad`` for every parameter that has a gradient."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        self.lr = lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                ops.zero_(p.grad)

    def step(self) -> None:
        with no_grad():
            for p in self.params:
                if p.grad is not None:
                    ops.sub_(p, ops.mul(p.grad, self.lr))


def sgd_step(params: Iterable[Tensor], grads: Iterable[Tensor], lr: float) -> list[Tensor]:
    """One ``SGD.step`` as a function: on copies of ``params`` whose ``.grad`` are ``grads``, so the
    arguments are left as they were; the updated copies, detached, are the new parameters."""
    with no_grad():
        copies = [ops.clone(p) for p in params]
    for copy, g in zip(copies, grads):
        copy.grad = g
    SGD(copies, lr).step()
    return [copy.detach() for copy in copies]
