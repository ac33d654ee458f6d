"""Python source for values: how drawn arrays and oracle expectations are written into scripts.

Its own module so that the templates, the random programs and the stateful model can all write
literals without importing each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def literal(value: Any) -> str:
    """Python source that rebuilds ``value`` exactly (arrays via a flat list and a reshape)."""
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        if arr.dtype == bool:
            items = ", ".join(repr(bool(x)) for x in arr.ravel())
            return f"np.array([{items}], dtype=bool).reshape({arr.shape})"
        items = ", ".join(_number(float(x)) for x in arr.astype(np.float64).ravel())
        return f"np.array([{items}], dtype=np.float64).reshape({arr.shape})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return _number(value)
    return repr(value)


def _number(x: float) -> str:
    if np.isnan(x):
        return "np.nan"
    if np.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(x)
