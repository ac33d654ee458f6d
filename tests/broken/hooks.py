"""Adapters that break the hook rules: replacement, order, removal, timing, checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from conformance.backends.pytorch import OPS, TorchAdapter, with_ops

Hook = Callable[[torch.Tensor], Any]


class HookResultIgnored(TorchAdapter):
    """Hooks run and see the gradient, but what they return is dropped."""

    breaks = (
        "hooks.leaf.sees-and-replaces",
        "hooks.leaf.before-accumulation",
        "hooks.non-leaf.replaces-upstream",
        "hooks.non-leaf.retained-grad-sees-replacement",
        "hooks.order.registration",
        "hooks.create-graph.differentiable",
    )

    def register_hook(self, t: torch.Tensor, fn: Hook) -> Any:
        def observe(g: torch.Tensor) -> None:
            fn(g)

        return t.register_hook(observe)


class _Handle:
    def __init__(self, hooks: list[Hook], fn: Hook) -> None:
        self.hooks, self.fn = hooks, fn
        hooks.append(fn)

    def remove(self) -> None:
        self.hooks.remove(self.fn)


class HooksSeeOriginalGradient(TorchAdapter):
    """Every hook of a tensor sees the original gradient; the last replacement wins (no chaining)."""

    breaks = ("hooks.order.registration",)

    def __init__(self) -> None:
        self.tables: dict[int, list[Hook]] = {}

    def register_hook(self, t: torch.Tensor, fn: Hook) -> Any:
        if id(t) not in self.tables:
            hooks: list[Hook] = []
            self.tables[id(t)] = hooks

            def run_all(g: torch.Tensor) -> torch.Tensor:
                result = g
                for hook in list(hooks):
                    new = hook(g)
                    result = new if new is not None else result
                return result

            t.register_hook(run_all)
        return _Handle(self.tables[id(t)], fn)


class HookRemoveIgnored(TorchAdapter):
    """remove() does nothing: a removed hook keeps running."""

    breaks = ("hooks.remove.stops",)

    def remove_hook(self, handle: Any) -> None:
        pass


class HookOnConstantAccepted(TorchAdapter):
    """Registering a hook on a tensor that does not require grad is silently accepted."""

    breaks = ("hooks.register.requires-grad",)

    def register_hook(self, t: torch.Tensor, fn: Hook) -> Any:
        if not t.requires_grad:
            return _Handle([], fn)
        return t.register_hook(fn)


class HookShapeUnchecked(TorchAdapter):
    """A replacement of the wrong shape is dropped instead of raising."""

    breaks = ("hooks.replace.wrong-shape-raises",)

    def register_hook(self, t: torch.Tensor, fn: Hook) -> Any:
        def checked(g: torch.Tensor) -> Any:
            new = fn(g)
            return new if new is None or new.shape == g.shape else g

        return t.register_hook(checked)


class LeafHookAfterAccumulation(TorchAdapter):
    """A leaf's hook runs after accumulation, on .grad (the sum so far), and only in backward()."""

    breaks = ("hooks.leaf.before-accumulation", "hooks.create-graph.differentiable")

    def register_hook(self, t: torch.Tensor, fn: Hook) -> Any:
        if not t.is_leaf:
            return t.register_hook(fn)

        def after(leaf: torch.Tensor) -> None:
            new = fn(leaf.grad)
            if new is not None:
                leaf.grad = new

        return t.register_post_accumulate_grad_hook(after)


class HookSummandsSeparately(TorchAdapter):
    """A leaf's hook runs on each contribution before they are summed (once per use of the leaf)."""

    breaks = ("hooks.leaf.once-on-summed-gradient",)

    def __init__(self) -> None:
        self.hooked: dict[int, Hook] = {}
        self.ops = _spying_ops(self)

    def register_hook(self, t: torch.Tensor, fn: Hook) -> Any:
        self.hooked[id(t)] = fn
        return _Handle([], fn)


def _spying_ops(adapter: HookSummandsSeparately) -> Any:
    """Ops whose tensor arguments pass through an identity that runs the hook of a hooked leaf per use."""

    def wrap(op: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            routed = []
            for a in args:
                fn = adapter.hooked.get(id(a)) if isinstance(a, torch.Tensor) else None
                if fn is not None and torch.is_grad_enabled():
                    a = a.view_as(a)
                    a.register_hook(fn)
                routed.append(a)
            return op(*routed, **kwargs)

        return run

    return with_ops(**{name: wrap(op) for name, op in vars(OPS).items()})


class PostHookBeforeAccumulation(TorchAdapter):
    """A post-accumulate hook runs when the gradient arrives, before .grad is updated."""

    breaks = ("hooks.post-accumulate.sees-updated-grad",)

    def register_post_accumulate_grad_hook(self, t: torch.Tensor, fn: Callable[[torch.Tensor], None]) -> Any:
        def early(g: torch.Tensor) -> None:
            if t.grad is None:
                t.grad = torch.zeros_like(t)  # what it sees: the value before this pass
            fn(t)

        return t.register_hook(early)


class HooksSkippedUnderCreateGraph(TorchAdapter):
    """Hooks do not run when the backward pass records a graph (create_graph)."""

    breaks = ("hooks.create-graph.differentiable",)

    def register_hook(self, t: torch.Tensor, fn: Hook) -> Any:
        def unless_recording(g: torch.Tensor) -> Any:
            return None if torch.is_grad_enabled() else fn(g)

        return t.register_hook(unless_recording)
