"""Escape attempts from the spec language: each is refused when the spec loads, naming file, rule and field.

A spec file may come from someone else (``--specs``, a shared rule pack), and its repro scripts are run by
others, so nothing in it may reach Python's builtins, the file system or a process, nor allocate past
``language.MAX_ELEMENTS``. Each attempt below goes into a field that holds code (a scenario's steps, an oracle
expression, a program, ``given.kinks``, an op form's program) or a size (``given``, an example), and must be
refused by ``templates.load`` before any engine runs.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance import templates
from conformance.execute.failures import CheckFailure, execute
from conformance.spec import language, specs
from conformance.spec.literal import Script

SCENARIO = """
area = "demo"

[[rule]]
id = "demo.escape"
level = "required"
statement = "An attempt to leave the language."
template = "scenario"
given = {{ names = ["x"] {given} }}
oracle = {{ E = "{oracle}" }}
steps = '''
x = tensor(X, requires_grad=True)
{step}
'''
"""

STEPS = {
    "the issue's exec through np.__dict__": 'b = np.__dict__["__builtins__"]["exec"]("import os")',
    "a dunder attribute of a tensor": "c = x.__class__",
    "a dunder attribute of a constant": "c = (1).__class__.__subclasses__()",
    "a function's globals": "g = tensor.__globals__",
    "np's loader": "l = np.__loader__",
    "getattr": 'f = getattr(np, "load")',
    "vars": "v = vars(np)",
    "globals": "g = globals()",
    "__import__": 'o = __import__("os")',
    "eval": 'r = eval("1")',
    "exec": 'exec("y = 1")',
    "open": 'f = open("/etc/passwd")',
    "type": "t = type(x)",
    "breakpoint": "breakpoint()",
    "import": "import os",
    "from-import": "from os import system",
    "a format string's field": 'y = "{0.__class__}".format(x)',
    "an f-string": 'y = f"{x!r}"',
    "a str method": 'y = "a".join(["b"])',
    "a lambda's code": "c = (lambda: 0).__code__",
    "a generator's frame": "def gen():\n    yield 1\nf = gen().gi_frame",
    "a generator expression": "g = (v for v in [1])",
    "a list comprehension": "g = [v for v in [1]]",
    "a private name": "_hidden = 1",
    "a private function": "def _f():\n    return 1",
    "a private argument": "h = lambda _a: _a",
    "a private keyword": "y = tensor(X, _secret=1)",
    "double-star arguments": 'y = np.ones(3, **{"dtype": np.float64})',
    "star arguments": "y = np.ones(*[3])",
    "np.load": 'y = np.load("x.npy")',
    "np.save": 'np.save("x.npy", X)',
    "np.fromfile": 'y = np.fromfile("x.bin")',
    "np.memmap": 'y = np.memmap("x.bin")',
    "np.loadtxt": 'y = np.loadtxt("x.txt")',
    "np.savetxt": 'np.savetxt("x.txt", X)',
    "np.genfromtxt": 'y = np.genfromtxt("x.txt")',
    "np.lib's open_memmap": 'y = np.lib.format.open_memmap("x.npy")',
    "np.vectorize calling back": "y = np.vectorize(tensor)(X)",
    "np.frompyfunc": "y = np.frompyfunc(tensor, 1, 1)",
    "np.random": "np.random.seed(0)",
    "np.seterr": 'np.seterr(all="ignore")',
    "a try block": "try:\n    y = 1\nexcept Exception:\n    pass",
    "a class": "class C:\n    pass",
    "a while loop": "while True:\n    pass",
    "a walrus": "y = (z := 1)",
    "global": "def f():\n    global x\n    return 1",
    "del": "del x",
    "bytes": 'y = b"\\x00"',
    "a huge shape": "y = np.ones((100000, 100000))",
    "a huge power": "y = np.zeros(10 ** 10)",
    "a huge int from a float": "y = np.ones(int(1e12))",
    "a huge shift": "y = np.ones(1 << 40)",
    "a huge repeated list": "y = [0.0] * 10 ** 9",
    "a huge repeated shape": "y = np.ones((4,) * 64)",
    "a huge range": "for i in range(10 ** 10):\n    pass",
    "a huge tile": "y = np.tile(X, (1000, 1000))",
}


def write(tmp_path: Path, step: str = "y = x", oracle: str = "X", given: str = "") -> Path:
    path = tmp_path / "escape.toml"
    path.write_text(textwrap.dedent(SCENARIO).format(step=step, oracle=oracle, given=given))
    return path


def refused(path: Path, rule: str, field: str) -> str:
    with pytest.raises(specs.SpecError) as info:
        templates.load([path])
    error = info.value
    assert (error.path, error.rule, error.field) == (str(path), rule, field), str(error)
    assert str(path) in str(error) and repr(rule) in str(error) and repr(field) in str(error)
    return str(error)


def test_the_probe_itself_loads(tmp_path: Path) -> None:
    """Without an attempt the spec loads: each refusal below is about its attempt."""
    (rule,) = templates.load([write(tmp_path)])
    assert rule.id == "demo.escape"


@pytest.mark.parametrize("step", STEPS.values(), ids=STEPS.keys())
def test_an_escape_in_the_steps_is_refused(tmp_path: Path, step: str) -> None:
    refused(write(tmp_path, step=step), "demo.escape", "steps")


@pytest.mark.parametrize(
    "expression",
    [
        'np.__dict__[\\"load\\"]',
        'np.load(\\"x.npy\\")',
        "np.ones((100000, 100000))",
        "X.__class__",
        "(lambda: 0).__globals__",
        "fd_vjp.__globals__",
        "np.ones(int(1e12))",
        "vars(np)",
    ],
)
def test_an_escape_in_an_oracle_expression_is_refused(tmp_path: Path, expression: str) -> None:
    refused(write(tmp_path, oracle=expression), "demo.escape", "oracle.E")


@pytest.mark.parametrize(
    "kinks",
    ['np.__dict__[\\"load\\"]', 'np.load(\\"x.npy\\")', "X.__class__", "np.zeros(10 ** 10)", "np.random.rand()"],
)
def test_an_escape_in_kinks_is_refused(tmp_path: Path, kinks: str) -> None:
    refused(write(tmp_path, given=f', kinks = "{kinks}"'), "demo.escape", "given.kinks")


@pytest.mark.parametrize(
    ("given", "field"),
    [
        (", fixed = { x = [100000, 100000] }", "given.fixed.x"),
        (", fixed = { x = [-1] }", "given.fixed.x"),
        (', fixed = { x = "3" }', "given.fixed.x"),
        (", max_size = 1000000000", "given.max_size"),
        (", max_side = 100000", "given.max_side"),
        (", max_dims = 1000", "given.max_dims"),
    ],
)
def test_a_huge_shape_in_given_is_refused(tmp_path: Path, given: str, field: str) -> None:
    refused(write(tmp_path, given=given), "demo.escape", field)


@pytest.mark.parametrize(
    ("example", "field"),
    [
        ("{ shapes = { x = [100000, 100000] } }", "examples[0].shapes.x"),
        ("{ shapes = { x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] } }", "examples[0].shapes.x"),
        ("{ result = [65537] }", "examples[0].result"),
    ],
)
def test_a_huge_shape_in_an_example_is_refused(tmp_path: Path, example: str, field: str) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("steps = '''", f"examples = [{example}]\nsteps = '''"))
    refused(path, "demo.escape", field)


def test_huge_values_in_an_example_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path)
    values = "[" + ", ".join(["0.5"] * (language.MAX_ELEMENTS + 1)) + "]"
    path.write_text(
        path.read_text().replace("steps = '''", f"examples = [{{ values = {{ x = {values} }} }}]\nsteps = '''")
    )
    refused(path, "demo.escape", "examples[0].values.x")


@pytest.mark.parametrize(
    "program",
    ['np.__dict__[\\"load\\"]', "x.__class__", 'np.load(\\"x.npy\\")', "mul(x, np.ones((100000, 100000)))"],
)
def test_an_escape_in_a_program_is_refused(tmp_path: Path, program: str) -> None:
    path = tmp_path / "escape.toml"
    path.write_text(
        'area = "demo"\n[[rule]]\nid = "demo.program"\nlevel = "required"\nstatement = "s."\n'
        f'template = "forward"\nprogram = "{program}"\n'
    )
    refused(path, "demo.program", "program")


def test_an_escape_in_an_op_form_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ops.toml"
    path.write_text(
        'area = "ops"\n[[op]]\nname = "mul"\nlevel = "required"\nreferences = ["OP"]\n'
        'given = { names = ["a", "b"] }\nforms.tensors = "mul(a, b.__class__)"\n'
    )
    refused(path, "ops.mul.tensors.vjp", "program")


def test_what_a_spec_may_use_still_loads(tmp_path: Path) -> None:
    """The bounds leave room for real rules: constants, powers, shapes and NumPy's listed functions."""
    step = "y = np.ones((64, 64)) * 2.0 ** 40 + np.sum(np.eye(4)) + float(len([1, 2]))\nz = (3,) * 8"
    (rule,) = templates.load([write(tmp_path, step=step, oracle="np.where(X > 0, X, 0.0) ** 2 + 1e30")])
    assert "np.ones((64, 64))" in rule.args["steps"]


def test_scripts_run_with_the_listed_builtins_and_numpy_names_only() -> None:
    """Defence in depth: what the loader refuses is missing when a script runs, too."""
    namespace: dict = {}
    execute(Script({}, "y = len(list(range(3)))\nz = np.sum(np.ones(2))"), namespace)
    assert (namespace["y"], namespace["z"]) == (3, 2.0)
    for body in ("f = open", "g = getattr", "i = __import__", "l = np.load", "d = np.lib"):
        with pytest.raises(CheckFailure) as info:
            execute(Script({}, body), {})
        assert info.value.kind == "unexpected_error" and (
            "NameError" in info.value.detail or "has no" in info.value.detail
        )
    assert set(vars(language.SAFE_NP)) == language.NUMPY
    assert all(hasattr(np, name) for name in language.NUMPY)
    assert set(language.SAFE_BUILTINS) == set(language.BUILTINS)
