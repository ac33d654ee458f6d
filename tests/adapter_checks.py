"""Protocol-level checks of an adapter's functional core, shared by the tests of each engine's adapter.

They use the adapter's own ``tensor``, ``ops``, ``vjp`` and ``numpy`` only, with hand-derived expectations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.adapter import CAPABILITY_METHODS

INPLACE_OPS = {"add_", "sub_", "mul_", "zero_", "copy_", "setitem_"}
"""The catalog's in-place ops: the stateful layer's, absent from a functional engine's ops."""
STATEFUL = (set(CAPABILITY_METHODS) - {"forward_mode"}) | {
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
