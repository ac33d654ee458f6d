"""Adapter for mygrad (https://github.com/rsokl/MyGrad), a pure-Python autograd engine on NumPy.

Self-contained on purpose: it imports only mygrad, NumPy and the standard library, so the suite
can inline this file into a standalone reproduction script.

Thin by design: every method is one of mygrad's own calls. Where mygrad has no counterpart of a
feature, the capability is left out and the method raises ``NotImplementedError`` saying so; where
it has one with other semantics, the mapping is faithful and the rules report the difference.
The mapping, in mygrad's terms:

* ``requires_grad`` is ``not constant``; a graph leaf is a tensor without a ``creator`` (mygrad
  has no is_leaf flag, and clears every ``creator`` of a graph when backward finishes).
* ``.grad`` is a NumPy array in mygrad, and ``grad_of`` returns that very array: ``numpy``,
  ``dtype`` and ``shape`` read arrays and tensors alike, mygrad's ops take an array as a constant,
  and an in-place op on it (``zero_``) writes the array, as ``x.grad[...] = 0`` would in mygrad.
* ``set_grad(t, None)`` is ``t.null_grad()``; mygrad's ``.grad`` cannot be assigned a value.
* ``no_grad`` is ``mygrad.no_autodiff`` (a global switch, usable as a context and a decorator);
  mygrad has no way to switch graph tracking back on inside it, so ``enable_grad`` is not declared.
* ``detach`` is ``mygrad.astensor(t, constant=True)``, mygrad's own constant tensor over the same data
  (its docstring: a new tensor "with no copy of the underlying data"); ``stop_gradient`` is the same call.
* ``clone`` is ``mygrad.positive``, mygrad's differentiable copy ("Returns a copy of the tensor", with an
  identity backward); ``Tensor.copy()`` is documented as graph-free, so it is not a clone.
* ``backward`` forwards ``retain_graph``, ``create_graph`` and ``inputs`` to mygrad only when set,
  so mygrad's own ``TypeError`` says it has no such argument; ``retain_graph`` (mygrad's backward
  always clears the graph) and ``backward_create_graph`` are not declared.
* a tensor's ``constant`` flag is fixed when it is made, so ``requires_grad_`` is not declared.
* ``vjp`` runs mygrad's backward on fresh leaves; the gradients are its arrays, not differentiable.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import mygrad as mg
import numpy as np


def _index(a: mg.Tensor, key: Any) -> mg.Tensor:
    if isinstance(key, tuple):
        key = tuple(np.asarray(k) if isinstance(k, list) else k for k in key)
    elif isinstance(key, list):
        key = np.asarray(key)
    return a[key]


def _expand(a: mg.Tensor, shape: Sequence[int]) -> mg.Tensor:
    """torch's expand as NumPy's broadcast_to: -1 keeps the size of the aligned dim; a new leading dim needs a size."""
    lead = len(shape) - a.ndim
    if lead < 0 or -1 in tuple(shape)[:lead]:
        raise ValueError(f"operands could not be broadcast together: {tuple(a.shape)} to {tuple(shape)}")
    return mg.broadcast_to(a, tuple(a.shape[i - lead] if s == -1 else s for i, s in enumerate(shape)))


def _where(cond: Any, a: Any, b: Any) -> mg.Tensor:
    """The mask as an array, as mygrad's comparisons return it: mygrad 2.5.0's ``where`` recurses
    without end when the condition is itself a Tensor."""
    return mg.where(np.asarray(cond), a, b)


def _setitem(a: mg.Tensor, key: Any, value: Any) -> mg.Tensor:
    a[key] = value
    return a


def _as_tensor(array: Any) -> mg.Tensor:
    """mygrad returns comparisons and argmax as arrays; ops on tensors give tensors."""
    return mg.tensor(array, constant=True, copy=False)


OPS = types.SimpleNamespace(
    add=mg.add,
    sub=mg.subtract,
    mul=mg.multiply,
    div=mg.divide,
    neg=mg.negative,
    pow=mg.power,
    exp=mg.exp,
    log=mg.log,
    sqrt=mg.sqrt,
    sin=mg.sin,
    cos=mg.cos,
    tanh=mg.tanh,
    sigmoid=mg.nnet.sigmoid,
    relu=mg.nnet.relu,
    abs=mg.absolute,
    maximum=mg.maximum,
    minimum=mg.minimum,
    where=_where,
    gt=lambda a, b: _as_tensor(mg.greater(a, b)),
    clamp=lambda a, min=None, max=None: mg.clip(a, min, max),
    sum=lambda a, dim=None, keepdim=False: mg.sum(a, axis=dim, keepdims=keepdim),
    mean=lambda a, dim=None, keepdim=False: mg.mean(a, axis=dim, keepdims=keepdim),
    amax=lambda a, dim=None, keepdim=False: mg.max(a, axis=dim, keepdims=keepdim),
    reshape=lambda a, shape: mg.reshape(a, tuple(shape)),
    permute=lambda a, dims: mg.transpose(a, tuple(dims)),
    transpose=mg.swapaxes,
    expand=_expand,
    broadcast_to=lambda a, shape: mg.broadcast_to(a, tuple(shape)),
    squeeze=lambda a, dim: mg.squeeze(a, axis=dim),
    unsqueeze=mg.expand_dims,
    matmul=mg.matmul,
    index=_index,
    cat=lambda ts, dim=0: mg.concatenate(list(ts), axis=dim),
    stack=lambda ts, dim=0: mg.stack(list(ts), axis=dim),
    softmax=lambda a, dim: mg.nnet.softmax(a, axis=dim),
    log_softmax=lambda a, dim: mg.nnet.logsoftmax(a, axis=dim),
    floor=mg.floor,
    argmax=lambda a: _as_tensor(mg.argmax(a)),
    clone=mg.positive,
    to_dtype=lambda a, dtype: a.astype(dtype),
    stop_gradient=lambda a: mg.astensor(a, constant=True),
    add_=lambda a, b: mg.add(a, b, out=a),
    sub_=lambda a, b: mg.subtract(a, b, out=a),
    mul_=lambda a, b: mg.multiply(a, b, out=a),
    zero_=lambda a: _setitem(a, ..., 0),
    copy_=lambda a, b: _setitem(a, ..., b),
    setitem_=_setitem,
)
"""Every op of the catalog but ``sum_to_size``, which mygrad lacks."""


def _lacks(feature: str) -> NotImplementedError:
    return NotImplementedError(f"mygrad has no {feature}")


class MygradAdapter:
    """mygrad 2.5, on the CPU (NumPy)."""

    name = "mygrad"
    ops = OPS
    capabilities = frozenset(
        {
            "stateful",
            "is_leaf",
            "no_grad",
            "graph_freeing",
            "inplace",
            "views",
            "detach",
            "integer_tensors",
            "float32",
            "float64",
            "float16",
            "mixed_dtypes",
        }
    )
    errors = {
        "incompatible_shapes": (ValueError, r"could not be broadcast together"),
        "invalid_expand": (ValueError, r"could not be broadcast together|more dimensions than allowed"),
        "inplace_broadcast": (ValueError, r"non-broadcastable output operand"),
        "grad_shape_mismatch": (ValueError, r"gradient with an incompatible shape"),
        "nonfloat_requires_grad": (ValueError, r"Integer-valued tensors must be treated as constants"),
        "nonfloat_differentiated": (ValueError, r"Integer-valued tensors must be treated as constants"),
    }

    def engine_version(self) -> str:
        return f"{mg.__version__} (numpy {np.__version__})"

    def devices(self) -> Sequence[str]:
        return ("cpu",)

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> mg.Tensor:
        return mg.tensor(np.array(array), dtype=dtype, constant=not requires_grad)

    def numpy(self, t: mg.Tensor | np.ndarray) -> np.ndarray:
        return np.array(t, copy=True)

    def dtype(self, t: mg.Tensor | np.ndarray) -> str:
        return t.dtype.name

    def shape(self, t: mg.Tensor | np.ndarray) -> tuple[int, ...]:
        return tuple(t.shape)

    def device(self, t: mg.Tensor) -> str:
        return "cpu"

    def vjp(
        self, fn: Callable[..., mg.Tensor], primals: Sequence[mg.Tensor], cotangent: mg.Tensor
    ) -> tuple[mg.Tensor, list[np.ndarray]]:
        inner = [mg.tensor(p, constant=False) for p in primals]
        out = fn(*inner)
        out.backward(cotangent)
        return out, [np.zeros_like(p.data) if p.grad is None else p.grad for p in inner]

    # -- stateful layer ---------------------------------------------------------------------
    def grad_of(self, t: mg.Tensor) -> np.ndarray | None:
        return t.grad

    def set_grad(self, t: mg.Tensor, value: mg.Tensor | None) -> None:
        if value is not None:
            raise _lacks("assignable .grad (only null_grad() clears it)")
        t.null_grad()

    def is_leaf(self, t: mg.Tensor) -> bool:
        return t.creator is None

    def requires_grad(self, t: mg.Tensor | np.ndarray) -> bool:
        return isinstance(t, mg.Tensor) and not t.constant  # mygrad takes an array (a .grad) as a constant

    def has_grad_fn(self, t: mg.Tensor) -> bool:
        return t.creator is not None

    def requires_grad_(self, t: mg.Tensor, flag: bool = True) -> mg.Tensor:
        raise _lacks("requires_grad_: a tensor's constant flag is fixed when it is created")

    def backward(
        self,
        t: mg.Tensor,
        gradient: mg.Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[mg.Tensor] | None = None,
    ) -> None:
        given = {"retain_graph": retain_graph, "create_graph": create_graph or None, "inputs": inputs}
        t.backward(gradient, **{k: v for k, v in given.items() if v is not None})

    def backward_many(self, tensors: Sequence[mg.Tensor], *args: Any, **kwargs: Any) -> None:
        raise _lacks("backward over several outputs at once")

    def grad(self, outputs: Any, inputs: Any, *args: Any, **kwargs: Any) -> tuple[mg.Tensor | None, ...]:
        raise _lacks("autograd.grad-style call: gradients only land in .grad")

    def retain_grad(self, t: mg.Tensor) -> None:
        raise _lacks("retain_grad (every non-constant tensor keeps its .grad)")

    def retains_grad(self, t: mg.Tensor) -> bool:
        raise _lacks("retain_grad (every non-constant tensor keeps its .grad)")

    def detach(self, t: mg.Tensor) -> mg.Tensor:
        return mg.astensor(t, constant=True)

    def version(self, t: mg.Tensor) -> int:
        raise _lacks("version counter")

    def is_inference(self, t: mg.Tensor) -> bool:
        raise _lacks("inference_mode")

    def detach_(self, t: mg.Tensor) -> mg.Tensor:
        raise _lacks("detach_")

    def shares_storage(self, a: mg.Tensor, b: mg.Tensor) -> bool:
        return np.shares_memory(a.data, b.data)

    def no_grad(self) -> Any:
        return mg.no_autodiff

    def enable_grad(self) -> Any:
        raise _lacks("enable_grad: no_autodiff cannot be switched back on inside its block")

    def set_grad_enabled(self, flag: bool) -> Any:
        raise _lacks("set_grad_enabled")

    def is_grad_enabled(self) -> bool:
        return mg.no_autodiff.state  # the graph-tracking flag that no_autodiff switches off

    def inference_mode(self) -> Any:
        raise _lacks("inference_mode")
