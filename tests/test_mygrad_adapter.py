"""The mygrad adapter: it follows the protocol, and its mapping of mygrad's API agrees with the oracle."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mygrad")

from conformance import oracle
from conformance.backends import resolve
from conformance.backends.mygrad_adapter import MygradAdapter
from conformance.backends.protocol import Adapter
from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS

A = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
B = np.array([1.0, -2.0, 0.5])
U = np.array([[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]])
PROGRAM = "mul(a, sin(b))"
"""Broadcasting, so b's gradient is summed back to its shape."""


@pytest.fixture
def adapter() -> MygradAdapter:
    return MygradAdapter()


def test_follows_the_protocol(adapter: MygradAdapter) -> None:
    assert isinstance(adapter, Adapter)
    assert isinstance(resolve("mygrad"), MygradAdapter)
    assert adapter.capabilities <= set(CAPABILITIES)
    assert set(adapter.errors) <= set(ERROR_MEANINGS)
    claimed = set(vars(adapter.ops))
    assert claimed <= set(OPS) and all(callable(getattr(adapter.ops, op)) for op in claimed)
    assert set(OPS) - claimed == {"sum_to_size"}  # the one op mygrad lacks


def test_a_leaf(adapter: MygradAdapter) -> None:
    x = adapter.tensor(A, "float32", requires_grad=True)
    assert (adapter.is_leaf(x), adapter.requires_grad(x), adapter.has_grad_fn(x)) == (True, True, False)
    assert adapter.grad_of(x) is None
    assert (adapter.dtype(x), adapter.shape(x)) == ("float32", A.shape)
    c = adapter.tensor(A, "float64")
    assert not adapter.requires_grad(c)


def test_backward_matches_the_oracle(adapter: MygradAdapter) -> None:
    a, b = adapter.tensor(A, "float64", True), adapter.tensor(B, "float64", True)
    out = adapter.ops.mul(a, adapter.ops.sin(b))
    assert (adapter.is_leaf(out), adapter.has_grad_fn(out)) == (False, True)
    adapter.backward(out, adapter.tensor(U, "float64"))
    expected = oracle.vjp(PROGRAM, U, a=A, b=B)
    for t, name in ((a, "a"), (b, "b")):
        grad = adapter.grad_of(t)
        assert isinstance(grad, np.ndarray)  # mygrad's .grad, handed over as is
        assert (adapter.dtype(grad), adapter.shape(grad)) == ("float64", expected[name].shape)
        np.testing.assert_allclose(adapter.numpy(grad), expected[name], rtol=1e-12)
        assert not adapter.requires_grad(grad)


def test_vjp_matches_the_oracle(adapter: MygradAdapter) -> None:
    ops = adapter.ops
    a, b = adapter.tensor(A, "float32"), adapter.tensor(B, "float32")
    out, grads = adapter.vjp(lambda a, b: ops.mul(a, ops.sin(b)), [a, b], adapter.tensor(U, "float32"))
    np.testing.assert_allclose(adapter.numpy(out), oracle.value(PROGRAM, a=A, b=B), rtol=1e-6)
    expected = oracle.vjp(PROGRAM, U, a=A, b=B)
    for grad, name in zip(grads, ("a", "b"), strict=True):
        np.testing.assert_allclose(adapter.numpy(grad), expected[name], rtol=1e-5)
    assert not adapter.requires_grad(a)  # the primals are left alone


def test_errors_are_mygrads(adapter: MygradAdapter) -> None:
    types, pattern = adapter.errors["incompatible_shapes"]
    with pytest.raises(types, match=pattern):
        adapter.ops.add(adapter.tensor(A, "float64"), adapter.tensor(np.ones(4), "float64"))
    types, pattern = adapter.errors["nonfloat_requires_grad"]
    with pytest.raises(types, match=pattern):
        adapter.tensor(np.ones(3), "int64", requires_grad=True)


def test_features_mygrad_lacks_are_undeclared(adapter: MygradAdapter) -> None:
    """mygrad's backward has no retain_graph (it always clears the graph), there is no enable_grad (only
    no_autodiff) and no requires_grad_ (the constant flag is fixed at creation): unsupported, not failed."""
    import mygrad as mg

    assert not adapter.capabilities & {"retain_graph", "enable_grad", "requires_grad_", "backward_create_graph"}
    assert {"stateful", "is_leaf", "no_grad", "detach"} <= adapter.capabilities
    y = mg.tensor([1.0, 2.0]) * 2
    with pytest.raises(TypeError, match="retain_graph"):
        y.backward(retain_graph=True)
    assert not hasattr(mg, "enable_grad") and not hasattr(mg.Tensor, "requires_grad_")


def test_clone_is_mygrads_differentiable_copy(adapter: MygradAdapter) -> None:
    """clone is mygrad.positive (a copy with an identity backward), not Tensor.copy(), which drops the graph."""
    x = adapter.tensor(B, "float64", requires_grad=True)
    c = adapter.ops.clone(x)
    assert (adapter.is_leaf(c), adapter.requires_grad(c), adapter.has_grad_fn(c)) == (False, True, True)
    assert not adapter.shares_storage(c, x)
    adapter.backward(adapter.ops.mul(c, adapter.tensor(B, "float64")), adapter.tensor(np.ones(3), "float64"))
    np.testing.assert_array_equal(adapter.grad_of(x), B)


def test_detach_is_a_constant_tensor_over_the_same_data(adapter: MygradAdapter) -> None:
    """detach is mygrad.astensor(t, constant=True): a new constant leaf with no copy of the data."""
    x = adapter.tensor(B, "float64", requires_grad=True)
    y = adapter.ops.mul(x, 2.0)
    d = adapter.detach(y)
    assert d is not y and adapter.shares_storage(d, y)
    assert (adapter.is_leaf(d), adapter.requires_grad(d), adapter.has_grad_fn(d)) == (True, False, False)
    np.testing.assert_array_equal(adapter.numpy(d), 2 * B)
