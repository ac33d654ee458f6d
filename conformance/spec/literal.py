"""Python source for values, and the scripts built from them.

A rule's script is its constants (drawn arrays, the oracle's expectations) and a body of steps in
the runtime vocabulary. The suite runs the body, compiled once, with the constants bound as values;
the literal text of the constants is rendered only when a person must read or rerun the script (a
failure, its repro, a rule's example). ``bindable`` and ``literal`` agree, so both run the same thing.
Its own module so that the templates, the random programs and the stateful model can all use it
without importing each other.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

import numpy as np


def literal(value: Any) -> str:
    """Python source that rebuilds ``bindable(value)`` exactly (arrays via a flat list and a reshape)."""
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


def bindable(value: Any) -> Any:
    """The value ``eval(literal(value))`` gives: arrays as fresh float64 (or bool) arrays."""
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        return arr.copy() if arr.dtype in (bool, np.float64) else arr.astype(np.float64)
    if isinstance(value, dict):
        return {k: bindable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [bindable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(bindable(v) for v in value)
    return value


def _number(x: float) -> str:
    if np.isnan(x):
        return "np.nan"
    if np.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(x)


@dataclass(frozen=True)
class Script:
    """A rule's script on one case: ``constants`` (name -> value) and the ``body`` that uses them."""

    constants: Mapping[str, Any]
    body: str

    def text(self) -> str:
        """The standalone source: one ``NAME = literal`` line per constant, then the body."""
        return "".join(f"{name} = {literal(v)}\n" for name, v in self.constants.items()) + self.body

    def bindings(self) -> dict[str, Any]:
        """The constants as the text would define them (fresh arrays: a script may not alter a case)."""
        return {name: bindable(v) for name, v in self.constants.items()}

    def code(self, filename: str) -> CodeType:
        return _compiled(self.body, filename)


@functools.lru_cache(maxsize=4096)
def _compiled(body: str, filename: str) -> CodeType:
    """A body is the same for every case of a rule: compile it once."""
    return compile(body, filename, "exec")
