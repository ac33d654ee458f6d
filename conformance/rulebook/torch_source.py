"""A rule's example script, rewritten as plain PyTorch a learner can paste.

The script vocabulary is small and closed (``specs.VOCABULARY``), so the translation is a table
from each name to its torch spelling, applied to the script's syntax tree. A spelling is itself a
snippet: ``_0``, ``_1`` stand for the call's positional arguments, ``*_all`` for all its arguments
and ``*_rest`` for all but the first (keywords follow either). Only what a table cannot say is
code: leaves (``tensor``), indexing, the checks and ``raises``.

Literal arrays (the drawn inputs and the oracle's expectations) are folded into ``torch.tensor``
calls at translation time, so the snippet needs no NumPy.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conformance.vocabulary import ERROR_MEANINGS

EXPRESSIONS: dict[str, str] = {
    **{op: f"torch.{op}(*_all)" for op in (
        "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "maximum", "minimum",
        "where", "clamp", "sum", "mean", "amax", "transpose", "squeeze", "unsqueeze", "cat", "stack",
        "softmax", "log_softmax", "floor", "argmax", "clone", "broadcast_to",
        "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "inference_mode",
    )},
    **{name: f"_0.{name}(*_rest)" for name in (
        "reshape", "permute", "expand", "sum_to_size", "add_", "sub_", "mul_", "zero_", "copy_",
        "requires_grad_", "retain_grad", "detach", "detach_", "is_inference", "backward",
    )},
    **{name: f"_0.{name}" for name in ("is_leaf", "requires_grad", "retains_grad", "dtype", "shape")},
    "add": "_0 + _1", "sub": "_0 - _1", "mul": "_0 * _1", "div": "_0 / _1", "pow": "_0 ** _1",
    "matmul": "_0 @ _1", "gt": "_0 > _1", "neg": "-_0",
    "to_dtype": "_0.to(*_rest)",
    "stop_gradient": "_0.detach()",
    "grad_of": "_0.grad",
    "has_grad_fn": "_0.grad_fn is not None",
    "version": "_0._version",
    "device": "_0.device.type",
    "numpy": "_0.detach().numpy()",
    "shares_storage": "_0.untyped_storage().data_ptr() == _1.untyped_storage().data_ptr()",
    "grad": "torch.autograd.grad(*_all)",
    "backward_many": "torch.autograd.backward(*_all)",
    "register_hook": "_0.register_hook(*_rest)",
    "register_post_accumulate_grad_hook": "_0.register_post_accumulate_grad_hook(*_rest)",
    "remove_hook": "_0.remove()",
    "save_for_backward": "_0.save_for_backward(*_rest)",
    "saved_tensors": "_0.saved_tensors",
    "needs_input_grad": "_0.needs_input_grad",
    "mark_non_differentiable": "_0.mark_non_differentiable(*_rest)",
    "optimizer": "torch.optim.SGD(_0, lr=_1)",
    "zero_grad": "_0.zero_grad()",
    "step": "_0.step()",
}  # fmt: skip
"""Vocabulary name -> its torch spelling as an expression."""

STATEMENTS: dict[str, str] = {
    "set_grad": "_0.grad = _1",
    "setitem_": "_0[_1] = _2",
    "expect_no_grad": "assert _0.grad is None",
    "expect_none": "assert _0 is None",
    "expect_equal": "assert _0 == _1",
    "expect_shape": "assert tuple(_0.shape) == tuple(_1)",
}
"""Names whose torch spelling is a statement (the script calls them for their effect)."""

HELPERS: dict[str, str] = {
    "vjp": '''
def vjp(fn, primals, cotangent):
    """(fn(*primals), the vector-Jacobian product of cotangent): torch.func.vjp as one call."""
    out, pullback = torch.func.vjp(fn, *primals)
    return out, pullback(cotangent)
''',
    "jvp": '''
def jvp(fn, primals, tangents):
    """(fn(*primals), the Jacobian-vector product of tangents): torch.func.jvp with lists."""
    return torch.func.jvp(fn, tuple(primals), tuple(tangents))
''',
    "function": '''
def function(forward, backward, once_differentiable=False):
    """A custom op from forward(ctx, *inputs) and backward(ctx, grad): a torch.autograd.Function's apply."""
    if once_differentiable:
        backward = torch.autograd.function.once_differentiable(backward)
    body = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    return type("Custom", (torch.autograd.Function,), body).apply
''',
    "custom_vjp": '''
def custom_vjp(forward, vjp):
    """An op from forward(*inputs) and vjp(inputs, output, cotangent): a torch.autograd.Function with setup_context."""

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs, output)

    def backward(ctx, cotangent):
        *inputs, output = ctx.saved_tensors
        return tuple(vjp(tuple(inputs), output, cotangent))

    body = {"forward": staticmethod(forward), "setup_context": staticmethod(setup_context)}
    body["backward"] = staticmethod(backward)
    return type("CustomVJP", (torch.autograd.Function,), body).apply
''',
    "sgd_step": '''
def sgd_step(params, grads, lr):
    """One torch.optim.SGD step on copies of params whose .grad are grads: the new parameters."""
    leaves = [p.detach().clone().requires_grad_() for p in params]
    for leaf, g in zip(leaves, grads):
        leaf.grad = g
    torch.optim.SGD(leaves, lr=lr).step()
    return [leaf.detach() for leaf in leaves]
''',
    "in_thread": '''
def in_thread(fn):
    """fn() run in a new thread: grad mode is thread-local."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()
''',
}
"""Script functions with no one-call torch spelling: the snippet defines them first."""

IMPORTS = {"in_thread": "concurrent.futures"}
NUMPY_FACTORIES = {"ones": "torch.ones", "zeros": "torch.zeros"}
TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64", "int32", "int64", "bool")
SMALL = 24
"""Arrays with more elements are written as ``torch.linspace`` when they are one (filled inputs)."""
_COMMENT = "__comment__"
_SPECIAL = {"tensor", "index", "expect_close", "expect_grad", "raises"}
"""Names translated by code below, only where the script calls them."""


class Untranslatable(ValueError):
    """A script construct the table has no torch spelling for."""


def _expr(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


def _number(x: Any) -> str:
    """Ten significant digits: exact for the filled inputs' simple values, well inside any tolerance."""
    if isinstance(x, bool | np.bool_):
        return repr(bool(x))
    if isinstance(x, int | np.integer):
        return repr(int(x))
    x = float(x)
    return f"float({str(x)!r})" if not np.isfinite(x) else repr(float(f"{x:.10g}"))


def _nested(value: Any) -> str:
    return "[" + ", ".join(_nested(v) for v in value) + "]" if isinstance(value, list) else _number(value)


def array_source(arr: np.ndarray, dtype: str, requires_grad: str = "False") -> str:
    """``torch`` source that builds ``arr`` in ``dtype`` (source text), a leaf unless ``requires_grad``."""
    grad_kw = "" if requires_grad == "False" else f", requires_grad={requires_grad}"
    if arr.dtype == bool or dtype in ("torch.bool", "torch.int32", "torch.int64"):
        arr = arr.astype(bool if dtype == "torch.bool" or arr.dtype == bool else np.int64)
    if arr.size == 0:
        return f"torch.zeros({arr.shape}, dtype={dtype}{grad_kw})"
    flat = arr.ravel()
    if arr.size > SMALL and arr.dtype == np.float64 and np.array_equal(flat, np.linspace(flat[0], flat[-1], arr.size)):
        grad_call = "" if requires_grad == "False" else f".requires_grad_({requires_grad})"
        shape = ", ".join(map(str, arr.shape))
        span = f"{_number(flat[0])}, {_number(flat[-1])}, {arr.size}"
        return f"torch.linspace({span}, dtype={dtype}).reshape({shape}){grad_call}"
    return f"torch.tensor({_nested(arr.tolist())}, dtype={dtype}{grad_kw})"


def constant_source(value: Any) -> str:
    """A script constant (array, dict of arrays, shape, number) as torch source."""
    if isinstance(value, np.ndarray):
        return array_source(value, "torch.bool" if value.dtype == bool else "torch.float64")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {constant_source(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        items = [constant_source(v) for v in value]
        if isinstance(value, list):
            return f"[{', '.join(items)}]"
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    return _number(value)


def torch_errors(
    source: Path = Path(__file__).parent.parent / "backends" / "pytorch.py",
) -> dict[str, tuple[str, str | None]]:
    """Meaning -> (exception type(s), message pattern), read from the torch adapter's source.

    Read rather than imported, so that writing the rulebook does not need torch installed.
    """
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["errors"]:
            assert isinstance(node.value, ast.Dict)
            return {
                ast.literal_eval(k): (ast.unparse(v.elts[0]), ast.literal_eval(v.elts[1]))
                for k, v in zip(node.value.keys, node.value.values)
                if isinstance(k, ast.expr) and isinstance(v, ast.Tuple)
            }
    raise LookupError(f"no 'errors' table in {source}")


class _Fill(ast.NodeTransformer):
    """Substitutes a spelling's placeholders with a call's (translated) arguments."""

    def __init__(self, args: list[ast.expr], keywords: list[ast.keyword]) -> None:
        self.args, self.keywords = args, keywords

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if re.fullmatch(r"_\d", node.id):
            index = int(node.id[1:])
            if index >= len(self.args):
                raise Untranslatable(f"missing positional argument {index}")
            return self.args[index]
        return node

    def visit_Call(self, node: ast.Call) -> ast.Call:
        self.generic_visit(node)
        spliced: list[ast.expr] = []
        for arg in node.args:
            if isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name) and arg.value.id in ("_all", "_rest"):
                spliced += self.args if arg.value.id == "_all" else self.args[1:]
                node.keywords += self.keywords
            else:
                spliced.append(arg)
        node.args = spliced
        return node


def _spell(template: str, args: list[ast.expr], keywords: list[ast.keyword], mode: str = "eval") -> Any:
    tree = ast.parse(template, mode=mode)
    filled = _Fill(args, keywords).visit(tree)
    return filled.body if mode == "eval" else filled.body[0]


class Translator(ast.NodeTransformer):
    """One script's body into torch; records the constants, helpers and imports it then needs."""

    def __init__(self, constants: Mapping[str, Any], dtype: str, tolerance: tuple[float, float] | None) -> None:
        self.constants = constants
        self.dtype = dtype
        self.tolerance = tolerance
        self.used: set[str] = set()
        self.helpers: set[str] = set()
        self.imports: set[str] = set()
        self.errors = torch_errors()

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id == "DTYPE":
            return _expr(f"torch.{self.dtype}")
        if node.id == "DEVICE":
            return ast.Constant("cpu")
        if node.id == "np":
            raise Untranslatable("NumPy in the steps")
        if node.id in self.constants:
            self.used.add(node.id)
        if node.id in HELPERS:
            self.helpers.add(node.id)
            self.imports.update({IMPORTS[node.id]} if node.id in IMPORTS else set())
        spelling = EXPRESSIONS.get(node.id)
        if spelling is not None and isinstance(node.ctx, ast.Load):
            if not spelling.endswith("(*_all)"):
                raise Untranslatable(f"{node.id} used as a value")
            return _expr(spelling.removesuffix("(*_all)"))
        if node.id in STATEMENTS or node.id in _SPECIAL:
            raise Untranslatable(f"{node.id} used as a value")
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        return _expr(f"torch.{node.value}") if node.value in TORCH_DTYPES else node

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        """``DTYPE == "float64"`` is known when the example is written: fold it."""
        right = node.comparators[0]
        is_dtype = isinstance(node.left, ast.Name) and node.left.id == "DTYPE" and isinstance(right, ast.Constant)
        if is_dtype and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq | ast.NotEq):
            return ast.Constant((right.value == self.dtype) == isinstance(node.ops[0], ast.Eq))
        return self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.test, ast.Constant):
            return node.body if node.test.value else node.orelse
        return node

    def visit_Call(self, node: ast.Call) -> ast.expr:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name == "tensor":
            return self._tensor(node)
        if isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "np":
            return _expr(constant_source(self._fold(node)))
        node.args = [self.visit(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords]
        if name == "index":
            return ast.Subscript(node.args[0], self._key(node.args[1]), ast.Load())
        if name == "backward" and node.args[1:2] and ast.unparse(node.args[1]) == "None":
            del node.args[1]  # backward(out, None): the implicit gradient
        if name in EXPRESSIONS:
            return _spell(EXPRESSIONS[name], node.args, node.keywords)
        node.func = self.visit(node.func)
        return node

    def _key(self, key: ast.expr) -> ast.expr:
        """``slice(0, 2)`` -> ``0:2``; a tuple key element-wise."""
        if isinstance(key, ast.Tuple):
            return ast.Tuple([self._key(k) for k in key.elts], ast.Load())
        if isinstance(key, ast.Call) and ast.unparse(key.func) == "slice" and not key.keywords:
            bounds = [None if ast.unparse(a) == "None" else a for a in key.args]
            return ast.Slice(*([None] if len(bounds) == 1 else []), *bounds)
        return key

    def _tensor(self, node: ast.Call) -> ast.expr:
        """A leaf: its values folded from the constants, or a torch factory for ``np.ones(...)``."""
        kwargs = {k.arg: self.visit(k.value) for k in node.keywords}
        dtype = kwargs.get("dtype")
        dtype_src = f"torch.{self.dtype}" if dtype is None else ast.unparse(dtype)
        grad_src = ast.unparse(kwargs["requires_grad"]) if "requires_grad" in kwargs else "False"
        arg = node.args[0]
        if {n.id for n in ast.walk(arg) if isinstance(n, ast.Name)} <= {*self.constants, "np"}:
            return _expr(array_source(np.asarray(self._fold(arg)), dtype_src, grad_src))
        if isinstance(arg, ast.Call) and ast.unparse(arg.func) in {f"np.{f}" for f in NUMPY_FACTORIES}:
            factory = NUMPY_FACTORIES[ast.unparse(arg.func).removeprefix("np.")]
            grad_kw = "" if grad_src == "False" else f", requires_grad={grad_src}"
            return _expr(f"{factory}({ast.unparse(self.visit(arg.args[0]))}, dtype={dtype_src}{grad_kw})")
        raise Untranslatable(f"tensor() of {ast.unparse(arg)}")

    def _fold(self, node: ast.expr) -> Any:
        """The value of an expression over the script's constants and NumPy, computed now."""
        try:
            return eval(compile(ast.Expression(node), "<constant>", "eval"), {"np": np, **self.constants})
        except NameError as exc:
            raise Untranslatable(f"NumPy on a tensor: {ast.unparse(node)}") from exc

    def visit_Expr(self, node: ast.Expr) -> Any:
        call = node.value
        name = call.func.id if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) else None
        if name in ("expect_close", "expect_grad"):
            return self._expect_close(call, name == "expect_grad")
        flag = call.args[1] if name == "expect_equal" else None
        if isinstance(flag, ast.Constant) and isinstance(flag.value, bool):
            actual = self.visit(call.args[0])
            return ast.Assert(actual if flag.value else ast.UnaryOp(ast.Not(), actual))
        if name in STATEMENTS:
            args = [self.visit(a) for a in call.args]
            if name == "setitem_":
                args[1] = self._key(args[1])
            return _spell(STATEMENTS[name], args, [], mode="exec")
        return self.generic_visit(node)

    def _expect_close(self, call: ast.Call, of_grad: bool) -> ast.stmt:
        """``torch.testing.assert_close``: dtype, shape, then values, as the suite's check."""
        raw = call.args[1]
        actual = self.visit(call.args[0])
        if isinstance(raw, ast.Call) and isinstance(raw.func, ast.Name) and raw.func.id == "numpy":  # engine vs engine
            expected = ast.Call(ast.Attribute(self.visit(raw.args[0]), "detach", ast.Load()), [], [])
        else:
            expected = self.visit(raw)
        if of_grad:
            actual = ast.Attribute(actual, "grad", ast.Load())
        keywords = []
        for kw in call.keywords:  # dtype=: the expectation is the oracle's float64, compared in that dtype
            expected = ast.Call(ast.Attribute(expected, "to", ast.Load()), [self.visit(kw.value)], [])
        if self.tolerance is not None and not call.keywords:
            keywords += [
                ast.keyword("rtol", ast.Constant(self.tolerance[0])),
                ast.keyword("atol", ast.Constant(self.tolerance[1])),
            ]
        if any(self._has_nan(n) for n in ast.walk(call.args[1])):
            keywords.append(ast.keyword("equal_nan", ast.Constant(True)))
        return ast.Expr(ast.Call(_expr("torch.testing.assert_close"), [actual, expected], keywords))

    def _has_nan(self, node: ast.AST) -> bool:
        value = self.constants.get(node.id) if isinstance(node, ast.Name) else None
        values = value.values() if isinstance(value, dict) else [value]
        return any(isinstance(v, np.ndarray) and bool(np.isnan(v).any()) for v in values)

    def visit_With(self, node: ast.With) -> Any:
        item = node.items[0].context_expr
        if not (isinstance(item, ast.Call) and isinstance(item.func, ast.Name) and item.func.id == "raises"):
            return self.generic_visit(node)
        meaning = ast.literal_eval(item.args[0])
        types, pattern = self.errors[meaning]
        self.imports.add("re")
        body = [self.visit(s) for s in node.body]
        check = [_expr(f"{_COMMENT}({f'expected: {ERROR_MEANINGS[meaning]} ({meaning})'!r})")]
        if pattern is not None:
            check.append(_expr(f"re.search({pattern!r}, str(error))"))
        handler_body: list[ast.stmt] = [ast.Expr(check[0])]
        handler_body.append(ast.Assert(check[1], ast.Name("error", ast.Load())) if pattern else ast.Pass())
        handler = ast.ExceptHandler(_expr(types), "error", handler_body)
        missing = ast.Raise(_expr(f"AssertionError({f'expected {types}: {ERROR_MEANINGS[meaning]}'!r})"))
        return ast.Try(body, [handler], [missing], [])


def translate(script: str, dtype: str = "float64", tolerance: tuple[float, float] | None = None) -> str:
    """``script`` (a rule's expanded example) as a standalone PyTorch program."""
    tree = ast.parse(script)
    constants: dict[str, Any] = {}
    while tree.body and isinstance(first := tree.body[0], ast.Assign) and len(first.targets) == 1:
        target = first.targets[0]
        if not (isinstance(target, ast.Name) and target.id.isupper()):
            break
        try:
            constants[target.id] = eval(compile(ast.Expression(first.value), "<constant>", "eval"), {"np": np})
        except NameError:
            break
        tree.body.pop(0)
    translator = Translator(constants, dtype, tolerance)
    body = [translator.visit(stmt) for stmt in tree.body]
    imports = [f"import {name}\n" for name in sorted(translator.imports)]
    sections = ["".join(imports), "import torch\n", *(HELPERS[name].lstrip() for name in sorted(translator.helpers))]
    code = "".join(f"{name} = {constant_source(v)}\n" for name, v in constants.items() if name in translator.used)
    for previous, stmt in zip([None, *body], body):
        if isinstance(stmt, ast.FunctionDef) or isinstance(previous, ast.FunctionDef):
            code += "\n"  # a blank line around each def, as a person would write it
        code += ast.unparse(stmt) + "\n"
    text = "\n".join(section for section in [*sections, code] if section)
    return re.sub(rf"^(\s*){_COMMENT}\((.*)\)$", lambda m: f"{m[1]}# {ast.literal_eval(m[2])}", text, flags=re.M)
