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

Tensor = Any
"""An engine's tensor; the suite only ever passes it back to the adapter."""

ErrorSpec = tuple[type[BaseException] | tuple[type[BaseException], ...], str | None]
"""Exception type(s) and an optional regular expression searched in ``str(exc)``."""

CAPABILITIES: dict[str, str] = {
    "stateful": "leaf state (.grad, requires_grad) and backward()",
    "is_leaf": "is_leaf() and has_grad_fn(): the engine tells a leaf from the result of a recorded op (its grad_fn)",
    "requires_grad_": "requires_grad_(t, flag): requires_grad switched on a tensor that exists already",
    "autograd_grad": "an autograd.grad-style call that returns gradients without touching .grad",
    "backward_inputs": "backward(inputs=[...]) restricts accumulation to the listed tensors",
    "backward_many": "backward on a list of outputs with a list of gradients in one pass",
    "backward_create_graph": "backward(create_graph=True): the gradients it accumulates into .grad are differentiable",
    "allow_unused": "autograd.grad's allow_unused: None for an input the outputs do not use",
    "materialize_grads": "autograd.grad's materialize_grads: zeros instead of None for an unused input",
    "retain_grad": "retain_grad() on non-leaf tensors",
    "retains_grad": "the retains_grad(t) query: whether a tensor keeps its .grad (a leaf, or after retain_grad())",
    "grad_assign": "assigning .grad directly (None or a tensor), validated",
    "no_grad": "a no_grad context, usable as a decorator, thread-local, and the is_grad_enabled() query",
    "enable_grad": "enable_grad(): grad mode switched back on inside a no_grad block, as a context and a decorator",
    "set_grad_enabled": "set_grad_enabled(flag) as a context manager",
    "inference_mode": "inference_mode context and inference tensors",
    "higher_order": "grad(create_graph=True) / nested vjp: gradients that can be differentiated again",
    "forward_mode": "jvp(fn, primals, tangents): forward-mode Jacobian-vector products, differentiable by vjp",
    "graph_freeing": "saved tensors freed after backward unless retain_graph",
    "retain_graph": "retain_graph=True on backward and grad keeps the graph for another pass (or it is never freed)",
    "inplace": "in-place ops (add_, mul_, sub_, zero_, copy_)",
    "views": "index results are views: in-place writes through them reach the base",
    "version_counter": "in-place modification of a tensor saved for backward is detected",
    "detach": "detach(): a leaf alias that shares storage and the version counter",
    "detach_": "detach_(): detach a non-leaf in place",
    "integer_tensors": "integer and bool tensors exist (so the 'cannot require grad' rules apply)",
    "float32": "float32 tensors (declared explicitly, like every other dtype)",
    "float64": "float64 tensors",
    "float16": "float16 tensors",
    "bfloat16": "bfloat16 tensors",
    "mixed_dtypes": "binary ops between tensors of different floating dtypes promote",
    "devices": "more than one device, so device rules apply",
    "hooks": "tensor hooks (register_hook) that see and may replace a tensor's gradient, removable",
    "post_accumulate_hooks": "hooks on a leaf that run after its .grad was updated",
    "custom_function": "custom ops from a forward and a backward (torch.autograd.Function)",
    "needs_input_grad": "a custom op's context tells which inputs require grad (ctx.needs_input_grad)",
    "once_differentiable": "a custom op's backward marked once-differentiable (function(..., once_differentiable=True))",
    "optimizer": "an SGD optimizer over a list of leaves, with zero_grad and step",
    "custom_vjp": "custom_vjp(forward, vjp): a functional op whose vjp is the given one, differentiable again",
    "functional_optimizer": "sgd_step(params, grads, lr): the engine's own plain SGD, returning the new parameters",
}
"""Every capability name a rule may need, with what it means. Specs are validated against it."""

ERROR_MEANINGS: dict[str, str] = {
    "incompatible_shapes": "operands of a broadcasting op have incompatible shapes",
    "invalid_expand": "expand/broadcast_to to a shape the tensor cannot broadcast to",
    "inplace_broadcast": "an in-place op would have to broadcast self",
    "implicit_grad_nonscalar": "backward/grad without a gradient on an output with numel != 1",
    "grad_shape_mismatch": "an explicit gradient whose shape differs from the output's",
    "grad_count_mismatch": "a different number of gradients than outputs",
    "no_grad_fn": "backward/grad from an output that does not require grad",
    "input_not_requiring_grad": "grad with respect to an input that does not require grad",
    "unused_input": "grad with respect to an input the output does not depend on",
    "graph_freed": "a second backward through a graph whose saved tensors were freed",
    "modified_inplace": "a tensor saved for backward was modified in place",
    "leaf_inplace": "an in-place op on a leaf that requires grad, with grad mode on",
    "leaf_view_inplace": "an in-place op on a view of a leaf that requires grad",
    "nonfloat_requires_grad": "an integer or bool tensor asked to require grad",
    "nonleaf_requires_grad": "changing requires_grad of a non-leaf",
    "retain_grad_without_grad": "retain_grad on a tensor that does not require grad",
    "empty_inputs": "backward(inputs=[])",
    "invalid_argument": "an invalid combination of arguments (e.g. materialize_grads without allow_unused)",
    "grad_assign_mismatch": "assigning a .grad of the wrong shape, dtype or type",
    "device_mismatch": "tensors on different devices in one op",
    "detach_view": "detach_() on a view",
    "inference_tensor_saved": "an inference tensor saved for backward",
    "hook_without_grad": "a hook registered on a tensor that does not require grad",
    "hook_shape_mismatch": "a hook returned a gradient of another shape than the one it was given",
    "once_differentiable": "differentiating again through a backward marked once-differentiable",
    "nonfloat_differentiated": "vjp/jvp with respect to an integer or bool primal",
}
"""Every error meaning a rule may expect. An adapter maps each one its engine raises."""

OPS: dict[str, str] = {
    "add": "add(a, b)",
    "sub": "sub(a, b)",
    "mul": "mul(a, b)",
    "div": "div(a, b)",
    "neg": "neg(a)",
    "pow": "pow(a, b): b a tensor or a Python number",
    "exp": "exp(a)",
    "log": "log(a)",
    "sqrt": "sqrt(a)",
    "sin": "sin(a)",
    "cos": "cos(a)",
    "tanh": "tanh(a)",
    "sigmoid": "sigmoid(a)",
    "relu": "relu(a)",
    "abs": "abs(a)",
    "maximum": "maximum(a, b)",
    "minimum": "minimum(a, b)",
    "where": "where(cond, a, b): cond a bool tensor",
    "gt": "gt(a, b): a bool tensor, never requires grad",
    "clamp": "clamp(a, min=None, max=None)",
    "sum": "sum(a, dim=None, keepdim=False): dim an int or a tuple of ints",
    "mean": "mean(a, dim=None, keepdim=False)",
    "amax": "amax(a, dim=None, keepdim=False): ties share the gradient evenly",
    "reshape": "reshape(a, shape)",
    "permute": "permute(a, dims)",
    "transpose": "transpose(a, dim0, dim1)",
    "expand": "expand(a, shape): torch semantics (-1 keeps a size)",
    "broadcast_to": "broadcast_to(a, shape)",
    "sum_to_size": "sum_to_size(a, shape): the unbroadcast rule as an op",
    "squeeze": "squeeze(a, dim)",
    "unsqueeze": "unsqueeze(a, dim)",
    "matmul": "matmul(a, b): NumPy/torch matmul with broadcast batch dims",
    "index": "index(a, key): key built from slices, ints and integer arrays",
    "cat": "cat(tensors, dim=0)",
    "stack": "stack(tensors, dim=0)",
    "softmax": "softmax(a, dim)",
    "log_softmax": "log_softmax(a, dim)",
    "floor": "floor(a): differentiable, with a zero gradient everywhere",
    "argmax": "argmax(a): an integer index, never requires grad",
    "clone": "clone(a)",
    "to_dtype": "to_dtype(a, dtype): a differentiable cast",
    "stop_gradient": "stop_gradient(a): a's value, with a zero gradient at every order (torch's detach)",
    "add_": "add_(a, b): in place, returns a",
    "sub_": "sub_(a, b): in place, returns a",
    "mul_": "mul_(a, b): in place, returns a",
    "zero_": "zero_(a): in place, returns a",
    "copy_": "copy_(a, b): in place, returns a",
    "setitem_": "setitem_(a, key, value): a[key] = value, in place, returns a",
}
"""The op catalog: every op a program or scenario may call, with its signature."""


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
