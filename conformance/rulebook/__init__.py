"""The rulebook: every rule in ``specs/``, one page per area, each with its example as plain PyTorch.

Written for learners. The pages are generated from the specs (``python -m conformance rules``), so
they never drift from what the suite checks; ``tests/test_rulebook.py`` runs every PyTorch example,
so they never teach code that does not work.
"""

from __future__ import annotations

import dataclasses
import html
import re
import textwrap
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import Phase, find, settings
from hypothesis.errors import NoSuchExample

from conformance import templates
from conformance.draw.strategies import Case, example_case
from conformance.rulebook.torch_source import Untranslatable, translate
from conformance.spec.specs import LEVELS, Rule
from conformance.templates import TEMPLATES, Template

FORMATS = ("text", "markdown", "html")
REGENERATE = "python -m conformance rules --format markdown -o docs/rules"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One rule as the rulebook shows it: its example's script and PyTorch code, or why there is none."""

    rule: Rule
    dtype: str
    script: str | None = None
    code: str | None = None
    problem: str | None = None
    drawn: bool = False
    """No explicit example: the script is of the simplest case the rule's own strategy draws."""


def example_dtype(rule: Rule) -> str:
    return "float64" if "float64" in rule.dtypes else rule.dtypes[0]


def _simplest(rule: Rule, dtype: str) -> Any:
    """The simplest case the rule's strategy draws (deterministic), preferring arrays of two or more
    elements (or 0-d): the smallest shapes that still show what the rule is about."""
    strategy = TEMPLATES[rule.template].strategy(rule, [dtype])
    config = settings(database=None, derandomize=True, max_examples=500, phases=[Phase.generate, Phase.shrink])
    with warnings.catch_warnings():  # the oracle sees the empty arrays the search tries on the way
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return find(strategy, lambda c: all(a.ndim == 0 or a.size >= 2 for a in _arrays(c)), settings=config)
        except NoSuchExample:
            return find(strategy, lambda _: True, settings=config)


def _arrays(case: Any) -> list[np.ndarray]:
    return list(case.arrays.values() if isinstance(case, Case) else case.program.arrays.values())


def example_script(rule: Rule, dtype: str) -> str:
    """The script of the rule's first explicit example; without one, of the simplest case it draws
    (for a template of drawn inputs, with the shapes drawn and the values filled as an example's)."""
    template = TEMPLATES[rule.template]
    if rule.examples:
        case = example_case(rule.given, rule.examples[0], dtype)
    else:
        case = _simplest(rule, dtype)
        if isinstance(template, Template):
            shapes = {name: array.shape for name, array in case.arrays.items()}
            case = example_case(rule.given, {"shapes": shapes, "result": case.result}, dtype)
    return template.script(rule, template.example(rule, case)).text()


def entry(rule: Rule) -> Entry:
    """The rule's entry; a rule whose example cannot be built or translated says why instead."""
    dtype = example_dtype(rule)
    drawn = not rule.examples
    if not hasattr(TEMPLATES[rule.template], "script"):
        problem = f"its template, `{rule.template}`, writes no script: it checks drawn sequences of steps"
        return Entry(rule, dtype, problem=problem, drawn=drawn)
    try:
        script = example_script(rule, dtype)
    except Exception as exc:  # a rule in the book must not take the book down; its own test reports it
        return Entry(rule, dtype, problem=f"its example could not be built: {type(exc).__name__}: {exc}", drawn=drawn)
    try:
        code = translate(script, dtype, rule.tolerances.get(dtype))
    except Untranslatable as exc:
        return Entry(rule, dtype, script, problem=f"its script has no PyTorch spelling here: {exc}", drawn=drawn)
    return Entry(rule, dtype, script, code, drawn=drawn)


def by_area(rules: Iterable[Rule]) -> dict[str, list[Entry]]:
    """Entries grouped by area, areas and rules in id order."""
    areas: dict[str, list[Entry]] = {}
    for rule in sorted(rules, key=lambda r: r.id):
        areas.setdefault(rule.area, []).append(entry(rule))
    return dict(sorted(areas.items()))


def locate(rule: Rule) -> tuple[Path, int | None]:
    """The rule's spec file and the line of its ``id = "..."`` (None for a rule generated from a table)."""
    path = Path(rule.path)
    pattern = re.compile(rf"""^\s*id\s*=\s*["']{re.escape(rule.id)}["']""")
    lines = path.read_text(encoding="utf-8").splitlines()
    return path, next((i for i, line in enumerate(lines, 1) if pattern.match(line)), None)


def title(area: str) -> str:
    return area.replace("_", " ").capitalize()


def intro(entries: list[Entry]) -> str:
    """The comment that opens the area's spec file: the authors' own summary of the area."""
    lines = []
    for line in Path(entries[0].rule.path).read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            break
        lines += [line.lstrip("#").strip()] if line.startswith("#") else []
    return " ".join(line for line in lines if line)


def counts(entries: list[Entry]) -> str:
    levels = [sum(e.rule.level == level for e in entries) for level in LEVELS]
    return f"{len(entries)} rule{'s' * (len(entries) != 1)}: " + ", ".join(
        f"{n} {level}" for n, level in zip(levels, LEVELS) if n
    )


def _note(e: Entry) -> str:
    """What the reader should know about how the example was made, if anything."""
    notes = ["no explicit example: this is the simplest case the rule draws"] if e.drawn else []
    notes += [f"in {e.dtype}"] if e.dtype != "float64" else []
    notes += [f"no PyTorch example: {e.problem}"] if e.problem else []
    return "; ".join(notes)


def text(areas: dict[str, list[Entry]]) -> str:
    out = []
    for area, entries in areas.items():
        out.append(f"== {title(area)} ({counts(entries)}) ==\n")
        for e in entries:
            out.append(f"{e.rule.id}  [{e.rule.level}]")
            out.append(textwrap.fill(e.rule.statement, 100, initial_indent="  ", subsequent_indent="  "))
            if e.rule.references:
                out.append("  references: " + ", ".join(e.rule.references))
            if _note(e):
                out.append(f"  ({_note(e)})")
            out.append(textwrap.indent(e.code or "", "    ") + "\n")
    return "\n".join(out)


def _reference_md(ref: str) -> str:
    return f"[{ref.split('://', 1)[1]}]({ref})" if "://" in ref else f"`{ref}`"


def markdown(areas: dict[str, list[Entry]]) -> dict[str, str]:
    """``index.md`` and one ``AREA.md`` per area."""
    pages = {}
    index = [
        "# The rules of autograd\n",
        f"Generated from [`specs/`](../../specs/) by `{REGENERATE}`: do not edit by hand.\n",
        "Every rule has an id, a level (`required` is the core every engine must have; `recommended` and"
        " `extension` are what PyTorch does where behaviour is implementation-defined), one sentence, its"
        " catalog references, and an example written as plain PyTorch you can paste into Python: the rule's"
        " first explicit example (or, where it has none, the simplest case it draws), in float64. The"
        " expected values in it come from the suite's float64 NumPy oracle, not from PyTorch, and"
        " `tests/test_rulebook.py` runs every example. `python -m conformance show RULE_ID` prints a"
        " rule's spec file and line, its template, its needs and its script.\n",
        "| area | rules |\n|---|---|",
    ]
    index += [f"| [{title(a)}]({a}.md) | {counts(es)} |" for a, es in areas.items()]
    for area, entries in areas.items():
        index.append(f"\n## [{title(area)}]({area}.md)\n")
        index += [f"- [`{e.rule.id}`]({area}.md#{e.rule.id}) ({e.rule.level}): {e.rule.statement}" for e in entries]
        files = sorted({Path(e.rule.path).name for e in entries})
        page = [
            f"# {title(area)}\n",
            f"[All areas](index.md) · {counts(entries)} · from "
            + ", ".join(f"[`specs/{f}`](../../specs/{f})" for f in files)
            + "\n",
        ]
        page += [f"{intro(entries)}\n"] if intro(entries) else []
        for e in entries:
            page.append(f'<a id="{e.rule.id}"></a>\n\n## `{e.rule.id}`\n')
            refs = ", ".join(_reference_md(r) for r in e.rule.references)
            page.append(f"**{e.rule.level}**" + (f" · references: {refs}" if refs else "") + "\n")
            page.append(f"{e.rule.statement}\n")
            page += [f"*{_note(e)}*\n"] if _note(e) else []
            page += [f"```python\n{e.code}```\n"] if e.code else []
            page.append(f"Check an engine against it: `pytest conformance --backend=torch -k {e.rule.id}`\n")
        pages[f"{area}.md"] = "\n".join(page)
    pages["index.md"] = "\n".join(index) + "\n"
    return pages


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem}}
pre{{background:#f4f4f4;padding:.75rem;overflow-x:auto}}code{{font-size:.9em}}.level{{font-weight:bold}}</style>
</head><body>
{body}
</body></html>
"""


def html_pages(areas: dict[str, list[Entry]]) -> dict[str, str]:
    """``index.html`` and one ``AREA.html`` per area: the markdown pages' content, as HTML."""
    esc = html.escape
    pages = {}
    index = ["<h1>The rules of autograd</h1><ul>"]
    for area, entries in areas.items():
        index.append(f'<li><a href="{area}.html">{esc(title(area))}</a>: {counts(entries)}</li>')
        body = [f'<p><a href="index.html">All areas</a></p><h1>{esc(title(area))}</h1><p>{esc(intro(entries))}</p>']
        for e in entries:
            refs = ", ".join(
                f'<a href="{esc(r)}">{esc(r)}</a>' if "://" in r else f"<code>{esc(r)}</code>"
                for r in e.rule.references
            )
            body.append(f'<h2 id="{esc(e.rule.id)}"><code>{esc(e.rule.id)}</code></h2>')
            body.append(f'<p><span class="level">{e.rule.level}</span>' + (f" · references: {refs}" if refs else ""))
            body.append(f"<p>{esc(e.rule.statement)}</p>")
            body += [f"<p><em>{esc(_note(e))}</em></p>"] if _note(e) else []
            body += [f"<pre><code>{esc(e.code)}</code></pre>"] if e.code else []
        pages[f"{area}.html"] = _HTML.format(title=esc(title(area)), body="\n".join(body))
    pages["index.html"] = _HTML.format(title="The rules of autograd", body="\n".join([*index, "</ul>"]))
    return pages


def write(areas: dict[str, list[Entry]], fmt: str, output: Path | None, index: bool = True) -> list[Path]:
    """Render ``areas`` in ``fmt``: text to ``output`` (a file) or stdout, pages into ``output`` (a folder)."""
    if fmt == "text":
        if output is None:
            print(text(areas), end="")
            return []
        output.write_text(text(areas), encoding="utf-8")
        return [output]
    pages = markdown(areas) if fmt == "markdown" else html_pages(areas)
    folder = output or Path("docs/rules" if fmt == "markdown" else "build/rules")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in pages.items():
        if index or not name.startswith("index."):
            (folder / name).write_text(content, encoding="utf-8")
            written.append(folder / name)
    return written


def show(rule: Rule) -> str:
    """What ``python -m conformance show`` prints: where the rule is, what it needs, what it runs."""
    path, line = locate(rule)
    try:
        where = path.relative_to(Path.cwd())
    except ValueError:
        where = path
    e = entry(rule)
    which = "the simplest case it draws" if e.drawn else "its first example"
    lines = [
        f"{rule.id} ({rule.level}{', a convention: gated with --gate-conventions' if rule.convention else ''}):"
        f" {rule.statement}",
        f"file:     {where}" + (f":{line}" if line else " (no id line: generated from a table)"),
        f"template: {rule.template}",
        f"needs:    {', '.join(templates.needs(rule)) or '(none)'}",
        f"script of {which}, in {e.dtype}:",
    ]
    lines.append(textwrap.indent(e.script, "    ") if e.script else f"    ({e.problem})")
    return "\n".join(lines).rstrip() + "\n"
