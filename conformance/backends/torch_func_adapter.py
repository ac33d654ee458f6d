"""PyTorch through ``torch.func`` only: the functional reference row for jax and autograd.

The same tensors, dtypes, devices and ops as the torch adapter (this class subclasses it, so a
reproduction script inlines both modules), but ``vjp`` is ``torch.func.vjp`` (nested for higher
order), ``jvp`` is ``torch.func.jvp`` (composing with it: forward-over-reverse and reverse-over-forward)
and no stateful capability is declared: the rules that need ``backward``, ``.grad``, grad
modes, ``detach`` or in-place ops are reported unsupported, so the stateful methods this class
inherits are never called. ``requires_grad`` is ignored, as ``torch.func`` needs no flag on its
primals, and the in-place ops are left out of the op catalog. ``custom_vjp`` and ``sgd_step`` are the
torch adapter's: a ``torch.autograd.Function`` with ``setup_context`` is what ``torch.func`` transforms.

Self-contained on purpose: it imports only torch, NumPy, the standard library and the torch
adapter's module, which the reproduction scripts inline before this one.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.func

from conformance.backends.pytorch import OPS, TorchAdapter

_INPLACE = ("add_", "sub_", "mul_", "zero_", "copy_", "setitem_")


class TorchFuncAdapter(TorchAdapter):
    """PyTorch's functional transforms (``torch.func``): the functional core only."""

    name = "torch-func"
    ops = types.SimpleNamespace(**{k: v for k, v in vars(OPS).items() if k not in _INPLACE})
    capabilities = frozenset(
        {
            "higher_order",
            "forward_mode",
            "integer_tensors",
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "mixed_dtypes",
            "custom_vjp",
            "functional_optimizer",
        }
    )
    errors = {
        meaning: TorchAdapter.errors[meaning]
        for meaning in (
            "incompatible_shapes",
            "invalid_expand",
            "grad_shape_mismatch",
            "device_mismatch",
            "nonfloat_differentiated",
        )
    }

    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> torch.Tensor:
        """``requires_grad`` is ignored: any tensor can be a primal of ``torch.func.vjp``."""
        return super().tensor(array, dtype, False, device)

    def vjp(
        self, fn: Callable[..., torch.Tensor], primals: Sequence[torch.Tensor], cotangent: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out, pullback = torch.func.vjp(fn, *primals)
        return out, list(pullback(cotangent))

    def jvp(
        self, fn: Callable[..., torch.Tensor], primals: Sequence[torch.Tensor], tangents: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.func.jvp(fn, tuple(primals), tuple(tangents))
