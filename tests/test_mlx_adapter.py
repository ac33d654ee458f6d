"""The MLX adapter: it follows the protocol, and its mapping of MLX's API agrees with MLX and the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import oracle
from conformance.backends.protocol import validate
from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS
from tests.adapter_checks import INPLACE_OPS, check_custom_vjp, check_sgd_step

mx = pytest.importorskip("mlx.core", reason="mlx is not installed")
MlxAdapter = pytest.importorskip("conformance.backends.mlx_adapter").MlxAdapter

A = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
B = np.array([1.0, -2.0, 0.5])
U = np.array([[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]])
PROGRAM = "mul(a, sin(b))"
"""Broadcasting, so b's gradient is summed back to its shape."""
DTYPES = {"float16": mx.float16, "bfloat16": mx.bfloat16, "float32": mx.float32, "float64": mx.float64,
          "int32": mx.int32, "int64": mx.int64, "bool": mx.bool_}  # fmt: skip
"""Every dtype the adapter declares (float64, float16, bfloat16, integer_tensors), with MLX's own."""


@pytest.fixture
def adapter() -> MlxAdapter:
    return MlxAdapter()


def test_follows_the_protocol(adapter: MlxAdapter) -> None:
    assert validate(adapter) == []
    assert adapter.capabilities <= set(CAPABILITIES) and "stateful" not in adapter.capabilities
    assert set(adapter.errors) <= set(ERROR_MEANINGS)
    assert set(OPS) - set(vars(adapter.ops)) == INPLACE_OPS | {"sum_to_size"}  # what MLX lacks
    assert not hasattr(adapter, "backward") and not hasattr(adapter, "grad_of")


@pytest.mark.parametrize("name", DTYPES)
def test_round_trip_through_numpy_keeps_the_dtype(adapter: MlxAdapter, name: str) -> None:
    """The dtype is passed to MLX explicitly: ``mx.array`` of a float64 array would be float32."""
    values = np.array([[0.0, 1.5], [-2.0, 3.0]]).astype(name) if name != "bfloat16" else np.array([0.0, 1.5, -2.0])
    t = adapter.tensor(values, name)
    assert t.dtype == DTYPES[name] and adapter.dtype(t) == name
    back = adapter.numpy(t)
    assert back.dtype == (np.float32 if name == "bfloat16" else np.dtype(name))  # NumPy has no bfloat16
    np.testing.assert_array_equal(back, values)
    assert adapter.shape(t) == values.shape


def test_float64_is_real_on_the_cpu(adapter: MlxAdapter) -> None:
    """float64 keeps digits float32 would lose (MLX's float64 is CPU-only; the CPU is this adapter's device)."""
    x = 1.0 + 2.0**-40
    assert adapter.numpy(adapter.ops.add(adapter.tensor(np.array(x), "float64"), 0.0)) == x


def test_devices(adapter: MlxAdapter) -> None:
    assert adapter.devices() == ("cpu",)
    assert adapter.device(adapter.tensor(A, "float32")) == "cpu"


def test_vjp_matches_the_oracle(adapter: MlxAdapter) -> None:
    ops = adapter.ops
    a, b = adapter.tensor(A, "float32"), adapter.tensor(B, "float32")
    out, grads = adapter.vjp(lambda a, b: ops.mul(a, ops.sin(b)), [a, b], adapter.tensor(U, "float32"))
    np.testing.assert_allclose(adapter.numpy(out), oracle.value(PROGRAM, a=A, b=B), rtol=1e-6)
    expected = oracle.vjp(PROGRAM, U, a=A, b=B)
    for grad, name in zip(grads, ("a", "b"), strict=True):
        assert adapter.dtype(grad) == "float32"
        np.testing.assert_allclose(adapter.numpy(grad), expected[name], rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_custom_vjp_is_the_engines_own(adapter: MlxAdapter, dtype: str) -> None:
    check_custom_vjp(adapter, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_step_is_plain_sgd(adapter: MlxAdapter, dtype: str) -> None:
    check_sgd_step(adapter, dtype)


def _raise(meaning: str, adapter: MlxAdapter) -> None:
    """Trigger ``meaning`` in MLX itself (through its own calls, not the adapter's ops)."""
    f32 = mx.float32
    if meaning == "incompatible_shapes":
        mx.add(mx.ones((2, 3), dtype=f32), mx.ones((4,), dtype=f32))
    elif meaning == "invalid_expand":
        mx.broadcast_to(mx.ones((2, 3), dtype=f32), (4, 3))
    elif meaning == "grad_shape_mismatch":
        mx.vjp(lambda t: t * 2, [mx.ones((3,), dtype=f32)], [mx.ones((2,), dtype=f32)])


@pytest.mark.parametrize("meaning", sorted(MlxAdapter.errors))
def test_error_meanings_match_what_mlx_raises(adapter: MlxAdapter, meaning: str) -> None:
    types, pattern = adapter.errors[meaning]
    with pytest.raises(types, match=pattern):
        _raise(meaning, adapter)


def test_expand_minus_one_for_a_new_dim_is_mlxs_error(adapter: MlxAdapter) -> None:
    """The adapter passes the -1 on; the error is MLX's own, and it means invalid_expand."""
    types, pattern = adapter.errors["invalid_expand"]
    with pytest.raises(types, match=pattern):
        adapter.ops.expand(adapter.tensor(np.ones((3, 1)), "float32"), (-1, 3, 4))
