"""The tinygrad adapter: it follows the protocol, and its mapping of tinygrad's API agrees with tinygrad and the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import oracle
from conformance.backends.protocol import validate
from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS

tinygrad = pytest.importorskip("tinygrad", reason="tinygrad is not installed")
TinygradAdapter = pytest.importorskip("conformance.backends.tinygrad_adapter").TinygradAdapter
Tensor, dtypes = tinygrad.Tensor, tinygrad.dtypes

A = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
B = np.array([1.0, -2.0, 0.5])
U = np.array([[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]])
PROGRAM = "mul(a, sin(b))"
"""Broadcasting, so b's gradient is summed back to its shape."""
DTYPES = {"float16": dtypes.float16, "bfloat16": dtypes.bfloat16, "float32": dtypes.float32,
          "float64": dtypes.float64, "int32": dtypes.int32, "int64": dtypes.int64, "bool": dtypes.bool}  # fmt: skip
"""Every dtype the adapter declares (float64, float16, bfloat16, integer_tensors), with tinygrad's own."""


@pytest.fixture
def adapter() -> TinygradAdapter:
    return TinygradAdapter()


def test_follows_the_protocol(adapter: TinygradAdapter) -> None:
    assert validate(adapter) == []
    assert adapter.capabilities <= set(CAPABILITIES)
    assert set(adapter.errors) <= set(ERROR_MEANINGS)
    assert set(OPS) - set(vars(adapter.ops)) == {"sum_to_size"}  # the one op tinygrad lacks
    assert not {"no_grad", "graph_freeing", "retain_grad", "version_counter"} & adapter.capabilities


def test_no_leaf_flag_and_no_requires_grad_are_undeclared(adapter: TinygradAdapter) -> None:
    """tinygrad's Tensor has no is_leaf, grad_fn or requires_grad_ (is_param, its only flag, marks op results
    too): the capabilities are left out and the methods raise, rather than read tinygrad's internal UOps."""
    assert not {"is_leaf", "requires_grad_"} & adapter.capabilities
    assert {"retain_graph", "backward_create_graph"} <= adapter.capabilities  # what its backward always does
    a = adapter.tensor(A, "float32")
    out = adapter.ops.mul(a, 2.0)
    assert not any(hasattr(Tensor, name) for name in ("is_leaf", "grad_fn", "requires_grad_", "requires_grad"))
    assert a.is_param and out.is_param
    for method in (adapter.is_leaf, adapter.has_grad_fn, adapter.requires_grad_):
        with pytest.raises(NotImplementedError, match="tinygrad has no"):
            method(out)


@pytest.mark.parametrize("name", DTYPES)
def test_round_trip_through_numpy_keeps_the_dtype(adapter: TinygradAdapter, name: str) -> None:
    values = np.array([[0.0, 1.5], [-2.0, 3.0]]).astype(name) if name != "bfloat16" else np.array([0.0, 1.5, -2.0])
    t = adapter.tensor(values, name)
    assert t.dtype == DTYPES[name] and adapter.dtype(t) == name
    back = adapter.numpy(t)
    assert back.dtype == (np.float32 if name == "bfloat16" else np.dtype(name))  # tinygrad reads bfloat16 as float32
    np.testing.assert_array_equal(back, values)
    assert adapter.shape(t) == values.shape


def test_devices(adapter: TinygradAdapter) -> None:
    assert adapter.devices() == (tinygrad.Device.DEFAULT.lower(),)
    assert adapter.device(adapter.tensor(A, "float32")) == adapter.devices()[0]


def test_backward_matches_the_oracle_and_fills_every_float_tensor(adapter: TinygradAdapter) -> None:
    """tinygrad has no requires_grad: a backward fills .grad of every live float tensor it reaches."""
    a, b = adapter.tensor(A, "float64"), adapter.tensor(B, "float64")
    assert adapter.requires_grad(a)
    mid = adapter.ops.sin(b)
    out = adapter.ops.mul(a, mid)
    adapter.backward(out, adapter.tensor(U, "float64"))
    expected = oracle.vjp(PROGRAM, U, a=A, b=B)
    for t, name in ((a, "a"), (b, "b")):
        grad = adapter.grad_of(t)
        assert (adapter.dtype(grad), adapter.shape(grad)) == ("float64", expected[name].shape)
        np.testing.assert_allclose(adapter.numpy(grad), expected[name], rtol=1e-12)
    assert adapter.grad_of(mid) is not None  # an intermediate gets a .grad too


def test_vjp_and_grad_leave_grad_alone(adapter: TinygradAdapter) -> None:
    ops = adapter.ops
    a, b = adapter.tensor(A, "float32"), adapter.tensor(B, "float32")
    out, grads = adapter.vjp(lambda a, b: ops.mul(a, ops.sin(b)), [a, b], adapter.tensor(U, "float32"))
    np.testing.assert_allclose(adapter.numpy(out), oracle.value(PROGRAM, a=A, b=B), rtol=1e-6)
    expected = oracle.vjp(PROGRAM, U, a=A, b=B)
    for grad, name in zip(grads, ("a", "b"), strict=True):
        np.testing.assert_allclose(adapter.numpy(grad), expected[name], rtol=1e-5)
    (ga,) = adapter.grad(out, [a], adapter.tensor(U, "float32"))
    np.testing.assert_allclose(adapter.numpy(ga), expected["a"], rtol=1e-5)
    assert adapter.grad_of(a) is None and adapter.grad_of(b) is None


def test_writes_through_an_index_reach_a_realized_base(adapter: TinygradAdapter) -> None:
    """shares_storage says what tinygrad's assign does: a write through a view of a tensor not yet
    realized stays local; once the base holds a buffer it reaches it."""
    x = adapter.tensor(np.array([1.0, 2.0, 3.0]), "float32")
    assert not adapter.shares_storage(x, adapter.ops.index(x, slice(1, None)))
    x.realize()
    view = adapter.ops.index(x, slice(1, None))
    assert adapter.shares_storage(x, view) and adapter.shares_storage(x, adapter.detach(x))
    adapter.ops.copy_(view, adapter.tensor(np.array([9.0, 9.0]), "float32"))
    np.testing.assert_array_equal(adapter.numpy(x), [1.0, 9.0, 9.0])
    assert not adapter.shares_storage(x, adapter.tensor(np.array([1.0, 2.0, 3.0]), "float32"))


def _raise(meaning: str) -> None:
    """Trigger ``meaning`` in tinygrad itself (through its own calls, not the adapter's)."""
    f32 = dtypes.float32
    x = Tensor(np.array([1.0, 2.0]), dtype=f32)
    if meaning == "incompatible_shapes":
        _ = (x + Tensor(np.ones(3), dtype=f32)).shape  # lazy: the op itself succeeds, its shape raises
    elif meaning == "invalid_expand":
        x.expand(3, 3)
    elif meaning == "inplace_broadcast":
        y = Tensor(np.array([[1.0, 2.0]]), dtype=f32)
        y += Tensor(np.ones((2, 2)), dtype=f32)
    elif meaning == "implicit_grad_nonscalar":
        (x * 2).backward()
    elif meaning == "grad_shape_mismatch":
        (x * 2).backward(Tensor(np.ones(3), dtype=f32))
    elif meaning == "no_grad_fn":
        (Tensor(np.array([1, 2]), dtype=dtypes.int64) * 2).backward(Tensor(np.ones(2), dtype=dtypes.int64))
    elif meaning in ("input_not_requiring_grad", "nonfloat_requires_grad"):
        (x * 2).sum().gradient(Tensor(np.array([1, 2]), dtype=dtypes.int64))
    elif meaning == "nonfloat_differentiated":
        i = Tensor(np.array([1, 2]), dtype=dtypes.int64)
        (i.cast(f32) * 2).gradient(i, gradient=Tensor(np.ones(2), dtype=f32))


@pytest.mark.parametrize("meaning", sorted(TinygradAdapter.errors))
def test_error_meanings_match_what_tinygrad_raises(meaning: str) -> None:
    types, pattern = TinygradAdapter.errors[meaning]
    with pytest.raises(types, match=pattern):
        _raise(meaning)


def test_grad_shape_mismatch_covers_each_place_tinygrad_checks() -> None:
    """A gradient of more dims than the output gets past backward's reshape and fails its shape check;
    ``Tensor.gradient`` has a check of its own."""
    types, pattern = TinygradAdapter.errors["grad_shape_mismatch"]
    x = Tensor(np.array([1.0, 2.0]), dtype=dtypes.float32)
    with pytest.raises(types, match=pattern):
        (x * 2).backward(Tensor(np.ones((2, 2)), dtype=dtypes.float32))
    with pytest.raises(types, match=pattern):
        (x * 2).gradient(x, gradient=Tensor(np.ones(3), dtype=dtypes.float32))
