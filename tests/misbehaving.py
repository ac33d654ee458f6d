"""Adapters that misbehave in one op or one method, the rest of the engine correct (the reference engine).

Each probes one way a run could end green by accident: a crash, a hang, a ``BaseException`` from the
engine, a result that changes when the same case is rerun, a value of the wrong kind crossing the adapter
boundary, or an adapter that does not meet the protocol. ``tests/test_isolation.py`` runs them through the command line, serially and with ``-n 2``.
"""

from __future__ import annotations

import os
import signal
import time
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.backends.reference import OPS, ReferenceAdapter


def _with_sigmoid(fn: Callable[..., Any]) -> types.SimpleNamespace:
    """The reference ops with ``sigmoid`` replaced: only the rules that call it meet the misbehaviour."""
    return types.SimpleNamespace(**{**vars(OPS), "sigmoid": fn})


def _segfault(a: Any) -> Any:
    os.kill(os.getpid(), signal.SIGSEGV)


def _hang(a: Any) -> Any:
    time.sleep(3600)


def _interrupt(a: Any) -> Any:
    raise KeyboardInterrupt


def _exit(a: Any) -> Any:
    raise SystemExit(3)


class EngineAbort(BaseException):
    """Not an ``Exception``: what an engine's own abort might raise."""


def _abort(a: Any) -> Any:
    raise EngineAbort("the engine gave up")


_CALLS = [0]


def _wrong_once(a: Any) -> Any:
    """Wrong on its first call only: the failing case passes when Hypothesis replays it."""
    _CALLS[0] += 1
    return OPS.sigmoid(a) if _CALLS[0] > 1 else OPS.neg(OPS.sigmoid(a))


class Segfaults(ReferenceAdapter):
    ops = _with_sigmoid(_segfault)


class Hangs(ReferenceAdapter):
    ops = _with_sigmoid(_hang)


class RaisesKeyboardInterrupt(ReferenceAdapter):
    ops = _with_sigmoid(_interrupt)


class RaisesSystemExit(ReferenceAdapter):
    ops = _with_sigmoid(_exit)


class RaisesBaseException(ReferenceAdapter):
    ops = _with_sigmoid(_abort)


class Nondeterministic(ReferenceAdapter):
    ops = _with_sigmoid(_wrong_once)


class NumpyWrongShape(ReferenceAdapter):
    """``numpy()`` adds a leading axis: compared after broadcasting, every value would still match."""

    def numpy(self, t: Any) -> np.ndarray:
        return super().numpy(t)[None]


class NumpyReturnsList(ReferenceAdapter):
    def numpy(self, t: Any) -> Any:
        return super().numpy(t).tolist()


class VjpTooFewGradients(ReferenceAdapter):
    def vjp(self, fn: Callable[..., Any], primals: Any, cotangent: Any) -> Any:
        out, grads = super().vjp(fn, primals, cotangent)
        return out, list(grads)[:-1]


class TypoCapability(ReferenceAdapter):
    capabilities = (ReferenceAdapter.capabilities - {"higher_order"}) | {"higher_ordr"}


class MissingMethod(ReferenceAdapter):
    """Declares ``retains_grad`` without the method."""

    retains_grad = None


class NoErrorsTable(ReferenceAdapter):
    errors = None


class UnknownErrorMeaning(ReferenceAdapter):
    errors = {**ReferenceAdapter.errors, "graph_free": (RuntimeError, None)}


class RaisingInit(ReferenceAdapter):
    def __init__(self) -> None:
        raise RuntimeError("no device found")


def not_a_class() -> None:
    """``--backend=tests.misbehaving:not_a_class`` names a function."""
