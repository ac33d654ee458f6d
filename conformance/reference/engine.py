"""The reference autograd engine: tensors over NumPy arrays, with PyTorch's stateful rules.

Reading order:

* grad modes (``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``): a thread-local
  flag consulted when an op runs, never during the backward pass itself;
* ``Tensor``: a NumPy array plus leaf state (``requires_grad``, ``.grad``, ``grad_fn``), a version
  counter shared with its views and ``detach()`` aliases, and a device label;
* ``Op`` and ``apply``: run an op forward on arrays and, when grad mode is on and an input requires
  grad, record a ``Node`` that knows where its inputs' gradients go and what its VJPs read;
* ``inplace``: an in-place op is the out-of-place op whose result is written back, after which the
  tensor adopts the result's history (and a view's base adopts a "copy slices" history);
* ``backprop``: the graph walk, consumers before producers, summing contributions;
* ``backward`` / ``grad``: PyTorch's argument rules around the walk, and gradient accumulation;
* hooks: a tensor's hooks run on the gradient reaching it during the walk (a leaf's before it
  accumulates, a non-leaf's kept on its ``grad_fn``); post-accumulate hooks after ``.grad`` is updated;
* ``Function``: a custom op from a user's forward and backward, recorded as a ``FunctionNode``.

The op table itself is in ``ops``; this module looks it up lazily (``ops`` imports this one).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.reference.errors import (
    DetachViewError,
    DeviceMismatchError,
    EmptyInputsError,
    GradAssignError,
    GradAssignTypeError,
    GradCountError,
    GradShapeError,
    GraphFreedError,
    HookShapeError,
    HookWithoutGradError,
    ImplicitGradError,
    InferenceTensorError,
    InferenceTensorSavedError,
    InplaceBroadcastError,
    InputNotRequiringGradError,
    InvalidArgumentError,
    LeafInplaceError,
    LeafViewInplaceError,
    ModifiedInplaceError,
    NoGradFnError,
    NoGradViewError,
    NonFloatRequiresGradError,
    NonLeafHookError,
    NonLeafRequiresGradError,
    OnceDifferentiableError,
    RetainGradError,
    UnusedInputError,
)

DEVICES = ("cpu", "sim")
"""Device labels. "sim" is a simulated second device: same arrays, but ops refuse to mix devices."""


def _ops() -> Any:
    """The op table (``ops`` imports this module, so it is looked up when first needed)."""
    from conformance.reference import ops

    return ops


# -- grad modes ---------------------------------------------------------------------------------


class _ModeState(threading.local):
    """Per thread: a new thread starts with grad mode on, whatever its parent was doing."""

    grad_enabled = True
    inference = False


_MODE = _ModeState()


def is_grad_enabled() -> bool:
    return _MODE.grad_enabled


def is_inference_mode_enabled() -> bool:
    return _MODE.inference


class _GradMode:
    """Sets grad mode (and optionally inference mode) for a block; also a decorator."""

    def __init__(self, grad_enabled: bool, inference: bool | None = None) -> None:
        self.grad_enabled = grad_enabled
        self.inference = inference  # None: leave inference mode as it is
        self._outer: list[tuple[bool, bool]] = []

    def __enter__(self) -> None:
        self._outer.append((_MODE.grad_enabled, _MODE.inference))
        _MODE.grad_enabled = self.grad_enabled
        if self.inference is not None:
            _MODE.inference = self.inference

    def __exit__(self, *exc: object) -> None:
        _MODE.grad_enabled, _MODE.inference = self._outer.pop()

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``fn`` under this mode; a generator function gets it inside each resumption only."""
        mode = _GradMode(self.grad_enabled, self.inference)
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                gen = fn(*args, **kwargs)
                sent = None
                while True:
                    with mode:
                        try:
                            value = gen.send(sent)
                        except StopIteration as stop:
                            return stop.value
                    sent = yield value

            return generator

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with mode:
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Ops record nothing inside. ``@no_grad`` and ``@no_grad()`` both decorate."""

    def __new__(cls, fn: Callable[..., Any] | None = None) -> Any:
        return super().__new__(cls) if fn is None else cls()(fn)

    def __init__(self, fn: Callable[..., Any] | None = None) -> None:
        super().__init__(False)


class enable_grad(_GradMode):
    """Ops record again inside, e.g. within a ``no_grad`` block."""

    def __new__(cls, fn: Callable[..., Any] | None = None) -> Any:
        return super().__new__(cls) if fn is None else cls()(fn)

    def __init__(self, fn: Callable[..., Any] | None = None) -> None:
        super().__init__(True)


class set_grad_enabled(_GradMode):
    """Switches at construction, so it works as a plain call; exiting the block switches back."""

    def __init__(self, mode: bool) -> None:
        super().__init__(mode)
        super().__enter__()

    def __enter__(self) -> None:
        pass  # already switched by the constructor

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.__exit__()  # as a decorator it applies per call, not from its construction on
        return super().__call__(fn)


class inference_mode(_GradMode):
    """Grad mode off, and tensors made inside are inference tensors (never saved for backward).

    ``inference_mode(False)`` inside switches both back (grad mode on), as in PyTorch.
    """

    def __new__(cls, mode: bool | Callable[..., Any] = True) -> Any:
        return cls()(mode) if callable(mode) else super().__new__(cls)

    def __init__(self, mode: bool = True) -> None:
        super().__init__(not mode, mode)


# -- tensors ------------------------------------------------------------------------------------


class _Version:
    """The version counter: shared by a tensor, its views and its detach() aliases."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


@dataclass(frozen=True)
class Meta:
    """What a VJP may know of a tensor it did not save: shape, dtype, device (never values)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    device: str

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _is_float(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating)


class Tensor:
    """A NumPy array with autograd state.

    A leaf has ``grad_fn`` None; its ``requires_grad`` is a flag the user sets. A non-leaf has a
    ``grad_fn`` (the ``Node`` that made it) and always requires grad. ``.grad`` is filled by
    ``backward`` on leaves, and on non-leaves that asked with ``retain_grad()``.
    """

    __array_ufunc__ = None  # NumPy defers to our operators (np.float64(2) * t -> t.__rmul__)

    def __init__(self, array: Any, requires_grad: bool = False, device: str = "cpu") -> None:
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r}; known: {DEVICES}")
        self.array: np.ndarray = np.asarray(array)
        self.device = device
        self._grad_fn: Node | None = None
        self._requires_grad = False
        self._grad: Tensor | None = None
        self._retains_grad = False
        self._version_counter = _Version()
        self._inference = _MODE.inference
        # A view shares memory with its base; ``_view`` replays it from the base (see ``grad_fn``).
        self._base: Tensor | None = None
        self._view: tuple[ViewStep, ...] = ()
        self._view_version = 0
        self._view_grad_mode = True  # whether the view was made with grad mode on
        self._hooks: dict[int, Callable[[Tensor], Tensor | None]] = {}  # a leaf's (a non-leaf's are on grad_fn)
        self._post_hooks: dict[int, Callable[[Tensor], None]] = {}
        if requires_grad:
            self.requires_grad_()

    # metadata
    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def size(self) -> int:
        return self.array.size

    @property
    def _version(self) -> int:
        return self._version_counter.value

    def is_inference(self) -> bool:
        return self._inference

    def numpy(self) -> np.ndarray:
        return self.array.copy()

    def __repr__(self) -> str:
        extra = f", device={self.device!r}" if self.device != "cpu" else ""
        if self.grad_fn is not None:
            extra += f", grad_fn=<{self.grad_fn.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({np.array2string(self.array, precision=4)}, dtype={self.dtype}{extra})"

    # autograd state
    @property
    def grad_fn(self) -> Node | None:
        base = self._base
        if base is not None and self._view_version != self._version and base.requires_grad:
            # The base changed in place since this view's history was recorded: replay the view
            # from the base's current history (PyTorch regenerates a view's grad_fn the same way).
            if not self._view_grad_mode:
                raise NoGradViewError(
                    "A view was created in no_grad mode and its base or another view of its base has been "
                    "modified inplace with grad mode enabled."
                )
            with enable_grad():
                self._set_grad_fn(self._replay_view().grad_fn)
            self._view_version = self._version
        return self._grad_fn

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        if not self.is_leaf:
            return True
        base = self._base  # a view made in grad mode follows its base, as in PyTorch
        return self._requires_grad or (base is not None and self._view_grad_mode and base.requires_grad)

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if not self.is_leaf:
            if flag:
                return self  # a non-leaf already requires grad
            raise NonLeafRequiresGradError(
                "you can only change requires_grad flags of leaf variables. If you want to use a computed "
                "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach()."
            )
        if flag and not _is_float(self.dtype):
            raise NonFloatRequiresGradError("only Tensors of floating point dtype can require gradients")
        if flag and self._inference and not _MODE.inference:
            raise InferenceTensorError("Setting requires_grad=True on inference tensor outside InferenceMode")
        self._requires_grad = flag
        return self

    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise GradAssignTypeError(
                    f"assigned grad expected to be a Tensor or None but got grad of type {type(value).__name__}"
                )
            if value.shape != self.shape:
                raise GradAssignError(
                    f"attempting to assign a gradient of size '{list(value.shape)}' to a tensor of size "
                    f"'{list(self.shape)}'"
                )
            if value.dtype != self.dtype:
                raise GradAssignError(f"attempting to assign a gradient with dtype '{value.dtype}' to a {self.dtype}")
            if value.device != self.device:
                raise GradAssignError(f"attempting to assign a gradient on {value.device} to a tensor on {self.device}")
        self._grad = value

    def retain_grad(self) -> None:
        if not self.requires_grad:
            raise RetainGradError("can't retain_grad on Tensor that has requires_grad=False")
        if not self.is_leaf:
            self._retains_grad = True
            self.grad_fn.retained = self

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def detach(self) -> Tensor:
        """A leaf alias: same memory, same version counter, no history."""
        alias = Tensor(self.array, device=self.device)
        alias._version_counter = self._version_counter
        alias._inference = self._inference
        return alias

    def detach_(self) -> Tensor:
        if self._base is not None:
            raise DetachViewError("Can't detach views in-place. Use detach() instead.")
        self._set_grad_fn(None)
        self._requires_grad = False
        return self

    def backward(
        self,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[Tensor] | None = None,
    ) -> None:
        backward([self], [gradient], retain_graph, create_graph, inputs)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """``hook(grad)`` runs on the gradient reaching this tensor in the walk; a tensor it returns
        replaces it. A leaf keeps its hooks; a non-leaf's go on its ``grad_fn``, which receives its gradient."""
        if not self.requires_grad:
            raise HookWithoutGradError("cannot register a hook on a tensor that doesn't require gradient")
        return RemovableHandle(self._hooks if self.is_leaf else self.grad_fn.hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> RemovableHandle:
        """``hook(self)`` runs after ``backward`` has accumulated into this leaf's ``.grad``."""
        if not self.requires_grad:
            raise HookWithoutGradError("cannot register a hook on a tensor that doesn't require gradient")
        if not self.is_leaf:
            raise NonLeafHookError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        return RemovableHandle(self._post_hooks, hook)

    # internals
    def _edge(self) -> Node | Tensor:
        """Where a gradient for this tensor goes: its grad_fn, or the leaf itself (it accumulates)."""
        return self.grad_fn if self.grad_fn is not None else self

    def _set_grad_fn(self, node: Node | None) -> None:
        """Adopt a new history; a retain_grad() request moves along with it."""
        if self._grad_fn is not None and self._grad_fn.retained is self:
            self._grad_fn.retained = None
            if node is not None:
                node.retained = self
        self._grad_fn = node

    def _replay_view(self) -> Tensor:
        out = self._base
        for op, args, kwargs in self._view:
            out = op(out, *args, **kwargs)
        return out

    def _accumulate(self, g: Tensor, create_graph: bool) -> None:
        """AccumulateGrad: the first gradient is copied in; later ones are added to it in place,
        or out of place under create_graph, so that ``.grad`` keeps its own history."""
        if self._grad is None:
            self._grad = _ops().clone(g) if create_graph else Tensor(g.array.copy(), device=g.device)
        elif create_graph:
            self._grad = self._grad + g
        else:
            np.add(self._grad.array, g.array, out=self._grad.array, casting="unsafe")
            self._grad._version_counter.value += 1


ViewStep = tuple["Op", tuple[Any, ...], dict[str, Any]]
"""One view op and its non-tensor arguments: a view replays its steps from its base."""


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook out of its table (hooks run in key order)."""

    _next_key = 0

    def __init__(self, table: dict[int, Any], hook: Any) -> None:
        RemovableHandle._next_key += 1
        self.table, self.key = table, RemovableHandle._next_key
        table[self.key] = hook

    def remove(self) -> None:
        self.table.pop(self.key, None)


def _run_hooks(hooks: dict[int, Callable[[Tensor], Tensor | None]], g: Tensor) -> Tensor:
    """Each hook in registration order sees the previous one's result; None keeps the gradient."""
    for hook in list(hooks.values()):
        new = hook(g)
        if new is not None:
            if new.shape != g.shape:
                name = getattr(hook, "__name__", type(hook).__name__)
                raise HookShapeError(f"hook '{name}' has changed the size of value")
            g = new
    return g


# -- recording ops ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Op:
    """One entry of the op table (see ``ops``): a forward on arrays and one VJP per argument.

    ``vjps[i](g, ans, *args, **kwargs)`` is the gradient for positional argument ``i`` given the
    output's gradient ``g``; None where the argument never gets one. ``saves[i]`` names (by the
    VJP's own parameter names, ``ans`` for the output) what that VJP reads: a node saves only what
    the VJPs it will run read, and checks those against their version counters. An op with
    ``variadic`` takes any number of tensors and has one VJP, called with the argument index first.
    """

    name: str
    forward: Callable[..., Any]
    vjps: tuple[Callable[..., Any] | None, ...] = ()
    saves: tuple[str, ...] = ()
    view: bool = False
    variadic: bool = False
    reads: tuple[frozenset[int | str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        reads = []
        for vjp, names in zip(self.vjps, self.saves):
            if vjp is None:
                reads.append(frozenset())
                continue
            params = list(inspect.signature(vjp).parameters)[2:]  # after (g, ans) or (i, g, ...)
            reads.append(frozenset("out" if n == "ans" else params.index(n) for n in names.split()))
        object.__setattr__(self, "reads", tuple(reads))

    def vjp(self, i: int) -> Callable[..., Any] | None:
        if self.variadic:
            return functools.partial(self.vjps[0], i)
        return self.vjps[i] if i < len(self.vjps) else None

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        return apply(self, *args, **kwargs)


def _common_device(tensors: Sequence[Tensor]) -> str:
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise DeviceMismatchError(f"Expected all tensors to be on the same device, but found {sorted(devices)}")
    return devices.pop() if devices else "cpu"


def apply(op: Op, *args: Any, **kwargs: Any) -> Tensor:
    """Run ``op`` forward; record a Node when grad mode is on and a differentiable input requires grad."""
    args = tuple(a.item() if isinstance(a, np.generic) else a for a in args)  # NumPy scalars act as numbers
    tensors = [a for a in args if isinstance(a, Tensor)]
    device = _common_device(tensors)
    with np.errstate(all="ignore"):  # like PyTorch: inf and nan are values, not warnings
        array = np.asarray(op.forward(*(a.array if isinstance(a, Tensor) else a for a in args), **kwargs))
    out = Tensor(array, device=device)
    source = args[0] if args and isinstance(args[0], Tensor) else None
    if op.view and source is not None and np.may_share_memory(array, source.array):
        out._base = source._base or source
        out._view = (*source._view, (op, args[1:], kwargs))
        out._version_counter = source._version_counter
        out._view_version = out._version
        out._view_grad_mode = _MODE.grad_enabled
    elif any(np.may_share_memory(array, t.array) for t in tensors):
        out.array = array.copy()  # only view ops may alias their input
    edges = tuple(
        a._edge() if isinstance(a, Tensor) and a.requires_grad and op.vjp(i) is not None else None
        for i, a in enumerate(args)
    )
    if _MODE.grad_enabled and _is_float(array.dtype) and any(e is not None for e in edges):
        out._grad_fn = Node(op, args, kwargs, edges, out)
        out._view_version = out._version
    return out


def _check_saved(saved: Sequence[tuple[Tensor, int]], freed: bool, name: str) -> None:
    """Saved tensors may be used only while the graph holds them and only at the version they were saved at."""
    if freed:
        raise GraphFreedError(
            "Trying to backward through the graph a second time (or directly access saved tensors after "
            "they have already been freed). Specify retain_graph=True if you need to backward through "
            "the graph a second time."
        )
    for t, version in saved:
        if t._version != version:
            raise ModifiedInplaceError(
                f"one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [{t.dtype} {list(t.shape)}] is at version {t._version}; expected version "
                f"{version} instead (saved by {name})."
            )


class Node:
    """One recorded op: edges to where its inputs' gradients go, and what its VJPs need.

    Tensors the VJPs read are saved with their version; every other tensor argument is kept as a
    ``Meta``. Backward refuses to run once the saved tensors are freed or if one was modified.
    """

    def __init__(self, op: Op, args: tuple[Any, ...], kwargs: dict[str, Any], edges: tuple[Any, ...], out: Tensor):
        self.op, self.kwargs, self.edges = op, kwargs, edges
        self.name = "".join(part.capitalize() for part in op.name.split("_")) + "Backward"
        self.retained: Tensor | None = None  # the tensor whose retain_grad() this node serves
        self.hooks: dict[int, Callable[[Tensor], Tensor | None]] = {}  # its output tensor's hooks
        read: set[int | str] = set()
        for i, edge in enumerate(edges):
            if edge is not None and not op.variadic and i < len(op.reads):
                read |= op.reads[i]
        self.saved: list[tuple[Tensor, int]] = []
        kept = []
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                a = self._save(a) if i in read else Meta(a.shape, a.dtype, a.device)
            kept.append(a)
        self.args: tuple[Any, ...] | None = tuple(kept)
        self.ans: Any = self._save(out) if "out" in read else Meta(out.shape, out.dtype, out.device)
        self.frees = bool(read)  # a node that read nothing can run again after a pass (as in PyTorch)

    def _save(self, t: Tensor) -> Tensor:
        if t.is_inference():
            raise InferenceTensorSavedError("Inference tensors cannot be saved for backward.")
        self.saved.append((t, t._version))
        return t

    def backward(self, g: Tensor, needed: Sequence[bool]) -> list[Tensor | None]:
        """The gradient for each argument that has ``needed`` set, in the argument's dtype."""
        _check_saved(self.saved, self.args is None, self.name)
        grads: list[Tensor | None] = []
        for i, arg in enumerate(self.args):
            if not needed[i]:
                grads.append(None)
                continue
            gi = self.op.vjp(i)(g, self.ans, *self.args, **self.kwargs)
            if gi.shape != arg.shape:
                raise AssertionError(f"{self.name}: VJP {i} gave shape {gi.shape} for an input of shape {arg.shape}")
            grads.append(gi if gi.dtype == arg.dtype else _ops().to_dtype(gi, arg.dtype))
        return grads

    def free(self) -> None:
        if self.frees:
            self.args = self.ans = None
            self.saved = []


# -- in-place ops -------------------------------------------------------------------------------


def inplace(op: Op, self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """``self = op(self, *args)`` in place: write the result back, bump the version, adopt its history."""
    if self._inference and not _MODE.inference:
        raise InferenceTensorError("Inplace update to inference tensor outside InferenceMode is not allowed.")
    base = self._base
    records = _MODE.grad_enabled and any(isinstance(a, Tensor) and a.requires_grad for a in (self, *args))
    if records and base is not None:  # PyTorch's check_inplace, in its order
        if not self._view_grad_mode:
            raise NoGradViewError(
                "A view was created in no_grad mode and is being modified inplace with grad mode enabled."
            )
        if self.requires_grad and base.is_leaf:
            raise LeafViewInplaceError(
                "a view of a leaf Variable that requires grad is being used in an in-place operation."
            )
    if records and self.requires_grad and self.is_leaf:
        raise LeafInplaceError("a leaf Variable that requires grad is being used in an in-place operation.")
    # The op reads self's old value, which is about to be overwritten: give it a snapshot that
    # carries self's history instead (PyTorch clones "original self" the same way).
    old = self
    if records:
        old = Tensor(self.array.copy(), device=self.device)
        old._grad_fn = self.grad_fn
    new = op(old, *args, **kwargs)
    if new.shape != self.shape:
        raise InplaceBroadcastError(
            f"output with shape {list(self.shape)} doesn't match the broadcast shape {list(new.shape)}"
        )
    np.copyto(self.array, new.array, casting="unsafe")
    self._version_counter.value += 1
    if new.grad_fn is not None:
        if base is None:
            self._set_grad_fn(new.grad_fn)
        else:
            # The base's new value is its old value with this view's region replaced
            # (PyTorch's CopySlices); the view's history is then replayed from the base.
            base._set_grad_fn(_ops().view_put(base, new, self._view).grad_fn)
            self._set_grad_fn(self._replay_view().grad_fn)
        self._view_version = self._version
    return self


# -- the graph walk -----------------------------------------------------------------------------

Fn = Any
"""A walk position: a ``Node``, or a leaf ``Tensor`` that requires grad (its own accumulator)."""


def _topological_order(roots: Sequence[Fn]) -> list[Fn]:
    """Everything reachable from ``roots``, each position after every position that feeds it a gradient."""
    finished: list[Fn] = []
    seen: set[int] = set()
    stack = [(root, False) for root in roots]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            finished.append(fn)
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        stack.append((fn, True))
        if isinstance(fn, Node):
            stack.extend((e, False) for e in fn.edges if e is not None)
    return finished[::-1]


def backprop(
    roots: Sequence[Fn], seeds: Sequence[Tensor], wanted: Callable[[Fn], bool], keep_graph: bool
) -> dict[int, tuple[Fn, Tensor]]:
    """Propagate ``seeds`` from ``roots``; the total gradient reaching each wanted position.

    Only nodes with a wanted position behind them run. Each node runs once, after all its
    consumers, with the sum of what they sent it; a node serving a retain_grad() request also
    accumulates that sum into the tensor's ``.grad``.
    """
    order = _topological_order(roots)
    useful: set[int] = set()
    for fn in reversed(order):  # producers first
        if wanted(fn) or (isinstance(fn, Node) and any(id(e) in useful for e in fn.edges if e is not None)):
            useful.add(id(fn))
    pending: dict[int, Tensor] = {}

    def send(fn: Fn, g: Tensor) -> None:
        pending[id(fn)] = pending[id(fn)] + g if id(fn) in pending else g

    for root, seed in zip(roots, seeds):
        send(root, seed)
    found: dict[int, tuple[Fn, Tensor]] = {}
    for fn in order:
        g = pending.pop(id(fn), None)
        if g is None or id(fn) not in useful:
            continue
        g = _run_hooks(fn._hooks if isinstance(fn, Tensor) else fn.hooks, g)
        if wanted(fn):
            found[id(fn)] = (fn, g)
        if isinstance(fn, Node):
            if fn.retained is not None:
                fn.retained._accumulate(g, create_graph=_MODE.grad_enabled)
            needed = [e is not None and id(e) in useful for e in fn.edges]
            if any(needed):
                for edge, gi in zip(fn.edges, fn.backward(g, needed)):
                    if gi is not None:
                        send(edge, gi)
            if not keep_graph:
                fn.free()
    return found


def _as_list(x: Any) -> list[Any]:
    return [x] if isinstance(x, Tensor) or x is None else list(x)


def _seeds(outputs: Sequence[Tensor], grads: Sequence[Tensor | None] | None) -> list[Tensor]:
    """The gradient each output starts with: ones for a one-element output, else the given one."""
    grads = [None] * len(outputs) if grads is None else list(grads)
    if len(grads) != len(outputs):
        raise GradCountError(f"got {len(outputs)} tensors and {len(grads)} gradients")
    seeds = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if g is None:
            if out.requires_grad and out.size != 1:
                raise ImplicitGradError("grad can be implicitly created only for scalar outputs")
            g = Tensor(np.ones(out.shape, out.dtype), device=out.device)
        elif g.shape != out.shape:
            raise GradShapeError(
                f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape} and output[{i}] has a shape of {out.shape}."
            )
        elif g.device != out.device:
            raise DeviceMismatchError(
                f"invalid gradient at index {i} - expected device {out.device} but got {g.device}"
            )
        elif g.dtype != out.dtype:
            g = _ops().to_dtype(g, out.dtype)
        seeds.append(g)
    for i, out in enumerate(outputs):
        if not out.requires_grad:
            raise NoGradFnError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    return seeds


def backward(
    tensors: Tensor | Sequence[Tensor],
    grad_tensors: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Tensor | Sequence[Tensor] | None = None,
) -> None:
    """Accumulate d(tensors)/d(leaf) into the ``.grad`` of every leaf (or of ``inputs`` only)."""
    outputs = _as_list(tensors)
    seeds = _seeds(outputs, None if grad_tensors is None else _as_list(grad_tensors))
    if inputs is None:
        sinks = None
    else:
        inputs = _as_list(inputs)
        if not inputs:
            raise EmptyInputsError("`inputs` argument to `backward()` cannot be empty.")
        if not all(t.requires_grad for t in inputs):
            raise InputNotRequiringGradError("One of the differentiated Tensors does not require grad")
        sinks = {id(t._edge()): t for t in inputs}

    def wanted(fn: Fn) -> bool:
        if sinks is not None:
            return id(fn) in sinks
        if isinstance(fn, Tensor):
            return fn.requires_grad  # a leaf may have opted out since the graph was recorded
        return fn.retained is not None

    keep = create_graph if retain_graph is None else retain_graph
    with _GradMode(create_graph):  # the backward pass records only when asked to
        found = backprop([t._edge() for t in outputs], seeds, wanted, keep)
        for key, (fn, g) in found.items():
            target = sinks[key] if sinks is not None else fn
            walked = isinstance(fn, Node) and fn.retained is target  # the walk accumulated it already
            if isinstance(target, Tensor) and not walked:
                target._accumulate(g, create_graph)
                for hook in list(target._post_hooks.values()):
                    hook(target)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs), returned; no ``.grad`` is touched."""
    if materialize_grads and allow_unused is False:
        raise InvalidArgumentError(
            "Expected allow_unused to be True or not passed when materialize_grads=True, but got: allow_unused=False."
        )
    allow_unused = materialize_grads if allow_unused is None else allow_unused
    outputs, inputs = _as_list(outputs), _as_list(inputs)
    seeds = _seeds(outputs, None if grad_outputs is None else _as_list(grad_outputs))
    if not all(t.requires_grad for t in inputs):
        raise InputNotRequiringGradError("One of the differentiated Tensors does not require grad")
    keys = {id(t._edge()) for t in inputs}
    keep = create_graph if retain_graph is None else retain_graph
    with _GradMode(create_graph):
        found = backprop([t._edge() for t in outputs], seeds, lambda fn: id(fn) in keys, keep)
    result: list[Tensor | None] = []
    for i, t in enumerate(inputs):
        g = found[id(t._edge())][1] if id(t._edge()) in found else None
        if g is None and not allow_unused:
            raise UnusedInputError(
                f"The differentiated Tensor at index {i} appears to not have been used in the graph. "
                "Set allow_unused=True if this is the desired behavior."
            )
        if g is None and materialize_grads:
            g = Tensor(np.zeros(t.shape, t.dtype), device=t.device)
        elif g is not None and not g.array.flags.writeable:  # e.g. a broadcast view: hand out own memory
            with _GradMode(create_graph):
                g = _ops().clone(g)
        result.append(g)
    return tuple(result)


def tensor(array: Any, dtype: Any = None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """A new leaf holding a copy of ``array``."""
    return Tensor(np.array(array, dtype=dtype), requires_grad=requires_grad, device=device)


# -- custom Functions ---------------------------------------------------------------------------


class FunctionCtx:
    """What a custom Function's forward and backward share: the tensors saved, which inputs need a
    gradient, and which outputs are not differentiable."""

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self.to_save: tuple[Tensor, ...] = ()
        self.non_differentiable: set[int] = set()
        self.node: FunctionNode | None = None

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.to_save = tensors

    def mark_non_differentiable(self, *outputs: Tensor) -> None:
        self.non_differentiable = {id(t) for t in outputs}

    @property
    def saved_tensors(self) -> tuple[Tensor, ...]:
        return self.node.unpack() if self.node is not None else self.to_save


class Function:
    """A custom op: ``forward(ctx, *args)`` runs with grad mode off and returns one tensor;
    ``backward(ctx, g)`` returns one gradient (or None) per argument. With ``once_differentiable`` the
    backward runs with grad mode off, and its results refuse a second differentiation."""

    def __init__(
        self,
        forward: Callable[..., Tensor],
        backward: Callable[..., Any],
        once_differentiable: bool = False,
        name: str = "Custom",
    ) -> None:
        self.forward, self.backward = forward, backward
        self.once_differentiable, self.name = once_differentiable, name

    def __call__(self, *args: Any) -> Tensor:
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        with no_grad():
            out = self.forward(ctx, *args)
        if any(out is a for a in args):
            out = out.detach()  # an input returned as is: the output is a new tensor on the same memory
        if _MODE.grad_enabled and any(needs) and id(out) not in ctx.non_differentiable:
            edges = tuple(a._edge() if need else None for a, need in zip(args, needs))
            out._set_grad_fn(FunctionNode(self, ctx, edges, args))
        return out


class FunctionNode(Node):
    """The node of a custom Function: its backward is the user's, its saved tensors what forward saved."""

    def __init__(self, function: Function, ctx: FunctionCtx, edges: tuple[Any, ...], args: tuple[Any, ...]):
        self.function, self.ctx, self.edges = function, ctx, edges
        self.name = function.name + "Backward"
        self.retained = None
        self.hooks = {}
        self.shapes = [a.shape if isinstance(a, Tensor) else None for a in args]
        self.saved = []
        for t in ctx.to_save:
            self._save(t)
        self.freed = False
        ctx.node = self

    def unpack(self) -> tuple[Tensor, ...]:
        """The saved tensors, refused once freed or after an in-place write to one of them."""
        _check_saved(self.saved, self.freed, self.name)
        return tuple(t for t, _ in self.saved)

    def backward(self, g: Tensor, needed: Sequence[bool]) -> list[Tensor | None]:
        if self.freed:
            self.unpack()  # raises
        once = self.function.once_differentiable
        recording = _MODE.grad_enabled
        with _GradMode(recording and not once):
            grads = self.function.backward(self.ctx, g)
        grads = (grads,) if grads is None or isinstance(grads, Tensor) else tuple(grads)
        if len(grads) != len(self.edges):
            raise GradCountError(
                f"function {self.name} returned an incorrect number of gradients "
                f"(expected {len(self.edges)}, got {len(grads)})"
            )
        result: list[Tensor | None] = []
        for i, (gi, need, shape) in enumerate(zip(grads, needed, self.shapes)):
            if not need or gi is None:
                result.append(None)
                continue
            if gi.shape != shape:
                raise GradShapeError(
                    f"Function {self.name} returned an invalid gradient at index {i} - got {list(gi.shape)} "
                    f"but expected shape {list(shape)}"
                )
            if once and recording and g.requires_grad:
                gi = Tensor(gi.array, device=gi.device)
                gi._grad_fn = DelayedErrorNode((g._edge(),))
            result.append(gi)
        return result

    def free(self) -> None:
        self.freed = True
        self.saved = []


class DelayedErrorNode(Node):
    """The history of a once-differentiable backward's result: differentiating through it raises."""

    def __init__(self, edges: tuple[Any, ...]) -> None:
        self.edges, self.name = edges, "Error"
        self.retained = None
        self.hooks = {}
        self.saved = []

    def backward(self, g: Tensor, needed: Sequence[bool]) -> list[Tensor | None]:
        raise OnceDifferentiableError(
            "trying to differentiate twice a function that was marked with @once_differentiable"
        )

    def free(self) -> None:
        pass
