"""The restricted Python that programs and scenario steps are written in.

Specs hold code as data: a program is one expression over the op catalog, a scenario is a few
statements over the runtime vocabulary. Both are checked here when specs load, so a typo is a
spec error that names the rule and field, not a failure of the engine under test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache, lru_cache
from types import CodeType

# fmt: off
_ALLOWED = (
    ast.Module, ast.Expression, ast.Expr, ast.Assign, ast.AugAssign, ast.Name, ast.Constant, ast.Call,
    ast.keyword, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Lambda, ast.arguments, ast.arg,
    ast.With, ast.withitem, ast.If, ast.For, ast.FunctionDef, ast.Return, ast.Yield, ast.Pass,
    ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Dict, ast.Load, ast.Store, ast.operator,
    ast.unaryop, ast.cmpop, ast.boolop, ast.IfExp, ast.Attribute,
)
# fmt: on


class LanguageError(ValueError):
    """A program or scenario that uses something outside the language."""


def _check(tree: ast.AST, known: Iterable[str]) -> None:
    defined = set(known)
    for node in ast.walk(tree):
        bound = None
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound = node.id
        elif isinstance(node, ast.arg):
            bound = node.arg
        elif isinstance(node, ast.FunctionDef):
            bound = node.name
        if bound is not None and bound in known:  # e.g. a def named backward would hide the engine's
            raise LanguageError(f"line {node.lineno}: {bound!r} is a name of the vocabulary; choose another")
        if bound is not None:
            defined.add(bound)
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise LanguageError(f"line {getattr(node, 'lineno', '?')}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name) and node.value.id == "np"):
            raise LanguageError(f"line {node.lineno}: attribute access is allowed on np only")
        if isinstance(node, ast.Name) and node.id not in defined:
            raise LanguageError(f"line {node.lineno}: unknown name {node.id!r}")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise LanguageError(f"line {node.lineno}: private name {node.id!r}")


BUILTINS = ("slice", "len", "list", "tuple", "range", "float", "int", "bool")
"""The Python builtins a program or scenario may call."""


@cache
def compile_expression(source: str, known: frozenset[str] | None = None) -> CodeType:
    """Parse and check one expression; ``known`` None means any name (checked elsewhere)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise LanguageError(f"syntax error: {exc.msg}") from exc
    if known is not None:
        _check(tree, known)
    return compile(tree, "<program>", "eval")


def check_script(source: str, known: Iterable[str]) -> None:
    """Raise ``LanguageError`` unless ``source`` is a valid scenario over ``known`` names."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise LanguageError(f"line {exc.lineno}: syntax error: {exc.msg}") from exc
    _check(tree, known)


@lru_cache(maxsize=4096)
def called_names(program: str) -> frozenset[str]:
    """The names a program calls: its ops (asked per case, so parsed once per program)."""
    tree = ast.parse(program.strip(), mode="eval")
    return frozenset(n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name))
