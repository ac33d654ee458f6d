"""The adapter protocol: what an engine provides so the suite can test it.

An adapter is one class per engine. It is structural (a ``typing.Protocol``), so an adapter
module needs no import from this package: the suite inlines an adapter's source into the
standalone reproduction scripts it writes for failures, and those must run with the engine alone.

Two layers:

* the functional core, which every engine can provide: tensors from and back to NumPy, the op
  catalog (``ops``), and ``vjp`` of a program written against ``ops`` (nest it for higher order);
* the stateful layer (capability ``stateful`` and friends): leaf state, ``backward``, an
  ``autograd.grad``-style call, ``retain_grad``, ``detach``, grad-mode contexts, in-place ops.

Optional extensions on top of the stateful layer, each its own protocol: ``Hooks`` (tensor hooks),
``CustomFunctions`` (ops from a forward and a backward) and ``Training`` (the engine's optimizer). Their
functional twins extend the functional core alone: ``CustomVJP`` (an op from a forward and a vjp) and
``FunctionalTraining`` (the engine's optimizer as a function of parameters and gradients).

An adapter declares what its engine has in ``capabilities``; a rule that needs a missing
capability is reported as unsupported, never passed and never failed. Errors are matched by
meaning: ``errors`` maps each meaning in ``ERROR_MEANINGS`` to the exception types (and, where
one type covers many meanings, a regular expression over the message) that mean it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import numpy as np

from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS

Tensor = Any
"""An engine's tensor; the suite only ever passes it back to the adapter."""

ErrorSpec = tuple[type[BaseException] | tuple[type[BaseException], ...], str | None]
"""Exception type(s) and an optional regular expression searched in ``str(exc)``."""


@runtime_checkable
class Functional(Protocol):
    """The functional core: what every engine provides. A functional-only adapter implements this alone.

    An engine with forward mode (capability ``forward_mode``, checked by ``validate``; not a member here,
    so an adapter without it still is a ``Functional``) also has
    ``jvp(fn, primals, tangents) -> (fn(*primals), tangent_out)``: ``tangent_out = J @ tangents``, one
    tangent per primal, in the output's dtype and shape, from the engine's own forward mode (never
    emulated in the adapter). With ``higher_order`` too, ``fn`` may itself call ``vjp``
    (forward-over-reverse Hessian-vector products).

    An engine whose capability does not reach every op (no double-backward kernel for some ops, no forward-mode
    rule for a cast) says so in an optional ``op_gaps``: capability -> the ops (``amax``) or op forms of
    ``specs/ops.toml`` (``pow.tensors``) it does not cover. A rule that needs the capability and calls one of them
    is unsupported (``higher_order:amax``), and the random programs leave those forms out.
    """

    name: str
    """Short name, as given to ``--backend``."""
    capabilities: frozenset[str]
    """Names from ``CAPABILITIES`` this engine has."""
    errors: Mapping[str, ErrorSpec]
    """Meaning (from ``ERROR_MEANINGS``) -> what the engine raises for it."""
    ops: Any
    """A namespace with one callable per name in ``OPS`` that the engine supports."""

    def engine_version(self) -> str:
        """The engine's version string, printed in the run header and the results."""

    def devices(self) -> Sequence[str]:
        """Devices this engine can run on here; the first is the default."""

    # -- functional core ------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: str, requires_grad: bool = False, device: str = "cpu") -> Tensor:
        """A new leaf holding a copy of ``array`` cast to ``dtype`` (a NumPy dtype name)."""

    def numpy(self, t: Tensor) -> np.ndarray:
        """A NumPy copy of ``t``'s values (detached), in ``t``'s dtype where NumPy has it."""

    def dtype(self, t: Tensor) -> str:
        """``t``'s dtype as a NumPy-style name: 'float32', 'float64', 'bfloat16', 'int64', 'bool'."""

    def shape(self, t: Tensor) -> tuple[int, ...]: ...

    def device(self, t: Tensor) -> str: ...

    def vjp(
        self, fn: Callable[..., Tensor], primals: Sequence[Tensor], cotangent: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        """``(fn(*primals), cotangent^T J)``, one gradient per primal, zeros where unused.

        The gradients must themselves be differentiable inside an enclosing ``vjp`` when the
        engine has ``higher_order``.
        """


@runtime_checkable
class Adapter(Functional, Protocol):
    """An engine with the stateful layer too (capability ``stateful`` and the ones that refine it)."""

    def grad_of(self, t: Tensor) -> Tensor | None:
        """``t.grad``: None until the first accumulation."""

    def set_grad(self, t: Tensor, value: Tensor | None) -> None:
        """``t.grad = value``."""

    def is_leaf(self, t: Tensor) -> bool: ...

    def requires_grad(self, t: Tensor) -> bool: ...

    def has_grad_fn(self, t: Tensor) -> bool: ...

    def requires_grad_(self, t: Tensor, flag: bool = True) -> Tensor: ...

    def backward(
        self,
        t: Tensor,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[Tensor] | None = None,
    ) -> None: ...

    def backward_many(
        self,
        tensors: Sequence[Tensor],
        grad_tensors: Sequence[Tensor | None] | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """``torch.autograd.backward(tensors, grad_tensors)``: one pass over several roots."""

    def grad(
        self,
        outputs: Tensor | Sequence[Tensor],
        inputs: Tensor | Sequence[Tensor],
        grad_outputs: Tensor | Sequence[Tensor | None] | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        allow_unused: bool | None = None,
        materialize_grads: bool = False,
    ) -> tuple[Tensor | None, ...]:
        """``torch.autograd.grad``: gradients returned, ``.grad`` untouched."""

    def retain_grad(self, t: Tensor) -> None: ...

    def retains_grad(self, t: Tensor) -> bool: ...

    def detach(self, t: Tensor) -> Tensor: ...

    def version(self, t: Tensor) -> int:
        """The version counter: +1 per in-place write through ``t`` or an alias (``version_counter``)."""

    def is_inference(self, t: Tensor) -> bool:
        """Whether ``t`` was made under ``inference_mode``."""

    def detach_(self, t: Tensor) -> Tensor: ...

    def shares_storage(self, a: Tensor, b: Tensor) -> bool:
        """Whether a write through one is visible through the other."""

    def no_grad(self) -> AbstractContextManager[None]:
        """A context manager that is also usable as a decorator."""

    def enable_grad(self) -> AbstractContextManager[None]: ...

    def set_grad_enabled(self, flag: bool) -> AbstractContextManager[None]: ...

    def is_grad_enabled(self) -> bool: ...

    def inference_mode(self) -> AbstractContextManager[None]: ...


# The optional extensions below are not members of ``Adapter``, so an adapter without them still is one;
# ``validate`` checks that an adapter declaring the capability has the methods (``CAPABILITY_METHODS``).


@runtime_checkable
class Hooks(Protocol):
    """Tensor hooks (capabilities ``hooks``, ``post_accumulate_hooks``)."""

    def register_hook(self, t: Tensor, fn: Callable[[Tensor], Tensor | None]) -> Any:
        """``t.register_hook(fn)``: ``fn(grad)`` sees the gradient flowing into ``t``; a tensor it returns
        replaces that gradient. Returns a handle for ``remove_hook``."""

    def register_post_accumulate_grad_hook(self, t: Tensor, fn: Callable[[Tensor], None]) -> Any:
        """``fn(t)`` runs on a leaf after backward updated its ``.grad``. Returns a handle for ``remove_hook``."""

    def remove_hook(self, handle: Any) -> None:
        """``handle.remove()``: the hook no longer runs."""


@runtime_checkable
class CustomFunctions(Protocol):
    """Custom ops from a forward and a backward (capability ``custom_function``)."""

    def function(
        self,
        forward: Callable[..., Tensor],
        backward: Callable[..., Tensor | tuple[Tensor | None, ...] | None],
        once_differentiable: bool = False,
    ) -> Callable[..., Tensor]:
        """A new op, ``torch.autograd.Function`` style: the returned callable ``apply(*inputs)`` runs
        ``forward(ctx, *inputs)`` (with grad mode off; one tensor out) and records a node whose backward is
        ``backward(ctx, grad)``, returning one gradient or None per input (a bare tensor for one input).
        With ``once_differentiable`` the backward runs with grad mode off, and differentiating its result
        again raises ``once_differentiable``. ``ctx`` is only passed to the four methods below."""

    def save_for_backward(self, ctx: Any, *tensors: Tensor) -> None:
        """``ctx.save_for_backward(*tensors)``, in forward: checked against in-place writes at backward."""

    def saved_tensors(self, ctx: Any) -> tuple[Tensor, ...]:
        """``ctx.saved_tensors``, in backward."""

    def needs_input_grad(self, ctx: Any) -> tuple[bool, ...]:
        """``ctx.needs_input_grad``: per input, whether it requires grad."""

    def mark_non_differentiable(self, ctx: Any, *outputs: Tensor) -> None:
        """``ctx.mark_non_differentiable(*outputs)``, in forward: those outputs do not require grad."""


@runtime_checkable
class Training(Protocol):
    """The engine's own optimizer (capability ``optimizer``)."""

    def optimizer(self, params: Sequence[Tensor], lr: float) -> Any:
        """The engine's own plain SGD (no momentum, no weight decay) over ``params``: ``p -= lr * p.grad``."""

    def zero_grad(self, opt: Any) -> None:
        """``opt.zero_grad()`` with the engine's default: each ``.grad`` becomes None or zeros."""

    def step(self, opt: Any) -> None:
        """``opt.step()``: one update from the current ``.grad`` of every parameter."""


@runtime_checkable
class CustomVJP(Protocol):
    """A custom derivative in the functional core (capability ``custom_vjp``): the functional twin of
    ``CustomFunctions``, with what every engine hands a custom backward (the inputs and the output)."""

    def custom_vjp(
        self,
        forward: Callable[..., Tensor],
        vjp: Callable[[tuple[Tensor, ...], Tensor, Tensor], Sequence[Tensor | None]],
    ) -> Callable[..., Tensor]:
        """A new op ``op(*inputs) = forward(*inputs)`` (one tensor out), made with the engine's own custom-derivative
        API: the engine's ``vjp`` of ``op`` calls ``vjp(inputs, output, cotangent)``, which returns one cotangent
        (or None: no gradient, zeros) per input, and never differentiates ``forward``. With ``higher_order``, a
        ``vjp`` written in the catalog's ops is itself differentiated by an enclosing ``vjp``."""


@runtime_checkable
class FunctionalTraining(Protocol):
    """The engine's own optimizer on values (capability ``functional_optimizer``): the functional twin of ``Training``."""

    def sgd_step(self, params: Sequence[Tensor], grads: Sequence[Tensor], lr: float) -> list[Tensor]:
        """One step of the engine's own plain SGD (no momentum, no weight decay): the new parameters,
        ``p - lr * g`` for each parameter ``p`` and its gradient ``g``; ``params`` are left as they were."""


CORE = ("name", "capabilities", "errors", "ops", "engine_version", "devices", "tensor", "numpy", "dtype", "shape",
        "device", "vjp")  # fmt: skip
"""What every adapter has: the functional core."""
CAPABILITY_METHODS: dict[str, tuple[str, ...]] = {
    "stateful": ("grad_of", "requires_grad", "backward"),
    "is_leaf": ("is_leaf", "has_grad_fn"),
    "requires_grad_": ("requires_grad_",),
    "autograd_grad": ("grad",),
    "backward_many": ("backward_many",),
    "retain_grad": ("retain_grad",),
    "retains_grad": ("retains_grad",),
    "grad_assign": ("set_grad",),
    "no_grad": ("no_grad", "is_grad_enabled"),
    "enable_grad": ("enable_grad",),
    "set_grad_enabled": ("set_grad_enabled",),
    "inference_mode": ("inference_mode", "is_inference"),
    "version_counter": ("version",),
    "detach": ("detach", "shares_storage"),
    "detach_": ("detach_",),
    "forward_mode": ("jvp",),
    "hooks": ("register_hook", "remove_hook"),
    "post_accumulate_hooks": ("register_post_accumulate_grad_hook", "remove_hook"),
    "custom_function": (
        "function",
        "save_for_backward",
        "saved_tensors",
        "mark_non_differentiable",
    ),
    "needs_input_grad": ("needs_input_grad",),
    "optimizer": ("optimizer", "zero_grad", "step"),
    "custom_vjp": ("custom_vjp",),
    "functional_optimizer": ("sgd_step",),
}
"""The methods each capability promises (the stateful layer's, and the functional extensions': ``jvp``,
``custom_vjp``, ``sgd_step``): declared capabilities are checked against them."""


def validate(adapter: Any) -> list[str]:
    """What is wrong with ``adapter`` as the protocol sees it: each problem names the attribute, and an
    unknown capability or error meaning the closest known one. Empty when it is a valid adapter."""
    found = [f"missing {name!r} (the functional core)" for name in CORE if not hasattr(adapter, name)]
    if found:
        return found
    capabilities, errors = adapter.capabilities, adapter.errors
    if not isinstance(capabilities, (set, frozenset)) or not all(isinstance(c, str) for c in capabilities):
        return [f"'capabilities' must be a set of names, got {type(capabilities).__name__}"]
    if not isinstance(errors, Mapping):
        return [f"'errors' must be a mapping of meaning -> (exception types, pattern), got {type(errors).__name__}"]
    found += [f"unknown capability {c!r}{_closest(c, CAPABILITIES)}" for c in sorted(capabilities - set(CAPABILITIES))]
    for capability in sorted(capabilities & set(CAPABILITY_METHODS)):
        found += [
            f"declares {capability!r} but has no {method!r}"
            for method in CAPABILITY_METHODS[capability]
            if not callable(getattr(adapter, method, None))
        ]
    for meaning, spec in errors.items():
        if meaning not in ERROR_MEANINGS:
            found.append(f"unknown error meaning {meaning!r}{_closest(meaning, ERROR_MEANINGS)}")
        elif not _valid_error_spec(spec):
            found.append(f"errors[{meaning!r}] must be (an exception type or a tuple of them, a regex or None)")
    if not isinstance(adapter.name, str) or not adapter.name:
        found.append("'name' must be a non-empty string")
    for capability, names in getattr(adapter, "op_gaps", {}).items():
        if capability not in capabilities:
            found.append(f"op_gaps[{capability!r}]: not a declared capability")
        found += [f"op_gaps[{capability!r}]: unknown op {n!r}" for n in sorted(names) if n.split(".")[0] not in OPS]
    return found


def _closest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(known))}"


def _valid_error_spec(spec: Any) -> bool:
    if not (isinstance(spec, tuple) and len(spec) == 2):
        return False
    types, pattern = spec
    types = types if isinstance(types, tuple) else (types,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        return False
    if pattern is None:
        return True
    try:
        re.compile(pattern)
    except (re.error, TypeError):
        return False
    return True
