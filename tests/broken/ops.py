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


# -- forward mode: ops.<op>.<form>.jvp --------------------------------------------------------------
# The reference engine's jvp is the double-vjp trick: the derivative of each VJP with respect to its
# cotangent. A VJP that keeps its value but doubles its derivative (``r + (r - detach(r))``) leaves the
# first-order vjp right and makes the jvp twice J t: both the oracle check and the dot-product test of
# the op's .jvp rule fail, one adapter per op.


def tangent_doubled(op: Op) -> Op:
    """Each VJP with its value kept and its own derivative doubled: forward mode sees 2 J t."""
    return _corrupted(op, lambda r: table.add(r, table.sub(r, r.detach())))


def _tangent_passes(op: Op) -> Op:
    """floor, whose VJP is zero, with the identity as that VJP's derivative: forward mode sees t."""
    return dataclasses.replace(op, vjps=(lambda g, ans, a: table.add(table.zeros(g), table.sub(g, g.detach())),))


_JVP_BREAKS: dict[str, tuple[Callable[[Op], Callable[..., Any]], Op, tuple[str, ...]]] = {
    "add": (lambda op: op, table.add, ("tensors", "number")),
    "sub": (lambda op: op, table.sub, ("tensors", "number")),
    "mul": (lambda op: op, table.mul, ("tensors", "number")),
    "div": (lambda op: op, table.div, ("tensors", "number")),
    "pow": (_pow, table._pow, ("tensors", "integer-exponent", "fractional-exponent")),
    "maximum": (lambda op: op, table.maximum, ("tensors",)),
    "minimum": (lambda op: op, table.minimum, ("tensors",)),
    "where": (lambda op: op, table.where, ("tensors", "number")),
    "neg": (lambda op: op, table.neg, ("tensor",)),
    "exp": (lambda op: op, table.exp, ("tensor",)),
    "log": (lambda op: op, table.log, ("tensor",)),
    "sqrt": (lambda op: op, table.sqrt, ("tensor",)),
    "sin": (lambda op: op, table.sin, ("tensor",)),
    "cos": (lambda op: op, table.cos, ("tensor",)),
    "tanh": (lambda op: op, table.tanh, ("tensor",)),
    "sigmoid": (lambda op: op, table.sigmoid, ("tensor",)),
    "relu": (lambda op: op, table.relu, ("tensor",)),
    "abs": (lambda op: op, table.abs, ("tensor",)),
    "clamp": (lambda op: op, table.clamp, ("both", "min", "max")),
    "clone": (lambda op: op, table.clone, ("tensor",)),
    "to_dtype": (_to_dtype, table._to_dtype, ("float64",)),
    "sum": (lambda op: op, table.sum, ("all", "dim", "negative-dim-keepdim", "dims", "dims-keepdim")),
    "mean": (lambda op: op, table.mean, ("all", "dim", "negative-dim-keepdim", "dims")),
    "amax": (lambda op: op, table.amax, ("all", "dim", "negative-dim-keepdim", "dims")),
    "softmax": (lambda op: op, table.softmax, ("negative-dim", "dim")),
    "log_softmax": (lambda op: op, table.log_softmax, ("negative-dim", "dim")),
    "reshape": (lambda op: op, table.reshape, ("flatten", "row", "to-zero-d")),
    "permute": (lambda op: op, table.permute, ("matrix", "negative-dims", "zero-d")),
    "transpose": (lambda op: op, table.transpose, ("negative-dim", "dims")),
    "expand": (lambda op: op, table.expand, ("grow", "keep-sizes")),
    "broadcast_to": (lambda op: op, table.broadcast_to, ("grow",)),
    "sum_to_size": (lambda op: op, table.sum_to_size, ("to-shape",)),
    "squeeze": (lambda op: op, table.squeeze, ("dim", "negative-dim")),
    "unsqueeze": (lambda op: op, table.unsqueeze, ("dim", "negative-dim")),
    "matmul": (lambda op: op, table.matmul, ("tensors",)),
    "index": (_index, table._index, ("slices", "int", "ints", "repeated", "mixed")),
    "cat": (_cat, table._cat, ("dim", "negative-dim")),
    "stack": (_cat, table._stack, ("dim", "negative-dim")),
}
"""op -> (the catalog entry around a table op, that table op, the op's forms)."""


def _jvp_broken(name: str, wrap: Callable[[Op], Callable[..., Any]], op: Op, forms: tuple[str, ...]) -> type:
    title = "".join(part.capitalize() for part in name.split("_"))
    return type(
        f"{title}TangentDoubled",
        (_Broken,),
        {
            "__module__": __name__,
            "__doc__": f"{name}'s VJPs keep their values but double their derivatives: its jvp is 2 J t.",
            "breaks": _breaks(name, *forms, orders=("jvp",)),
            "ops": _ops(**{name: wrap(tangent_doubled(op))}),
        },
    )


for _name, (_wrap, _op, _forms) in _JVP_BREAKS.items():
    _cls = _jvp_broken(_name, _wrap, _op, _forms)
    globals()[_cls.__name__] = _cls
del _name, _wrap, _op, _forms, _cls  # all_broken() must see each class once, by its own name


class FloorTangentPasses(_Broken):
    """floor's VJP is zero, but its derivative is the identity: its jvp is t, not 0."""

    breaks = _breaks("floor", "tensor", orders=("jvp",))
    ops = _ops(floor=_tangent_passes(table.floor))


class StopGradientPassesThrough(_Broken):
    """stop_gradient is a copy that keeps the graph (clone, not detach): gradients and tangents flow through it."""

    breaks = (
        *_breaks("stop_gradient", "tensor", orders=("vjp", "jvp")),
        "detach.stop-gradient.vjp-stops",
        "detach.stop-gradient.second-order",
        "detach.stop-gradient.jvp-stops",
    )
    ops = _ops(stop_gradient=table.clone)
