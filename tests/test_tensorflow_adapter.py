"""The TensorFlow adapter against TensorFlow itself: tensors, dtypes, devices, vjp and errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import pytest

from conformance.backends.protocol import validate
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

# PaddlePaddle segfaults when it is imported after TensorFlow in one process (it loads fine before it),
# and a pytest-xdist worker may run the paddle tests after these: where both are installed, paddle first.
with contextlib.suppress(ImportError):
    import paddle  # noqa: F401
tf = pytest.importorskip("tensorflow", reason="tensorflow is not installed")
from conformance.backends.tensorflow_adapter import TensorflowAdapter  # noqa: E402

DTYPES = ("float16", "float32", "float64", "int64", "int32", "bool")
"""The declared dtypes NumPy has; bfloat16 comes back as float32 (its own test)."""


@pytest.fixture
def adapter() -> TensorflowAdapter:
    return TensorflowAdapter()


def test_functional_core_only(adapter: TensorflowAdapter) -> None:
    assert validate(adapter) == []
    assert adapter.capabilities <= set(CAPABILITIES) and not adapter.capabilities & STATEFUL
    assert {"higher_order", "float64", "float16", "bfloat16", "integer_tensors"} <= adapter.capabilities
    assert "mixed_dtypes" not in adapter.capabilities
    assert set(adapter.errors) <= set(ERROR_MEANINGS)
    assert set(vars(adapter.ops)) == set(OPS) - INPLACE_OPS - {"sum_to_size"}
    assert not hasattr(adapter, "backward") and not hasattr(adapter, "grad_of")


def test_tensorflow_does_not_promote_mixed_floats() -> None:
    """Why mixed_dtypes is not declared."""
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a double"):
        tf.ones([2], tf.float32) * tf.ones([2], tf.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_round_trip_keeps_values_and_dtype(adapter: TensorflowAdapter, dtype: str) -> None:
    array = np.array([[0, 1, 2], [3, 4, 5]]).astype(dtype)
    t = adapter.tensor(array, dtype)
    assert isinstance(t, tf.Tensor)
    assert adapter.dtype(t) == dtype and adapter.shape(t) == (2, 3)
    back = adapter.numpy(t)
    assert back.dtype.name == dtype and np.array_equal(back, array)
    back[0, 0] = 1
    assert adapter.numpy(t)[0, 0] == array[0, 0], "numpy() must return a copy"


def test_bfloat16_round_trip(adapter: TensorflowAdapter) -> None:
    array = np.array([0.5, -1.0, 3.0])  # exact in bfloat16
    t = adapter.tensor(array, "bfloat16")
    assert adapter.dtype(t) == "bfloat16" and t.dtype == tf.bfloat16
    back = adapter.numpy(t)
    assert back.dtype.name == "float32" and np.array_equal(back, array)


def test_half_precision_computes_on_the_cpu(adapter: TensorflowAdapter) -> None:
    for dtype in ("float16", "bfloat16"):
        x = adapter.tensor(np.ones((2, 2)), dtype)
        out, (grad,) = adapter.vjp(lambda a: adapter.ops.tanh(adapter.ops.matmul(a, a)), [x], x)
        assert adapter.dtype(out) == dtype and adapter.dtype(grad) == dtype


def test_devices(adapter: TensorflowAdapter) -> None:
    assert tuple(adapter.devices()) == ("cpu",)
    assert adapter.device(adapter.tensor(np.zeros(2), "float64")) == "cpu"


def test_vjp_of_a_broadcast_product(adapter: TensorflowAdapter) -> None:
    check_vjp_of_a_broadcast_product(adapter)


def test_vjp_gives_zeros_for_an_unused_primal_and_nests(adapter: TensorflowAdapter) -> None:
    check_vjp_unused_primal_and_nesting(adapter)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_custom_vjp_is_the_engines_own(adapter: TensorflowAdapter, dtype: str) -> None:
    check_custom_vjp(adapter, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_step_is_plain_sgd(adapter: TensorflowAdapter, dtype: str) -> None:
    check_sgd_step(adapter, dtype)


def test_integer_list_index_reaches_tensorflow_as_a_tensor(adapter: TensorflowAdapter) -> None:
    """TensorFlow reads a bare list as a tuple of ints; as an integer tensor it is refused."""
    x = adapter.tensor(np.arange(6.0).reshape(2, 3), "float64")
    assert adapter.shape(x[[0, -1]]) == ()
    with pytest.raises(TypeError, match="are valid indices"):
        adapter.ops.index(x, [0, -1])


TRIGGERS: dict[str, Callable[[], object]] = {
    "incompatible_shapes": lambda: tf.add(tf.ones([2, 3]), tf.ones([4])),
    "invalid_expand": lambda: tf.broadcast_to(tf.ones([3]), [2, 4]),
}
"""Each meaning the adapter maps, raised by TensorFlow itself."""


def test_every_mapped_error_is_triggered_here(adapter: TensorflowAdapter) -> None:
    assert set(adapter.errors) == set(TRIGGERS)


@pytest.mark.parametrize("meaning", sorted(TRIGGERS))
def test_mapped_error_matches_what_tensorflow_raises(adapter: TensorflowAdapter, meaning: str) -> None:
    with Checks(adapter, "float64", {}).raises(meaning):
        TRIGGERS[meaning]()


@pytest.mark.parametrize(
    "call",
    [
        lambda ops: tf.broadcast_to(tf.ones([2, 3]), [3]),  # fewer dims than the operand
        lambda ops: ops.expand(tf.ones([3]), (-1, 3)),  # -1 for a new leading dim, passed on
    ],
)
def test_invalid_expand_covers_tensorflows_other_messages(
    adapter: TensorflowAdapter, call: Callable[[object], object]
) -> None:
    with Checks(adapter, "float64", {}).raises("invalid_expand"):
        call(adapter.ops)
