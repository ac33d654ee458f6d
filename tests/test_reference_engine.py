"""The reference engine's stateful rules, checked directly (and a few against PyTorch too)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from conformance.backends.reference import ReferenceAdapter
from conformance.reference import Tensor, backward, enable_grad, grad, inference_mode, no_grad, ops, tensor
from conformance.reference import errors as E
from conformance.reference.engine import is_grad_enabled, set_grad_enabled


def _adapters() -> list[Any]:
    adapters: list[Any] = [ReferenceAdapter()]
    try:
        from conformance.backends.pytorch import TorchAdapter
    except ImportError:
        return adapters
    return [*adapters, TorchAdapter()]


@pytest.mark.parametrize("adapter", _adapters(), ids=lambda a: a.name)
def test_classic_example(adapter: Any) -> None:
    """z = x*x*y: backward(create_graph) gives x.grad = 2xy = 12; zeroed in place, backward from it gives 2y = 6."""
    x = adapter.tensor(np.array(2.0), "float64", requires_grad=True)
    y = adapter.tensor(np.array(3.0), "float64", requires_grad=True)
    z = adapter.ops.mul(adapter.ops.mul(x, x), y)
    adapter.backward(z, create_graph=True)
    assert adapter.numpy(adapter.grad_of(x)) == 12.0
    with adapter.no_grad():
        adapter.ops.zero_(adapter.grad_of(x))
    adapter.backward(adapter.grad_of(x))
    assert adapter.numpy(adapter.grad_of(x)) == 6.0


def test_accumulation_in_place_and_out_of_place() -> None:
    x = tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(tensor([1.0, 1.0]))
    g = x.grad
    (x * 2).backward(tensor([1.0, 1.0]))
    assert x.grad is g and g.array.tolist() == [5.0, 5.0]
    (x * x).backward(tensor([1.0, 1.0]), create_graph=True)
    assert x.grad is not g and x.grad.grad_fn is not None and g.array.tolist() == [5.0, 5.0]


def test_graph_freed_and_retain_graph() -> None:
    x = tensor([1.0, 2.0], requires_grad=True)
    y = ops.sum(ops.exp(x))
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(E.GraphFreedError):
        y.backward()
    z = ops.sum(x + 1.0)  # saved nothing: may run again, as in PyTorch
    z.backward()
    z.backward()


def test_version_counter() -> None:
    x = tensor([1.0, 2.0], requires_grad=True)
    y = x * 1.0
    z = ops.sum(y * y)
    d = y.detach()
    ops.add_(d, 1.0)
    assert (y._version, d._version) == (1, 1) and y.array.tolist() == [2.0, 3.0]
    with pytest.raises(E.ModifiedInplaceError):
        z.backward()
    w = x * 1.0
    u = ops.sum(w + 2.0)
    ops.add_(w, 1.0)  # w was saved by nothing
    u.backward()
    assert x.grad.array.tolist() == [1.0, 1.0]


def test_inplace_errors_and_leaf_promotion() -> None:
    w = tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(E.LeafInplaceError):
        ops.mul_(w, 2.0)
    with pytest.raises(E.LeafViewInplaceError):
        ops.setitem_(w, 0, 5.0)
    with pytest.raises(E.LeafViewInplaceError):
        ops.mul_(ops.index(w, slice(0, 1)), 2.0)
    with no_grad():
        ops.sub_(w, 0.5)
    assert w.is_leaf and w._version == 1
    with pytest.raises(E.InplaceBroadcastError):
        ops.add_(tensor([[1.0, 2.0]]), tensor([[1.0], [2.0]]))
    a = tensor([0.0, 0.0])
    ops.add_(a, w)
    assert not a.is_leaf and a.requires_grad


def test_inplace_through_a_view_reaches_the_base() -> None:
    b = tensor([1.0, 1.0, 1.0, 1.0], requires_grad=True)
    c = b * 1.0
    v = ops.index(c, slice(0, 2))
    ops.mul_(v, 3.0)
    assert c.array.tolist() == [3.0, 3.0, 1.0, 1.0] and c.grad_fn.name == "CopySlicesBackward"
    ops.sum(c).backward()
    assert b.grad.array.tolist() == [3.0, 3.0, 1.0, 1.0]
    with pytest.raises(E.DetachViewError):
        v.detach_()


def test_retain_grad_follows_inplace() -> None:
    x = tensor([1.0, 1.0], requires_grad=True)
    y = x * 2.0
    y.retain_grad()
    ops.mul_(y, 3.0)
    ops.sum(y * 1.0).backward()
    assert y.grad.array.tolist() == [1.0, 1.0] and x.grad.array.tolist() == [6.0, 6.0]
    with pytest.raises(E.RetainGradError):
        tensor([1.0]).retain_grad()


def test_grad_mode_contexts_decorators_threads() -> None:
    x = tensor([1.0], requires_grad=True)

    @no_grad
    def bare(t: Tensor) -> Tensor:
        return t * 2.0

    @no_grad()
    def gen() -> Any:
        yield is_grad_enabled()
        yield is_grad_enabled()

    assert not bare(x).requires_grad and list(gen()) == [False, False] and is_grad_enabled()
    with no_grad():
        with enable_grad():
            assert (x * 2.0).requires_grad
        seen = []
        worker = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        worker.start()
        worker.join()
        assert seen == [True] and not (x * 2.0).requires_grad
    set_grad_enabled(False)
    assert not is_grad_enabled()
    set_grad_enabled(True)
    with inference_mode():
        y = x * 2.0
        assert not is_grad_enabled()
    assert y.is_inference() and not y.requires_grad
    with pytest.raises(E.InferenceTensorSavedError):
        x * y
    assert (x + y).requires_grad  # add saves nothing


def test_backward_and_grad_argument_rules() -> None:
    x = tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(E.ImplicitGradError):
        (x * 2.0).backward()
    with pytest.raises(E.GradShapeError):
        (x * 2.0).backward(tensor([1.0, 2.0, 3.0]))
    with pytest.raises(E.GradCountError):
        backward([x * 2.0, x * 3.0], [tensor([1.0, 1.0])])
    with pytest.raises(E.NoGradFnError):
        ops.sum(tensor([1.0])).backward()
    with pytest.raises(E.EmptyInputsError):
        ops.sum(x).backward(inputs=[])
    y = tensor(3.0, requires_grad=True)
    with pytest.raises(E.UnusedInputError):
        grad(ops.sum(x), [x, y])
    assert grad(ops.sum(x), [x, y], allow_unused=True)[1] is None
    assert grad(ops.sum(x), [x, y], materialize_grads=True)[1].array == 0.0
    with pytest.raises(E.InvalidArgumentError):
        grad(ops.sum(x), [x, y], allow_unused=False, materialize_grads=True)
    with pytest.raises(E.InputNotRequiringGradError):
        grad(ops.sum(x), [tensor([1.0])])
    assert x.grad is None


def test_leaf_state_and_grad_assignment() -> None:
    with pytest.raises(E.NonFloatRequiresGradError):
        tensor([1, 2], requires_grad=True)
    x = tensor([1.0, 2.0], dtype="float32", requires_grad=True)
    with pytest.raises(E.NonLeafRequiresGradError):
        (x * 2.0).requires_grad_(False)
    for bad, error in [(tensor([1.0]), E.GradAssignError), (tensor([1.0, 2.0]), E.GradAssignError), ([1.0], TypeError)]:
        with pytest.raises(error):
            x.grad = bad
    assert not ops.gt(x, 1.0).requires_grad and not ops.argmax(x).requires_grad
    assert ops.floor(x).requires_grad
    d = ops.to_dtype(x, "float64")
    assert not d.is_leaf and ops.to_dtype(x, "float32") is x
    ops.sum(d * d).backward()
    assert x.grad.dtype == np.float32


def test_devices() -> None:
    x = tensor([1.0, 2.0], requires_grad=True, device="sim")
    ops.sum(x * x).backward()
    assert x.grad.device == "sim"
    with pytest.raises(E.DeviceMismatchError):
        x + tensor([1.0, 2.0])
