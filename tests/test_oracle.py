"""The oracle against hand-derived gradients, and its VJP table against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance import oracle
from conformance.oracle import unbroadcast, vjp


def test_unbroadcast_drops_leading_dims_and_keeps_size_one() -> None:
    g = np.arange(24.0).reshape(2, 3, 4)
    assert unbroadcast(g, (4,)).tolist() == g.sum(axis=(0, 1)).tolist()
    assert unbroadcast(g, (3, 1)).shape == (3, 1)
    assert unbroadcast(g, (3, 1))[:, 0].tolist() == g.sum(axis=(0, 2)).tolist()
    assert unbroadcast(g, ()).shape == () and unbroadcast(g, ()) == g.sum()
    assert unbroadcast(np.zeros((4, 0)), (4, 1)).tolist() == [[0.0]] * 4


def test_catalog_broadcast_example() -> None:
    """BC-06: x:(3,1), y:(1,4), z = arange(12): x.grad = row sums of z, y.grad = column sums."""
    grads = vjp("sum(mul(mul(x, y), z))", x=np.ones((3, 1)), y=np.ones((1, 4)), z=np.arange(12.0).reshape(3, 4))
    assert grads["x"].tolist() == [[6.0], [22.0], [38.0]]
    assert grads["y"].tolist() == [[12.0, 15.0, 18.0, 21.0]]


def test_matmul_batch_broadcast() -> None:
    """BC-13: A:(1,2,3) @ B:(5,3,4): A's gradient is summed over the 5 batches, 4 columns each."""
    grads = vjp("sum(matmul(a, b))", a=np.ones((1, 2, 3)), b=np.ones((5, 3, 4)))
    assert grads["a"].shape == (1, 2, 3) and grads["a"][0, 0, 0] == 20.0
    assert grads["b"].shape == (5, 3, 4) and grads["b"][0, 0, 0] == 2.0
    vec = vjp("sum(matmul(a, b))", a=np.array([1.0, 2.0, 3.0]), b=np.ones((2, 3, 4)))
    assert vec["a"].tolist() == [8.0, 8.0, 8.0]


def test_paths_sum_and_higher_order_by_finite_differences() -> None:
    """AC-03/04: x*x + x at 3 gives 7; (2x)(x^2) at 2 gives 24; d2/dx2 x^3 at 2 is 12."""
    assert vjp("add(mul(x, x), x)", x=np.array(3.0))["x"] == 7.0
    assert vjp("mul(mul(x, 2.0), pow(x, 2.0))", x=np.array(2.0))["x"] == 24.0
    second = oracle.fd_vjp(lambda x: vjp("pow(x, 3.0)", x=x)["x"], {"x": np.array(2.0)})["x"]
    assert second == pytest.approx(12.0, rel=1e-6)


@pytest.mark.parametrize(
    ("program", "x", "expected"),
    [
        ("relu(x)", 0.0, 0.0),
        ("abs(x)", 0.0, 0.0),
        ("sqrt(x)", 0.0, np.inf),
        ("clamp(x, min=0.0)", 0.0, 1.0),
        ("maximum(x, mul(x, 0.0))", 0.0, 0.5),  # a tie: half to x, half to the constant-slope 0*x
        ("pow(x, 0.0)", 0.0, 0.0),
        ("pow(x, 2.0)", 0.0, 0.0),
        ("floor(x)", 1.3, 0.0),
    ],
)
def test_conventions_at_kinks(program: str, x: float, expected: float) -> None:
    """HO-19..21 and AC-20: torch's conventions, which the oracle declares."""
    with np.errstate(divide="ignore"):
        assert vjp(program, x=np.array(x))["x"] == expected


def test_ties_split_evenly() -> None:
    """HO-20: amax ties share the gradient; maximum ties give each side half."""
    assert vjp("amax(x)", x=np.array([1.0, 3.0, 3.0]))["x"].tolist() == [0.0, 0.5, 0.5]
    grads = vjp("sum(maximum(a, b))", a=np.array([1.0, 2.0]), b=np.array([1.0, 0.0]))
    assert grads["a"].tolist() == [0.5, 1.0] and grads["b"].tolist() == [0.5, 0.0]


def test_unused_input_gets_zeros_and_index_accumulates() -> None:
    grads = vjp("mul(x, 2.0)", x=np.array(2.0), y=np.array(3.0))
    assert grads["y"] == 0.0
    assert vjp("sum(index(x, [0, 0, 2]))", x=np.zeros(3))["x"].tolist() == [2.0, 0.0, 1.0]


SMOOTH_PROGRAMS = [
    "add(a, b)", "sub(a, b)", "mul(a, b)", "div(a, b)", "neg(a)", "exp(a)", "log(b)", "sqrt(b)",
    "sin(a)", "cos(a)", "tanh(a)", "sigmoid(a)", "pow(b, a)", "softmax(a, -1)", "log_softmax(a, 0)",
    "mean(mul(a, b), 0, True)", "sum(a, (0,), False)", "transpose(mul(a, b), 0, -1)", "cat([a, b], 0)",
    "stack([a, b], 1)", "reshape(a, (-1,))", "unsqueeze(a, 1)", "matmul(a, transpose(b, 0, 1))",
    "index(a, (slice(0, 1), [1, 0, 1]))",
]  # fmt: skip


@pytest.mark.parametrize("program", SMOOTH_PROGRAMS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_vjp_table_matches_finite_differences(program: str, data: st.DataObject) -> None:
    a = data.draw(hnp.arrays(np.float64, (2, 3), elements=st.floats(-2, 2)), label="a")
    b = data.draw(hnp.arrays(np.float64, (2, 3), elements=st.floats(0.5, 2)), label="b")
    cotangent = data.draw(hnp.arrays(np.float64, oracle.value(program, a=a, b=b).shape, elements=st.floats(-2, 2)))
    exact = vjp(program, cotangent, a=a, b=b)
    approx = oracle.program_fd_vjp(program, cotangent, a=a, b=b)
    for name in ("a", "b"):
        np.testing.assert_allclose(exact[name], approx[name], rtol=1e-6, atol=1e-6, err_msg=f"{program} d/d{name}")


def test_expand_keeps_sizes_with_minus_one_and_guards_new_dims() -> None:
    """torch's expand: -1 keeps an existing size; a new leading dim needs one, and only size-1 dims grow."""
    x = np.ones((3, 1))
    assert oracle.value("expand(x, (2, -1, 4))", x=x).shape == (2, 3, 4)
    for bad in ["(-1, 3, 1)", "(3,)", "(4, 1)"]:
        with pytest.raises(ValueError):
            oracle.value(f"expand(x, {bad})", x=x)


def test_permute_vjp_with_negative_dims() -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    g = np.arange(24.0).reshape(4, 2, 3)
    assert np.array_equal(vjp("permute(x, (-1, 0, 1))", g, x=x)["x"], np.transpose(g, (1, 2, 0)))


def test_softmax_over_an_empty_dim_is_empty() -> None:
    for program in ("softmax(x, -1)", "log_softmax(x, -1)"):
        assert oracle.value(program, x=np.zeros((3, 0))).shape == (3, 0)
        assert vjp(program, np.zeros((3, 0)), x=np.zeros((3, 0)))["x"].shape == (3, 0)


def test_jacobian_product_is_the_sum_of_vjp_rows() -> None:
    x, y = np.linspace(0.5, 2.0, 6).reshape(2, 3), np.linspace(-1.0, 1.0, 3)
    d = {"x": np.linspace(-1.0, 1.0, 6).reshape(2, 3)}
    product = oracle.jacobian_product("mul(exp(x), y)", d, x=x, y=y)
    rows = [vjp("mul(exp(x), y)", unit, x=x, y=y)["x"] for unit in np.eye(6).reshape(6, 2, 3)]
    assert product.shape == (2, 3)
    assert np.allclose(product.ravel(), [np.sum(row * d["x"]) for row in rows])
    assert np.allclose(product, np.exp(x) * y * d["x"]), "J d of an elementwise op is its derivative times d"
