"""Deliberately broken adapters: each breaks specific rules, named in its ``breaks``.

One module per area. Each class subclasses a shipped adapter (usually ``TorchAdapter``) and
overrides as little as possible to break the rules it lists; ``tests/test_rules_can_fail.py``
proves that each listed rule fails under it and that every rule is listed somewhere. Modules
here import only the engine, NumPy and ``conformance.backends``, so repro scripts can inline them.
"""

from __future__ import annotations

import importlib
import pkgutil


def all_broken() -> list[type]:
    """Every broken adapter class in this package (classes with a ``breaks`` attribute)."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [
            obj for obj in vars(module).values()
            if isinstance(obj, type) and obj.__module__ == module.__name__ and getattr(obj, "breaks", None)
        ]  # fmt: skip
    return sorted(found, key=lambda c: c.__qualname__)
