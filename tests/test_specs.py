"""The spec loader: shipped specs load, and each malformed spec names its file, rule and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conformance import specs

GOOD = """
[[rule]]
id = "demo.forward.add"
level = "required"
statement = "add broadcasts."
template = "forward"
program = "add(a, b)"
given = { names = ["a", "b"], shapes = "broadcastable" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "demo.toml"
    path.write_text('area = "demo"\n' + textwrap.dedent(text))
    return path


def test_shipped_specs_load() -> None:
    rules = specs.load()
    assert rules, "no rules shipped"
    assert [r.id for r in rules] == sorted(r.id for r in rules)
    assert all(r.statement and r.references for r in rules), "every rule needs a statement and a reference"


def test_good_spec(tmp_path: Path) -> None:
    (rule,) = specs.load([write(tmp_path, GOOD)])
    assert (rule.id, rule.area, rule.template, rule.dtypes) == (
        "demo.forward.add",
        "demo",
        "forward",
        ("float32", "float64"),
    )


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ('level = "required"', 'level = "must"', "level", "must be one of"),
        ('template = "forward"', 'template = "magic"', "template", "must be one of"),
        ('id = "demo.forward.add"', 'id = "Demo Add"', "id", "stable dotted id"),
        ('id = "demo.forward.add"', 'id = "other.forward.add"', "id", "must start with its area"),
        ('program = "add(a, b)"', 'program = "add(a, c)"', "program", "unknown name 'c'"),
        ('program = "add(a, b)"', 'program = "a.__class__"', "program", "attribute access"),
        ('program = "add(a, b)"', 'program = "add(a,"', "program", "syntax error"),
        ('program = "add(a, b)"', "", "program", "required by template"),
        ('statement = "add broadcasts."', 'statement = ""', "statement", "must be a sentence"),
        ('level = "required"', 'level = "required"\nneeds = ["telepathy"]', "needs", "unknown capability"),
        ('level = "required"', 'level = "required"\ndtypes = ["float8"]', "dtypes", "unknown dtype"),
        ('level = "required"', 'level = "required"\ncolour = "red"', "colour", "unknown field"),
        ('shapes = "broadcastable"', 'shapes = "round"', "given.shapes", "is not one of"),
        ('shapes = "broadcastable"', 'shapes = "broadcastable", max_dims = -1', "given.max_dims", "non-negative"),
        (
            'shapes = "broadcastable"',
            'shapes = "broadcastable", domain = "imaginary"',
            "given.domain.*",
            "is not one of",
        ),
        ('level = "required"', 'level = "required"\nexamples = [{ colour = 1 }]', "examples[0]", "keys from"),
        (
            'level = "required"',
            'level = "required"\ntolerance = { float32 = { rtol = 1 } }',
            "tolerance.float32",
            "rtol and atol",
        ),
    ],
)
def test_malformed_rule_names_file_rule_and_field(tmp_path: Path, old: str, new: str, field: str, message: str) -> None:
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(specs.SpecError) as info:
        specs.load([path])
    error = info.value
    assert error.path == str(path)
    assert error.field == field, str(error)
    assert message in str(error)
    assert str(path) in str(error) and f"field {field!r}" in str(error)


def test_raises_template_checks_the_error_meaning(tmp_path: Path) -> None:
    text = GOOD.replace('template = "forward"', 'template = "raises"\nerror = "oops"')
    with pytest.raises(specs.SpecError, match="field 'error': unknown meaning"):
        specs.load([write(tmp_path, text)])


def test_scenario_checks_steps_and_oracle(tmp_path: Path) -> None:
    scenario = GOOD.replace('template = "forward"\nprogram = "add(a, b)"', 'template = "scenario"')
    bad_steps = scenario + 'steps = "import os"\n'
    with pytest.raises(specs.SpecError, match="field 'steps': line 1: Import is not allowed"):
        specs.load([write(tmp_path, bad_steps)])
    bad_oracle = scenario + 'steps = "expect_equal(1, 1)"\noracle = { E = "vjp(\'mul(a, a)\', a=Q)" }\n'
    with pytest.raises(specs.SpecError, match=r"field 'oracle.E': line 1: unknown name 'Q'"):
        specs.load([write(tmp_path, bad_oracle)])


def test_invalid_toml_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(specs.SpecError, match="not valid TOML"):
        specs.load([write(tmp_path, "[[rule]\n")])
    with pytest.raises(specs.SpecError, match="duplicate id"):
        specs.load([write(tmp_path, GOOD + GOOD)])
