"""The PaddlePaddle adapter against paddle itself: tensors, dtypes, devices, vjp and errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from conformance.backends.protocol import validate
from conformance.execute.runtime import Checks
from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS
from tests.adapter_checks import check_vjp_of_a_broadcast_product, check_vjp_unused_primal_and_nesting

paddle = pytest.importorskip("paddle", reason="paddle is not installed")
from conformance.backends.paddle_adapter import PaddleAdapter  # noqa: E402

DTYPES = ("float32", "float64", "int64", "int32", "bool")
"""The dtypes the adapter declares (float16 and bfloat16 are not: see the next test)."""


@pytest.fixture
def adapter() -> PaddleAdapter:
    return PaddleAdapter()


def test_follows_the_protocol(adapter: PaddleAdapter) -> None:
    assert validate(adapter) == []
    assert adapter.capabilities <= set(CAPABILITIES) and set(adapter.errors) <= set(ERROR_MEANINGS)
    assert set(vars(adapter.ops)) == set(OPS) - {"sum_to_size"}  # the one op paddle lacks
    assert {"stateful", "autograd_grad", "higher_order", "inplace", "float64"} <= adapter.capabilities
    assert not adapter.capabilities & {"float16", "bfloat16", "inference_mode", "backward_inputs", "devices"}
    assert not hasattr(paddle, "inference_mode") and not hasattr(paddle.Tensor, "sum_to_size")


def test_missing_backward_create_graph_and_retains_grad_are_undeclared(adapter: PaddleAdapter) -> None:
    """paddle's backward has no create_graph (only paddle.grad has) and there is no retains_grad query:
    their capabilities are left out, so their rules are unsupported, not failed."""
    assert not adapter.capabilities & {"backward_create_graph", "retains_grad"}
    assert {"is_leaf", "requires_grad_", "enable_grad", "retain_graph"} <= adapter.capabilities
    y = (_leaf() * 2).sum()
    with pytest.raises(TypeError, match="create_graph"):
        y.backward(create_graph=True)
    assert not hasattr(_leaf(), "retains_grad") and hasattr(_leaf(), "retain_grads")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_dtypes_lack_cpu_kernels(dtype: str) -> None:
    """Why float16 and bfloat16 are not declared: the tensors exist, basic arithmetic does not."""
    x = paddle.ones([2, 2], dtype=dtype)
    with pytest.raises(RuntimeError, match=r"NotFound.*not registered"):
        paddle.matmul(x, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_round_trip_keeps_values_and_dtype(adapter: PaddleAdapter, dtype: str) -> None:
    array = np.array([[0, 1, 2], [3, 4, 5]]).astype(dtype)
    t = adapter.tensor(array, dtype)
    assert isinstance(t, paddle.Tensor)
    assert adapter.dtype(t) == dtype and adapter.shape(t) == (2, 3)
    back = adapter.numpy(t)
    assert back.dtype.name == dtype and np.array_equal(back, array)
    back[0, 0] = 1
    assert adapter.numpy(t)[0, 0] == array[0, 0], "numpy() must return a copy"


def test_zero_d_round_trip(adapter: PaddleAdapter) -> None:
    t = adapter.tensor(np.array(2.5), "float64")
    assert adapter.shape(t) == () and adapter.numpy(t).shape == ()


def test_leaf_state_is_paddles(adapter: PaddleAdapter) -> None:
    x = adapter.tensor(np.ones(3), "float32", requires_grad=True)
    c = adapter.tensor(np.ones(3), "float32")
    assert (adapter.requires_grad(x), x.stop_gradient, adapter.requires_grad(c)) == (True, False, False)
    assert adapter.is_leaf(x) and adapter.grad_of(x) is None
    y = adapter.ops.mul(x, 2.0)
    assert (adapter.is_leaf(y), adapter.requires_grad(y)) == (False, True)


def test_a_leaf_has_no_grad_fn_though_paddle_hangs_its_accumulation_node_there(adapter: PaddleAdapter) -> None:
    """has_grad_fn is ``not is_leaf``: paddle's grad_fn of every leaf (requiring grad or not) is its
    GradNodeAccumulation, where torch keeps AccumulateGrad out of grad_fn."""
    for requires_grad in (True, False):
        x = adapter.tensor(np.ones(3), "float32", requires_grad=requires_grad)
        assert x.grad_fn.name() == "GradNodeAccumulation"
        assert (adapter.is_leaf(x), adapter.has_grad_fn(x)) == (True, False)
    y = adapter.ops.mul(adapter.tensor(np.ones(3), "float32", requires_grad=True), 2.0)
    assert (adapter.is_leaf(y), adapter.has_grad_fn(y)) == (False, True) and y.grad_fn.name() != "GradNodeAccumulation"
    w = adapter.tensor(np.ones(3), "float32", requires_grad=True)
    opt = adapter.optimizer([w], 0.1)
    adapter.backward(adapter.ops.sum(adapter.ops.mul(w, w)))
    adapter.step(opt)
    assert (adapter.is_leaf(w), adapter.has_grad_fn(w)) == (True, False)  # a parameter stays a leaf


def test_inplace_ops_take_a_python_number_as_a_tensor(adapter: PaddleAdapter) -> None:
    """paddle's multiply_, add_, subtract_ take only a tensor (a number raises AttributeError in paddle):
    the adapter hands them a 0-d tensor of the number, in the target's dtype, as paddle's operators read it."""
    with pytest.raises(AttributeError, match="'float' object has no attribute 'shape'"):
        paddle.ones([2], dtype="float64").multiply_(2.0)
    ops = adapter.ops
    for dtype in ("float32", "float64"):
        c = adapter.tensor(np.array([1.0, 2.0]), dtype)
        assert ops.sub_(ops.add_(ops.mul_(c, 3.0), 1), 0.5) is c
        assert adapter.dtype(c) == dtype and adapter.version(c) == 3
        np.testing.assert_array_equal(adapter.numpy(c), [3.5, 6.5])
        x = adapter.tensor(np.array([1.0, 2.0]), dtype, requires_grad=True)
        types, pattern = adapter.errors["leaf_inplace"]
        with pytest.raises(types, match=pattern):  # what the rule tests, now reached
            ops.mul_(x, 2.0)


def test_devices(adapter: PaddleAdapter) -> None:
    assert tuple(adapter.devices()) == ("cpu",)
    assert adapter.device(adapter.tensor(np.zeros(2), "float64")) == "cpu"


def test_backward_and_vjp_of_a_broadcast_product(adapter: PaddleAdapter) -> None:
    a, b = np.arange(6.0).reshape(2, 3), np.array([1.0, -2.0, 0.5])
    g = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    ta, tb = adapter.tensor(a, "float64", True), adapter.tensor(b, "float64", True)
    adapter.backward(adapter.ops.mul(ta, tb), adapter.tensor(g, "float64"))
    np.testing.assert_allclose(adapter.numpy(adapter.grad_of(tb)), (g * a).sum(axis=0))
    check_vjp_of_a_broadcast_product(adapter)


def test_vjp_gives_zeros_for_an_unused_primal_and_nests(adapter: PaddleAdapter) -> None:
    check_vjp_unused_primal_and_nesting(adapter)
    x = adapter.tensor(np.array([0.5, -1.0]), "float64")
    adapter.vjp(lambda s: adapter.ops.mul(s, s), [x], adapter.tensor(np.ones(2), "float64"))
    assert x.stop_gradient, "the primals are left alone"


def _leaf() -> paddle.Tensor:
    return paddle.to_tensor(np.array([1.0, 2.0]), stop_gradient=False)


def _backward_twice() -> None:
    y = (_leaf() * _leaf()).sum()
    y.backward()
    y.backward()


def _modified_in_place() -> None:
    b = _leaf() * 1.0
    y = b * b
    b.add_(paddle.ones([2], dtype="float64"))
    y.sum().backward()


def _assign_other_dtype() -> None:
    x = _leaf()
    x.sum().backward()
    x.grad = paddle.ones([2], dtype="float32")


TRIGGERS: dict[str, Callable[[], object]] = {
    "incompatible_shapes": lambda: paddle.ones([2, 3]) + paddle.ones([4]),
    "invalid_expand": lambda: paddle.expand(paddle.ones([3]), [2, 4]),
    "inplace_broadcast": lambda: paddle.ones([3]).add_(paddle.ones([2, 3])),
    "grad_shape_mismatch": lambda: (_leaf() * 2).backward(paddle.ones([2, 1], dtype="float64")),
    "grad_count_mismatch": lambda: paddle.autograd.backward([_leaf() * 2, _leaf() * 3], [paddle.ones([2], "float64")]),
    "no_grad_fn": lambda: paddle.grad(paddle.ones([2]).sum(), _leaf()),
    "input_not_requiring_grad": lambda: paddle.grad((_leaf() * 2).sum(), paddle.ones([2])),
    "unused_input": lambda: paddle.grad((_leaf() * 2).sum(), [_leaf()]),
    "graph_freed": _backward_twice,
    "modified_inplace": _modified_in_place,
    "leaf_inplace": lambda: _leaf().add_(paddle.ones([2], dtype="float64")),
    "grad_assign_mismatch": _assign_other_dtype,
    "hook_without_grad": lambda: paddle.ones([2]).register_hook(lambda g: g),
}
"""Each meaning the adapter maps, raised by paddle itself."""


def test_every_mapped_error_is_triggered_here(adapter: PaddleAdapter) -> None:
    assert set(adapter.errors) == set(TRIGGERS)


@pytest.mark.parametrize("meaning", sorted(TRIGGERS))
def test_mapped_error_matches_what_paddle_raises(adapter: PaddleAdapter, meaning: str) -> None:
    with Checks(adapter, "float64", {}).raises(meaning):
        TRIGGERS[meaning]()


@pytest.mark.parametrize(
    ("meaning", "call"),
    [
        ("invalid_expand", lambda: paddle.broadcast_to(paddle.ones([2, 3]), [3])),  # fewer dims
        ("invalid_expand", lambda: paddle.expand(paddle.ones([3]), [-1, 3])),  # -1 for a new leading dim
        ("grad_count_mismatch", lambda: paddle.grad([_leaf() * 2], [_leaf()], [paddle.ones([2]), paddle.ones([2])])),
        ("grad_assign_mismatch", lambda: setattr(_leaf(), "grad", [1.0, 2.0])),  # not a tensor
    ],
)
def test_mapped_error_covers_paddles_other_messages(
    adapter: PaddleAdapter, meaning: str, call: Callable[[], object]
) -> None:
    with Checks(adapter, "float64", {}).raises(meaning):
        call()
