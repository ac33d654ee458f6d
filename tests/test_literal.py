"""A script runs with its constants bound, and its repro runs them as literals: both must be the same values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conformance.spec.literal import Script, bindable, literal

VALUES = [
    np.array([[1.5, -0.25], [np.nan, np.inf]]),
    np.array([True, False]),
    np.float64(-0.0),
    np.float32(1.1),
    np.arange(3),
    np.zeros((0, 2)),
    (1, 2.5, "x", None),
    [np.ones(2), 3],
    {"a": np.array(-np.inf), "b": (4,)},
    -1e-300,
]


def _same(a: Any, b: Any) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
        if a.dtype != bool:
            assert np.array_equal(np.signbit(a), np.signbit(b))  # -0.0 stays -0.0
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    else:
        assert a == b and type(a) is type(b)


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_literal_rebuilds_the_bound_value(value: Any) -> None:
    _same(bindable(value), eval(literal(value), {"np": np}))


def test_bindings_are_fresh_copies() -> None:
    array = np.ones(3)
    script = Script({"X": array}, "X += 1\n")
    namespace = script.bindings()
    exec(script.code("<test>"), namespace)
    assert array.tolist() == [1.0, 1.0, 1.0]


def test_text_and_body_run_the_same() -> None:
    script = Script({"X": np.array([0.1, 0.2]), "K": 3}, "out = X * K\n")
    bound = script.bindings()
    exec(script.code("<test>"), bound)
    standalone: dict[str, Any] = {"np": np}
    exec(script.text(), standalone)
    _same(bound["out"], standalone["out"])
