"""Finding an adapter by the name given to ``--backend``.

A name is one of: a built-in (``torch``, ``numpy``), an entry point in the group
``autograd_conformance.backends`` (how an engine's own package registers its adapter), or
``package.module:Class``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

BUILTIN = {
    "torch": "conformance.backends.pytorch:TorchAdapter",
    "numpy": "conformance.backends.reference:ReferenceAdapter",
    "jax": "conformance.backends.jax_adapter:JaxAdapter",
    "mygrad": "conformance.backends.mygrad_adapter:MygradAdapter",
    "autograd": "conformance.backends.autograd_adapter:AutogradAdapter",
    "torch-func": "conformance.backends.torch_func_adapter:TorchFuncAdapter",
    "paddle": "conformance.backends.paddle_adapter:PaddleAdapter",
    "tensorflow": "conformance.backends.tensorflow_adapter:TensorflowAdapter",
    "mlx": "conformance.backends.mlx_adapter:MlxAdapter",
    "tinygrad": "conformance.backends.tinygrad_adapter:TinygradAdapter",
}
GROUP = "autograd_conformance.backends"


class UnknownBackend(LookupError):
    """A ``--backend`` value that names nothing loadable; the message lists what is known."""


def available() -> dict[str, str]:
    """Every backend name known without importing it: built-ins, then entry points."""
    names = dict(BUILTIN)
    names.update({ep.name: ep.value for ep in entry_points(group=GROUP)})
    return names


def _load(target: str, name: str) -> type:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownBackend(f"backend {name!r} could not be imported ({exc}); is its engine installed?") from exc
    except Exception as exc:  # the module itself fails at import
        raise UnknownBackend(f"backend {name!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise UnknownBackend(f"backend {name!r}: module {module_name!r} has no {attr!r}") from exc


def resolve(name: str) -> Any:
    """An adapter instance for ``name``: loaded, checked to be a class, and instantiated."""
    known = available()
    if name in known:
        cls = _load(known[name], name)
    elif ":" in name:
        cls = _load(name, name)
    else:
        listed = ", ".join(sorted(known))
        raise UnknownBackend(f"unknown backend {name!r}; available: {listed}, or package.module:Class")
    if not isinstance(cls, type):
        raise UnknownBackend(f"backend {name!r} names a {type(cls).__name__}, not an adapter class")
    try:
        return cls()
    except Exception as exc:  # the adapter's own __init__ failed: the engine is missing or misconfigured
        raise UnknownBackend(f"backend {name!r}: {cls.__qualname__}() raised {type(exc).__name__}: {exc}") from exc
