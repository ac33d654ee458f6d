"""The reference engine: PyTorch's autograd rules on NumPy, small enough to read in an afternoon.

``engine`` holds tensors, graph nodes, the graph walk, grad modes, hooks and custom Functions; ``ops``
holds the op table; ``optim`` a plain SGD optimizer.
Importing the package loads ``engine`` and ``ops`` (``ops`` gives tensors their operators).
"""

from conformance.reference import ops
from conformance.reference.engine import (
    Tensor,
    backward,
    enable_grad,
    grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
    tensor,
)

__version__ = "0.1.0"
__all__ = [
    "Tensor",
    "backward",
    "enable_grad",
    "grad",
    "inference_mode",
    "is_grad_enabled",
    "is_inference_mode_enabled",
    "no_grad",
    "ops",
    "set_grad_enabled",
    "tensor",
]
