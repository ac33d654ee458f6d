"""Protocol-level checks of an adapter's functional core, shared by the tests of each engine's adapter.

They use the adapter's own ``tensor``, ``ops``, ``vjp`` and ``numpy`` only, with hand-derived expectations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.backends.protocol import CAPABILITY_METHODS

INPLACE_OPS = {"add_", "sub_", "mul_", "zero_", "copy_", "setitem_"}
"""The catalog's in-place ops: the stateful layer's, absent from a functional engine's ops."""
FUNCTIONAL_EXTENSIONS = {"forward_mode", "custom_vjp", "functional_optimizer"}
"""Capabilities whose methods extend the functional core: a functional engine may declare them."""
STATEFUL = (set(CAPABILITY_METHODS) - FUNCTIONAL_EXTENSIONS) | {
    "inplace",
    "views",
    "graph_freeing",
    "backward_inputs",
    "allow_unused",
}
"""Every capability of the stateful layer (adapter.py's module docstring): a functional engine declares none."""


def check_vjp_of_a_broadcast_product(adapter: Any, dtype: str = "float64") -> None:
    """mul of a (2, 3) and a (3,) array: each gradient is reduced to its input's shape."""
    a, b = np.arange(6.0).reshape(2, 3), np.array([1.0, -2.0, 0.5])
    g = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    primals = [adapter.tensor(a, dtype), adapter.tensor(b, dtype)]
    out, (ga, gb) = adapter.vjp(adapter.ops.mul, primals, adapter.tensor(g, dtype))
    assert adapter.dtype(ga) == dtype and adapter.dtype(gb) == dtype
    np.testing.assert_allclose(adapter.numpy(out), a * b)
    np.testing.assert_allclose(adapter.numpy(ga), g * b)
    np.testing.assert_allclose(adapter.numpy(gb), (g * a).sum(axis=0))


def check_vjp_unused_primal_and_nesting(adapter: Any) -> None:
    """An unused primal gets zeros; a vjp nested in a vjp gives the second derivative (of x^3: 6x)."""
    ops, one = adapter.ops, adapter.tensor(np.ones(()), "float64")
    x, z = adapter.tensor(np.array([0.5, -1.0]), "float64"), adapter.tensor(np.array([2.0, 3.0]), "float64")
    _, (gx, gz) = adapter.vjp(lambda a, b: ops.sum(ops.mul(a, a)), [x, z], one)
    np.testing.assert_allclose(adapter.numpy(gx), 2 * adapter.numpy(x))
    np.testing.assert_array_equal(adapter.numpy(gz), np.zeros(2))

    def grad_of_cube(t: Any) -> Any:
        return adapter.vjp(lambda s: ops.sum(ops.mul(s, ops.mul(s, s))), [t], one)[1][0]

    _, (second,) = adapter.vjp(grad_of_cube, [x], adapter.tensor(np.ones(2), "float64"))
    np.testing.assert_allclose(adapter.numpy(second), 6 * adapter.numpy(x))


def check_custom_vjp(adapter: Any, dtype: str = "float64") -> None:
    """custom_vjp: a straight-through floor's vjp is the custom one, which sees the inputs and the output; a custom
    cube's vjp is differentiated again by a nested vjp (6x)."""
    ops, seen = adapter.ops, []
    x, w = adapter.tensor(np.array([0.5, 1.5]), dtype), adapter.tensor(np.array([2.0, -1.0]), dtype)

    def straight_vjp(inputs: tuple[Any, ...], output: Any, g: Any) -> tuple[Any, ...]:
        seen.append((inputs, output))
        return (g, ops.mul(g, 0.0))

    straight_floor = adapter.custom_vjp(lambda a, b: ops.floor(ops.mul(a, b)), straight_vjp)
    out, (gx, gw) = adapter.vjp(straight_floor, [x, w], adapter.tensor(np.array([1.0, -2.0]), dtype))
    np.testing.assert_array_equal(adapter.numpy(out), [1.0, -2.0])
    np.testing.assert_array_equal(adapter.numpy(gx), [1.0, -2.0])
    np.testing.assert_array_equal(adapter.numpy(gw), [0.0, 0.0])
    (a, b), output = seen[0]
    np.testing.assert_array_equal(adapter.numpy(a), [0.5, 1.5])
    np.testing.assert_array_equal(adapter.numpy(b), [2.0, -1.0])
    np.testing.assert_array_equal(adapter.numpy(output), [1.0, -2.0])

    cube = adapter.custom_vjp(
        lambda a: ops.pow(a, 3.0), lambda inputs, output, g: (ops.mul(g, ops.mul(ops.pow(inputs[0], 2.0), 3.0)),)
    )
    ones = adapter.tensor(np.ones(2), dtype)
    first, (second,) = adapter.vjp(lambda t: adapter.vjp(cube, [t], ones)[1][0], [w], ones)
    np.testing.assert_allclose(adapter.numpy(first), [12.0, 3.0])
    np.testing.assert_allclose(adapter.numpy(second), [12.0, -6.0])


def check_sgd_step(adapter: Any, dtype: str = "float64") -> None:
    """sgd_step: one plain SGD step, ``p - lr * g`` in the parameters' dtype, the parameters left as they were
    (values exact in every dtype, so an engine that keeps the learning rate in float32 passes too)."""
    p, q = np.array([1.0, -2.0]), np.array([[0.5], [4.0]])
    params = [adapter.tensor(p, dtype), adapter.tensor(q, dtype)]
    grads = [adapter.tensor(np.array([0.5, 0.25]), dtype), adapter.tensor(np.array([[-1.0], [2.0]]), dtype)]
    new = adapter.sgd_step(params, grads, 0.5)
    assert [adapter.dtype(t) for t in new] == [dtype, dtype]
    np.testing.assert_array_equal(adapter.numpy(new[0]), [0.75, -2.125])
    np.testing.assert_array_equal(adapter.numpy(new[1]), [[1.0], [3.0]])
    np.testing.assert_array_equal(adapter.numpy(params[0]), p)
    np.testing.assert_array_equal(adapter.numpy(params[1]), q)
