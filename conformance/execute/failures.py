"""Running a script against an engine and classifying how it failed: the one place that does it.

Rules, random programs and the stateful model all run scripts in the runtime vocabulary. Whatever
the engine does inside a script (a diverging check, any exception, even a ``KeyboardInterrupt``
or ``SystemExit`` it raises itself) fails that check with a kind, the failing line and the script;
only a real Ctrl-C (``interrupted()``) stops the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import traceback
from typing import Any

from conformance.execute.runtime import ConformanceFailure
from conformance.spec import language
from conformance.spec.literal import Script

_INTERRUPTED = False


def _on_sigint(signum: int, frame: Any) -> None:
    global _INTERRUPTED
    _INTERRUPTED = True
    raise KeyboardInterrupt


def watch_interrupts() -> None:
    """Tell a real Ctrl-C apart from an engine raising ``KeyboardInterrupt`` (main thread only)."""
    with contextlib.suppress(ValueError):  # not the main thread: a SIGINT then ends it as usual
        signal.signal(signal.SIGINT, _on_sigint)


def interrupted() -> bool:
    return _INTERRUPTED


@dataclasses.dataclass(eq=False)
class CheckFailure(AssertionError):
    """A check diverged on one case, or the engine raised where nothing was expected.

    Carries what a report and a repro need: the kind of divergence, the failing line, the script
    and the case it ran on (shrunk, when Hypothesis is done with it).
    """

    kind: str
    detail: str
    line: str
    script: str
    case: Any = None
    dtype: str = "float32"
    tolerances: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return f"[{self.kind}] {self.detail}\n  at: {self.line}"


def execute(
    script: Script | str,
    namespace: dict[str, Any],
    filename: str = "<script>",
    case: Any = None,
    dtype: str = "float32",
) -> None:
    """Run ``script`` in ``namespace``; raise ``CheckFailure`` if the engine breaks what it checks.

    A ``Script`` runs its body, compiled once per rule, with its constants bound; its literal text is
    rendered only for a failure. A plain string (a step of the stateful model) is compiled as it comes.
    """
    if isinstance(script, str):
        script = Script({}, script)
    code = script.code(filename)
    namespace.update(script.bindings())
    namespace.update(np=language.SAFE_NP, __builtins__=language.SAFE_BUILTINS)  # what the spec's checks allowed
    try:
        exec(code, namespace)
    except ConformanceFailure as exc:
        raise CheckFailure(
            exc.kind, exc.detail, _failing_line(script.body, filename), script.text(), case, dtype
        ) from exc
    except BaseException as exc:  # the engine misbehaved: this check fails, the run goes on
        if isinstance(exc, KeyboardInterrupt) and interrupted():
            raise
        detail = f"{type(exc).__name__}: {exc}"
        line = _failing_line(script.body, filename)
        raise CheckFailure("unexpected_error", detail, line, script.text(), case, dtype) from exc


def _failing_line(body: str, filename: str) -> str:
    """The body line the exception passed through last (checks are one line each)."""
    lines = body.splitlines()
    for frame in reversed(traceback.extract_tb(sys.exc_info()[2])):
        if frame.filename == filename and frame.lineno and frame.lineno <= len(lines):
            return lines[frame.lineno - 1].strip()
    return "?"
