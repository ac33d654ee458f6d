"""Adapters that break the ops rules: one per op, each the reference engine with that op's backward wrong.

The reference engine defines each op as a forward and one VJP per argument (``conformance/reference/ops.py``);
a broken op keeps the forward and corrupts every VJP in one way (doubled, or negated), so both its
first-order rule and its second-order rule (whose upstream part is the op's Jacobian) fail. floor,
whose true gradient is zero, instead passes the gradient straight through; gt and argmax record a
backward, so their outputs require grad.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable
from typing import Any

import numpy as np

import conformance.reference as ref
from conformance.backends.reference import OPS, ReferenceAdapter

Op = ref.engine.Op
table = ref.ops


def _corrupted(op: Op, way: Callable[[Any], Any]) -> Op:
    """``op`` with ``way`` applied to each VJP's result (wrapped, so the engine still reads its signature)."""

    def corrupt(vjp: Callable[..., Any] | None) -> Callable[..., Any] | None:
        if vjp is None:
            return None

        @functools.wraps(vjp)
        def wrong(*args: Any, **kwargs: Any) -> Any:
            return way(vjp(*args, **kwargs))

        return wrong

    return dataclasses.replace(op, vjps=tuple(corrupt(v) for v in op.vjps))


def doubled(op: Op) -> Op:
    """A backward that counts the gradient twice."""
    return _corrupted(op, lambda g: g * 2.0)


def negated(op: Op) -> Op:
    """A backward with its sign flipped."""
    return _corrupted(op, lambda g: -g)


def _breaks(op: str, *forms: str, orders: tuple[str, ...] = ("vjp", "vjp2")) -> tuple[str, ...]:
    return tuple(f"ops.{op}.{form}.{order}" for form in forms for order in orders)


def _ops(**overrides: Callable[..., Any]) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{**vars(OPS), **overrides})


# The catalog entries that are signatures around a private table op, rebuilt around a broken one.
def _pow(op: Op) -> Callable[..., Any]:
    return lambda a, b: op(a, b)


def _index(op: Op) -> Callable[..., Any]:
    return lambda a, key: op(a, table._key(key))


def _cat(op: Op) -> Callable[..., Any]:
    return lambda tensors, dim=0: op(*tensors, dim=dim)


def _to_dtype(op: Op) -> Callable[..., Any]:
    return lambda a, dtype: op(a, np.dtype(dtype))


class _Broken(ReferenceAdapter):
    name = "numpy-broken-op"


class AddBackwardDoubled(_Broken):
    breaks = _breaks("add", "tensors", "number")
    ops = _ops(add=doubled(table.add))


class SubBackwardNegated(_Broken):
    breaks = _breaks("sub", "tensors", "number")
    ops = _ops(sub=negated(table.sub))


class MulBackwardDoubled(_Broken):
    """Doubled, not negated: mul's backward runs mul, so at second order a negation would cancel out."""

    breaks = _breaks("mul", "tensors", "number")
    ops = _ops(mul=doubled(table.mul))


class DivBackwardDoubled(_Broken):
    breaks = _breaks("div", "tensors", "number")
    ops = _ops(div=doubled(table.div))


class PowBackwardDoubled(_Broken):
    breaks = _breaks("pow", "tensors", "integer-exponent", "fractional-exponent")
    ops = _ops(pow=_pow(doubled(table._pow)))


class MaximumBackwardNegated(_Broken):
    breaks = _breaks("maximum", "tensors")
    ops = _ops(maximum=negated(table.maximum))


class MinimumBackwardDoubled(_Broken):
    breaks = _breaks("minimum", "tensors")
    ops = _ops(minimum=doubled(table.minimum))


class WhereBackwardNegated(_Broken):
    breaks = _breaks("where", "tensors", "number")
    ops = _ops(where=negated(table.where))


class NegBackwardNegated(_Broken):
    """neg's backward forgets the minus: it passes the gradient through."""

    breaks = _breaks("neg", "tensor")
    ops = _ops(neg=negated(table.neg))


class ExpBackwardDoubled(_Broken):
    breaks = _breaks("exp", "tensor")
    ops = _ops(exp=doubled(table.exp))


class LogBackwardNegated(_Broken):
    breaks = _breaks("log", "tensor")
    ops = _ops(log=negated(table.log))


class SqrtBackwardDoubled(_Broken):
    """sqrt's backward forgets the 1/2."""

    breaks = _breaks("sqrt", "tensor")
    ops = _ops(sqrt=doubled(table.sqrt))


class SinBackwardNegated(_Broken):
    breaks = _breaks("sin", "tensor")
    ops = _ops(sin=negated(table.sin))


class CosBackwardNegated(_Broken):
    """cos's backward forgets the minus of -sin."""

    breaks = _breaks("cos", "tensor")
    ops = _ops(cos=negated(table.cos))


class TanhBackwardDoubled(_Broken):
    breaks = _breaks("tanh", "tensor")
    ops = _ops(tanh=doubled(table.tanh))


class SigmoidBackwardDoubled(_Broken):
    breaks = _breaks("sigmoid", "tensor")
    ops = _ops(sigmoid=doubled(table.sigmoid))


class ReluBackwardNegated(_Broken):
    breaks = _breaks("relu", "tensor")
    ops = _ops(relu=negated(table.relu))


class AbsBackwardDoubled(_Broken):
    breaks = _breaks("abs", "tensor")
    ops = _ops(abs=doubled(table.abs))


class ClampBackwardNegated(_Broken):
    breaks = _breaks("clamp", "both", "min", "max")
    ops = _ops(clamp=negated(table.clamp))


class FloorStraightThrough(_Broken):
    """floor's backward passes the gradient through (a straight-through estimator) instead of zero."""

    breaks = _breaks("floor", "tensor")
    ops = _ops(floor=dataclasses.replace(table.floor, vjps=(lambda g, ans, a: g,)))


class CloneBackwardDoubled(_Broken):
    breaks = _breaks("clone", "tensor")
    ops = _ops(clone=doubled(table.clone))


class ToDtypeBackwardNegated(_Broken):
    """to_dtype casts even to its own dtype, through a backward with its sign flipped."""

    breaks = _breaks("to_dtype", "float64")
    ops = _ops(to_dtype=_to_dtype(negated(table._to_dtype)))


class SumBackwardDoubled(_Broken):
    breaks = _breaks("sum", "all", "dim", "negative-dim-keepdim", "dims", "dims-keepdim")
    ops = _ops(sum=doubled(table.sum))


class MeanBackwardNegated(_Broken):
    breaks = _breaks("mean", "all", "dim", "negative-dim-keepdim", "dims")
    ops = _ops(mean=negated(table.mean))


class AmaxBackwardDoubled(_Broken):
    breaks = _breaks("amax", "all", "dim", "negative-dim-keepdim", "dims")
    ops = _ops(amax=doubled(table.amax))


class SoftmaxBackwardNegated(_Broken):
    breaks = _breaks("softmax", "negative-dim", "dim")
    ops = _ops(softmax=negated(table.softmax))


class LogSoftmaxBackwardDoubled(_Broken):
    breaks = _breaks("log_softmax", "negative-dim", "dim")
    ops = _ops(log_softmax=doubled(table.log_softmax))


class ReshapeBackwardNegated(_Broken):
    breaks = _breaks("reshape", "flatten", "row", "to-zero-d")
    ops = _ops(reshape=negated(table.reshape))


class PermuteBackwardDoubled(_Broken):
    breaks = _breaks("permute", "matrix", "negative-dims", "zero-d")
    ops = _ops(permute=doubled(table.permute))


class TransposeBackwardNegated(_Broken):
    breaks = _breaks("transpose", "negative-dim", "dims")
    ops = _ops(transpose=negated(table.transpose))


class ExpandBackwardDoubled(_Broken):
    breaks = _breaks("expand", "grow", "keep-sizes")
    ops = _ops(expand=doubled(table.expand))


class BroadcastToBackwardNegated(_Broken):
    breaks = _breaks("broadcast_to", "grow")
    ops = _ops(broadcast_to=negated(table.broadcast_to))


class SumToSizeBackwardDoubled(_Broken):
    breaks = _breaks("sum_to_size", "to-shape")
    ops = _ops(sum_to_size=doubled(table.sum_to_size))


class SqueezeBackwardNegated(_Broken):
    breaks = _breaks("squeeze", "dim", "negative-dim")
    ops = _ops(squeeze=negated(table.squeeze))


class UnsqueezeBackwardDoubled(_Broken):
    breaks = _breaks("unsqueeze", "dim", "negative-dim")
    ops = _ops(unsqueeze=doubled(table.unsqueeze))


class MatmulBackwardNegated(_Broken):
    breaks = _breaks("matmul", "tensors")
    ops = _ops(matmul=negated(table.matmul))


class IndexBackwardDoubled(_Broken):
    breaks = _breaks("index", "slices", "int", "ints", "repeated", "mixed")
    ops = _ops(index=_index(doubled(table._index)))


class CatBackwardNegated(_Broken):
    breaks = _breaks("cat", "dim", "negative-dim")
    ops = _ops(cat=_cat(negated(table._cat)))


class StackBackwardDoubled(_Broken):
    breaks = _breaks("stack", "dim", "negative-dim")
    ops = _ops(stack=_cat(doubled(table._stack)))


def _recording(op: Op) -> Op:
    """``op`` with a float output and a backward, so the engine records it and its output requires grad."""
    return dataclasses.replace(
        op,
        forward=lambda *args, **kwargs: np.asarray(op.forward(*args, **kwargs), dtype=np.float64),
        vjps=(lambda g, ans, a, b=None: g * 0.0,),
    )


class GtRequiresGrad(_Broken):
    """gt returns a float mask that is part of the graph: it requires grad when an input does."""

    breaks = _breaks("gt", "tensors", "number", orders=("no-grad",))
    ops = _ops(gt=_recording(table.gt))


class ArgmaxRequiresGrad(_Broken):
    """argmax returns a float index that is part of the graph: it requires grad when its input does."""

    breaks = _breaks("argmax", "all", orders=("no-grad",))
    ops = _ops(argmax=_recording(table.argmax))


def _expand_wrapping(a: Any, shape: Any) -> Any:
    """torch's expand with the guard missing: -1 for a new leading dim takes the size of some existing dim."""
    lead = len(shape) - a.ndim
    return table.broadcast_to(a, tuple(a.shape[i - lead] if n == -1 else n for i, n in enumerate(shape)))


class ExpandMinusOneWraps(_Broken):
    breaks = ("broadcasting.error.expand-minus-one-new-dim",)
    ops = _ops(expand=_expand_wrapping)
