"""The checks' value comparison: its fast path decides exactly as ``np.allclose(..., equal_nan=True)``."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance.execute.runtime import _close

ELEMENTS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, 1.0 + 1e-7]))


@given(
    hnp.arrays(np.float64, st.integers(0, 4), elements=ELEMENTS),
    st.data(),
    st.sampled_from([(1e-7, 1e-10), (1e-3, 1e-4)]),
)
def test_close_is_allclose_with_equal_nan(got: np.ndarray, data: st.DataObject, tolerance: tuple[float, float]) -> None:
    expected = data.draw(hnp.arrays(np.float64, got.shape, elements=ELEMENTS))
    rtol, atol = tolerance
    assert _close(got, expected, rtol, atol) == np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    assert _close(got, got, rtol, atol)


def test_close_does_not_pass_a_finite_value_for_an_infinite_expectation() -> None:
    """The fast path's bound ``atol + rtol * |inf|`` is infinite: a finite value must not pass under it."""
    assert not _close(np.array([0.0]), np.array([np.inf]), 1e-7, 1e-10)
    assert not _close(np.array([1.0, 0.0]), np.array([1.0, -np.inf]), 1e-3, 1e-4)
    assert _close(np.array([np.inf]), np.array([np.inf]), 1e-7, 1e-10)
