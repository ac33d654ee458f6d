"""What a rule's script runs against: the scenario vocabulary and the checks.

Every rule expands into a short script (see ``templates``) written in this vocabulary. The
script runs with ``bind(adapter, ...)`` as its globals. Self-contained on purpose (NumPy and the
standard library only): a reproduction script inlines this file and the adapter's source, then
runs the very same script, so it reproduces a failure with the engine alone.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

DEFAULT_TOLERANCES = {
    "float16": (1e-2, 1e-2),
    "bfloat16": (4e-2, 4e-2),
    "float32": (1e-4, 1e-5),
    "float64": (1e-7, 1e-10),
}
"""(rtol, atol) per dtype when a rule gives none: engine values against the float64 oracle."""


class ConformanceFailure(AssertionError):
    """A check that diverged. ``kind`` names which check: the report groups failures by it."""

    KINDS = (
        "dtype",
        "shape",
        "value",
        "missing_grad",
        "unexpected_grad",
        "structure",
        "missing_error",
        "wrong_error",
        "unexpected_error",
        "adapter",
    )

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.detail = message


class AdapterMistake(ConformanceFailure):
    """The adapter broke the protocol (a value of the wrong type or shape crossed it): not the engine's fault."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__("adapter", f"the adapter's {method}() {message}")


def _raised_matches(exc: BaseException, spec: Any) -> bool:
    types, pattern = spec
    return isinstance(exc, types) and (pattern is None or re.search(pattern, str(exc)) is not None)


def _close(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> bool:
    """``np.allclose(..., equal_nan=True)``, its one formula tried first: most checks pass, and the
    formula alone costs a tenth of ``allclose``; NaNs and infinities take ``allclose``'s own path (an
    infinite expectation makes the formula's bound infinite: 0 would pass for inf)."""
    with np.errstate(invalid="ignore"):
        if (np.abs(got - expected) <= atol + rtol * np.abs(expected)).all() and np.isfinite(expected).all():
            return True
    return bool(np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True))


class Boundary:
    """The adapter's ``numpy`` and ``vjp`` with what crosses them checked, where that is cheap.

    A ``numpy()`` that returns a list or an array of another shape, or a ``vjp`` that returns too few
    gradients, is the adapter's mistake: it must not pass for (or be blamed on) the engine.
    """

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def numpy(self, t: Any) -> np.ndarray:
        got = self.adapter.numpy(t)
        if not isinstance(got, np.ndarray):
            raise AdapterMistake("numpy", f"returned a {type(got).__name__}, not a numpy.ndarray")
        shape = tuple(self.adapter.shape(t))
        if got.shape != shape:
            raise AdapterMistake("numpy", f"returned an array of shape {got.shape} for a tensor of shape {shape}")
        dtype = self.adapter.dtype(t)
        if dtype != "bfloat16" and got.dtype.name != dtype:  # NumPy has no bfloat16
            raise AdapterMistake("numpy", f"returned a {got.dtype.name} array for a {dtype} tensor")
        return got

    def vjp(self, fn: Any, primals: Any, cotangent: Any) -> tuple[Any, Any]:
        result = self.adapter.vjp(fn, primals, cotangent)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AdapterMistake("vjp", f"returned {type(result).__name__}, not a pair (output, gradients)")
        if len(result[1]) != len(primals):
            raise AdapterMistake("vjp", f"returned {len(result[1])} gradients for {len(primals)} primals")
        return result

    def jvp(self, fn: Any, primals: Any, tangents: Any) -> tuple[Any, Any]:
        if len(tangents) != len(primals):  # the script's own mistake, reported before the engine runs
            raise TypeError(f"jvp: {len(tangents)} tangents for {len(primals)} primals")
        result = self.adapter.jvp(fn, primals, tangents)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AdapterMistake("jvp", f"returned {type(result).__name__}, not a pair (output, tangent)")
        if isinstance(result[1], (list, tuple)):
            raise AdapterMistake("jvp", f"returned a {type(result[1]).__name__} of tangents, not one output tangent")
        return result


class Checks:
    """The ``expect_*`` vocabulary, bound to one adapter, dtype and tolerance table."""

    def __init__(self, adapter: Any, dtype: str, tolerances: dict[str, tuple[float, float]]) -> None:
        self.adapter = adapter
        self.boundary = Boundary(adapter)
        self.dtype = dtype
        self.tolerances = {**DEFAULT_TOLERANCES, **tolerances}

    def expect_close(self, actual: Any, expected: Any, dtype: str | None = None) -> None:
        """dtype, then shape, then values (NaN equals NaN, infinities must match)."""
        if actual is None:
            raise ConformanceFailure("missing_grad", "expected a tensor, got None")
        want_dtype = dtype or self.dtype
        got_dtype = self.adapter.dtype(actual)
        if got_dtype != want_dtype:
            raise ConformanceFailure("dtype", f"dtype is {got_dtype}, expected {want_dtype}")
        expected = np.asarray(expected, dtype=np.float64)
        got_shape = tuple(self.adapter.shape(actual))
        if got_shape != expected.shape:
            raise ConformanceFailure("shape", f"shape is {got_shape}, expected {expected.shape}")
        got = np.asarray(self.boundary.numpy(actual), dtype=np.float64)
        rtol, atol = self.tolerances[want_dtype]
        if not _close(got, expected, rtol, atol):
            with np.errstate(invalid="ignore"):
                err = np.nanmax(np.abs(got - expected)) if got.size else 0.0
            raise ConformanceFailure(
                "value",
                f"values differ (rtol={rtol}, atol={atol}, max abs err={err:.3g})\n"
                f"  got:      {np.array2string(got, precision=6)}\n"
                f"  expected: {np.array2string(expected, precision=6)}",
            )

    def expect_grad(self, t: Any, expected: Any, dtype: str | None = None) -> None:
        """``t.grad`` is present and close to ``expected``."""
        grad = self.adapter.grad_of(t)
        if grad is None:
            raise ConformanceFailure("missing_grad", ".grad is None, expected a gradient")
        self.expect_close(grad, expected, dtype)

    def expect_no_grad(self, t: Any) -> None:
        """``t.grad`` is None."""
        grad = self.adapter.grad_of(t)
        if grad is not None:
            raise ConformanceFailure("unexpected_grad", f".grad is {self.boundary.numpy(grad)!r}, expected None")

    def expect_none(self, value: Any) -> None:
        if value is not None:
            raise ConformanceFailure("unexpected_grad", f"got {value!r}, expected None")

    def expect_equal(self, actual: Any, expected: Any) -> None:
        """A structural fact: a flag, a shape, a dtype name."""
        if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
            actual, expected = tuple(actual), tuple(expected)
        if actual != expected:
            raise ConformanceFailure("structure", f"got {actual!r}, expected {expected!r}")

    def expect_shape(self, t: Any, shape: Any) -> None:
        got = tuple(self.adapter.shape(t))
        if got != tuple(shape):
            raise ConformanceFailure("shape", f"shape is {got}, expected {tuple(shape)}")

    @contextmanager
    def raises(self, meaning: str) -> Iterator[None]:
        """The block must raise what the adapter maps ``meaning`` to."""
        spec = self.adapter.errors.get(meaning)
        if spec is None:
            raise ConformanceFailure("missing_error", f"the adapter maps no error to {meaning!r}")
        try:
            yield
        except Exception as exc:  # the engine's own exception, whatever its type
            if not _raised_matches(exc, spec):
                raise ConformanceFailure(
                    "wrong_error", f"expected {meaning} ({spec}), got {type(exc).__name__}: {exc}"
                ) from exc
        else:
            raise ConformanceFailure("missing_error", f"expected {meaning}, nothing was raised")

    @contextmanager
    def raises_one_of(self, meanings: list[str], required: bool = True) -> Iterator[list[str]]:
        """A block that must (or, with ``required=False``, may) raise one of ``meanings``.

        Yields a list that receives the meaning raised, so a caller (the stateful model) learns what happened.
        """
        raised: list[str] = []
        try:
            yield raised
        except Exception as exc:  # the engine's own exception, whatever its type
            errors = self.adapter.errors
            matched = [m for m in meanings if m in errors and _raised_matches(exc, errors[m])]
            if not matched:
                detail = f"expected one of {meanings}, got {type(exc).__name__}: {exc}"
                raise ConformanceFailure("wrong_error", detail) from exc
            raised.append(matched[0])
        else:
            if required:
                raise ConformanceFailure("missing_error", f"expected one of {meanings}, nothing was raised")


STATEFUL = (
    "grad_of",
    "set_grad",
    "is_leaf",
    "requires_grad",
    "has_grad_fn",
    "requires_grad_",
    "backward",
    "backward_many",
    "grad",
    "retain_grad",
    "retains_grad",
    "detach",
    "detach_",
    "shares_storage",
    "version",
    "is_inference",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "inference_mode",
    "register_hook",
    "register_post_accumulate_grad_hook",
    "remove_hook",
    "function",
    "save_for_backward",
    "saved_tensors",
    "needs_input_grad",
    "mark_non_differentiable",
    "optimizer",
    "zero_grad",
    "step",
    "custom_vjp",
    "sgd_step",
    "numpy",
    "dtype",
    "shape",
    "device",
    "vjp",
    "jvp",
)
"""Adapter methods a script may call by their bare names."""

CHECKS = (
    "expect_close",
    "expect_grad",
    "expect_no_grad",
    "expect_none",
    "expect_equal",
    "expect_shape",
    "raises",
    "raises_one_of",
)


def bind(
    adapter: Any, dtype: str, device: str = "cpu", tolerances: dict[str, tuple[float, float]] | None = None
) -> dict[str, Any]:
    """The globals a rule's script runs with: ops, adapter methods, checks, ``tensor``."""
    checks = Checks(adapter, dtype, tolerances or {})

    def tensor(array: Any, dtype: str | None = None, requires_grad: bool = False) -> Any:
        """A leaf from an array, in the rule's dtype and device unless told otherwise."""
        return adapter.tensor(np.asarray(array), dtype or checks.dtype, requires_grad, device)

    namespace: dict[str, Any] = {"np": np, "adapter": adapter, "DTYPE": dtype, "DEVICE": device}
    namespace.update({n: getattr(adapter.ops, n) for n in dir(adapter.ops) if not n.startswith("_")})
    namespace.update({name: getattr(adapter, name) for name in STATEFUL if hasattr(adapter, name)})
    namespace.update({name: getattr(checks, name) for name in CHECKS})
    namespace.update(numpy=checks.boundary.numpy, vjp=checks.boundary.vjp)
    if hasattr(adapter, "jvp"):
        namespace["jvp"] = checks.boundary.jvp
    namespace["tensor"] = tensor
    namespace["in_thread"] = in_thread
    return namespace


def in_thread(fn: Any) -> Any:
    """``fn()`` run in a new thread: grad mode is thread-local, so this shows the default."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # re-raised in the caller, where the rule's checks run
            outcome["error"] = exc

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
