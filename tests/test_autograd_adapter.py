"""The HIPS autograd adapter against autograd itself: tensors, dtypes, devices, vjp and errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from conformance.execute.runtime import Checks
from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS
from tests.adapter_checks import (
    INPLACE_OPS,
    STATEFUL,
    check_custom_vjp,
    check_sgd_step,
    check_vjp_of_a_broadcast_product,
    check_vjp_unused_primal_and_nesting,
)

anp = pytest.importorskip("autograd.numpy", reason="autograd is not installed")
AutogradAdapter = pytest.importorskip("conformance.backends.autograd_adapter").AutogradAdapter

DTYPES = ("float16", "float32", "float64", "int64", "int32", "bool")
"""What NumPy (so autograd) has among the suite's dtypes: no bfloat16."""


def test_functional_core_only() -> None:
    adapter = AutogradAdapter()
    assert adapter.capabilities <= set(CAPABILITIES) and not adapter.capabilities & STATEFUL
    assert {"float64", "float16", "higher_order", "integer_tensors"} <= adapter.capabilities
    assert "bfloat16" not in adapter.capabilities
    assert set(adapter.errors) <= set(ERROR_MEANINGS)
    assert set(vars(adapter.ops)) == set(OPS) - INPLACE_OPS
    assert not hasattr(adapter, "backward") and not hasattr(adapter, "grad_of")


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_round_trip_keeps_values_and_dtype(dtype: str) -> None:
    adapter = AutogradAdapter()
    array = np.array([[0, 1, 2], [3, 4, 5]]).astype(dtype)
    t = adapter.tensor(array, dtype)
    assert isinstance(t, np.ndarray)  # an ArrayBox exists only inside a trace
    assert adapter.dtype(t) == dtype and adapter.shape(t) == (2, 3)
    back = adapter.numpy(t)
    assert back.dtype.name == dtype and np.array_equal(back, array)
    back[0, 0] = 1
    assert adapter.numpy(t)[0, 0] == array[0, 0], "numpy() must return a copy"


def test_float32_stays_float32_through_autograd_numpy() -> None:
    """autograd is float64 by default in its examples, but its ops keep a float32 array's dtype."""
    adapter = AutogradAdapter()
    x = adapter.tensor(np.ones(3), "float32")
    out, (grad,) = adapter.vjp(
        lambda a: adapter.ops.tanh(adapter.ops.mul(a, 2.0)), [x], adapter.tensor(np.ones(3), "float32")
    )
    assert adapter.dtype(out) == "float32" and adapter.dtype(grad) == "float32"


def test_devices() -> None:
    adapter = AutogradAdapter()
    assert tuple(adapter.devices()) == ("cpu",)
    assert adapter.device(adapter.tensor(np.zeros(2), "float64")) == "cpu"


def test_vjp_of_a_broadcast_product() -> None:
    check_vjp_of_a_broadcast_product(AutogradAdapter())


def test_vjp_gives_zeros_for_an_unused_primal_and_nests() -> None:
    check_vjp_unused_primal_and_nesting(AutogradAdapter())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_custom_vjp_is_the_engines_own(dtype: str) -> None:
    check_custom_vjp(AutogradAdapter(), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_step_is_plain_sgd(dtype: str) -> None:
    check_sgd_step(AutogradAdapter(), dtype)


TRIGGERS: dict[str, Callable[[], object]] = {
    "incompatible_shapes": lambda: anp.add(np.ones((2, 3)), np.ones(4)),
    "invalid_expand": lambda: anp.broadcast_to(np.ones(3), (2, 4)),
}
"""Each meaning the adapter maps, raised by autograd.numpy itself."""


def test_every_mapped_error_is_triggered_here() -> None:
    assert set(AutogradAdapter().errors) == set(TRIGGERS)


@pytest.mark.parametrize("meaning", sorted(TRIGGERS))
def test_mapped_error_matches_what_autograd_raises(meaning: str) -> None:
    with Checks(AutogradAdapter(), "float64", {}).raises(meaning):
        TRIGGERS[meaning]()


@pytest.mark.parametrize(
    "call",
    [
        lambda ops: ops.broadcast_to(np.ones((2, 3)), (3,)),  # fewer dims than the operand
        lambda ops: ops.expand(np.ones(3), (-1, 3)),  # -1 for a new leading dim
        lambda ops: ops.sum_to_size(np.ones((2, 3)), (4,)),
        lambda ops: ops.sum_to_size(np.ones(3), (2, 3)),
    ],
)
def test_invalid_expand_covers_numpys_other_messages(call: Callable[[object], object]) -> None:
    adapter = AutogradAdapter()
    with Checks(adapter, "float64", {}).raises("invalid_expand"):
        call(adapter.ops)
