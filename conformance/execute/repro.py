"""Standalone reproduction scripts: the engine alone, no import of this suite.

The script inlines ``runtime.py`` and the source of every module that defines the adapter's
class or one of its bases, then runs the rule's very script on the shrunk case.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, NamedTuple

from conformance.execute import runtime
from conformance.execute.failures import CheckFailure
from conformance.spec.specs import Rule

_IMPORT = re.compile(r"^(?:from ([\w.]+) import .*|import ([\w.]+).*)$")


def _inline(module: Any, inlined: set[str]) -> str:
    """``module``'s source without imports of modules already inlined above it."""
    kept = []
    for line in inspect.getsource(module).splitlines():
        match = _IMPORT.match(line)
        if match and (match.group(1) or match.group(2)) in inlined | {"__future__"}:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def adapter_source(adapter: Any) -> str:
    """Source of the modules behind the adapter's class and its bases, bases first.

    Imports between them are dropped; other imports (the engine, NumPy) stay.
    """
    modules = []
    for cls in reversed(type(adapter).__mro__):
        module = inspect.getmodule(cls)
        if cls is object or module is None or module.__name__ in ("builtins", "typing"):
            continue
        if module not in modules:
            modules.append(module)
    inlined = {runtime.__name__}
    text = ""
    for m in modules:
        inlined.add(m.__name__)
        text += f"# ---- inlined from {m.__name__} ----\n{_inline(m, inlined)}\n"
    return text


class Repro(NamedTuple):
    """A reproduction script in three parts; its text is their concatenation."""

    head: str
    """The docstring: rule, statement, case, failure, how to run it."""
    library: str
    """The inlined runtime and adapter source: the same for every repro of one engine."""
    script: str
    """The engine set up, then the check's script on the shrunk case."""

    @property
    def text(self) -> str:
        return self.head + self.library + self.script


def library(adapter: Any) -> str:
    """The part of a repro shared by every failure of one engine."""
    return f"# ---- inlined from {runtime.__name__} ----\n{_inline(runtime, set())}\n" + adapter_source(adapter)


def parts(adapter: Any, rule: Rule, failure: CheckFailure, device: str, replay: str) -> Repro:
    head = (
        f'"""Reproduces a failure of rule {rule.id} on backend {adapter.name} ({adapter.engine_version()}).\n\n'
        f"Statement: {rule.statement}\n"
        f"Case: {failure.case!r}\n"
        f"Failure: [{failure.kind}] {failure.detail}\n"
        f"Failing line: {failure.line}\n\n"
        f"Run it with `python THIS_FILE`: it needs NumPy and the engine, not the suite.\n"
        f"Replay in the suite: {replay}\n"
        '"""\n\nfrom __future__ import annotations\n\n'
    )
    setup = (
        f"globals().update(bind({type(adapter).__name__}(), {failure.dtype!r}, {device!r}, {failure.tolerances!r}))\n"
    )
    script = (
        "# ---- the check's script, on the shrunk case ----\n"
        + setup
        + failure.script
        + 'print("no failure: the rule held on this case")\n'
    )
    return Repro(head, library(adapter), script)


def write(
    directory: Path, adapter: Any, rule: Rule, failure: CheckFailure, device: str, replay: str
) -> tuple[Path, Repro]:
    """Write the repro of ``failure`` under ``directory``, one folder per engine; its path and its parts."""
    directory = directory / adapter.name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{rule.id}-{failure.dtype}.py"
    repro = parts(adapter, rule, failure, device, replay)
    path.write_text(repro.text, encoding="utf-8")
    return path, repro
