"""The spec loader: shipped specs load, and each malformed spec names its file, rule and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conformance import templates
from conformance.spec import specs
from conformance.vocabulary import OPS

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
    rules = templates.load()
    assert rules, "no rules shipped"
    assert [r.id for r in rules] == sorted(r.id for r in rules)
    assert all(r.statement and r.references for r in rules), "every rule needs a statement and a reference"


def test_good_spec(tmp_path: Path) -> None:
    (rule,) = templates.load([write(tmp_path, GOOD)])
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
        ('program = "add(a, b)"', 'program = "a.__class__"', "program", "dunder name"),
        ('program = "add(a, b)"', 'program = "a.shape"', "program", "attribute access"),
        ('program = "add(a, b)"', 'program = "add(a,"', "program", "syntax error"),
        ('program = "add(a, b)"', "", "program", "required by template"),
        ('statement = "add broadcasts."', 'statement = ""', "statement", "must be a sentence"),
        ('level = "required"', 'level = "required"\nneeds = ["telepathy"]', "needs", "unknown capability"),
        ('level = "required"', 'level = "required"\ndtypes = ["float8"]', "dtypes", "unknown dtype"),
        ('level = "required"', 'level = "required"\ncolour = "red"', "colour", "unknown field"),
        ('shapes = "broadcastable"', 'shapes = "round"', "given.shapes", "is not one of"),
        (
            'shapes = "broadcastable"',
            'shapes = "broadcastable", max_dims = -1',
            "given.max_dims",
            "must be an integer in [0, 32]",
        ),
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
        templates.load([path])
    error = info.value
    assert error.path == str(path)
    assert error.field == field, str(error)
    assert message in str(error)
    assert str(path) in str(error) and f"field {field!r}" in str(error)


def test_raises_template_checks_the_error_meaning(tmp_path: Path) -> None:
    text = GOOD.replace('template = "forward"', 'template = "raises"\nerror = "oops"')
    with pytest.raises(specs.SpecError, match="field 'error': unknown meaning"):
        templates.load([write(tmp_path, text)])


def test_scenario_checks_steps_and_oracle(tmp_path: Path) -> None:
    scenario = GOOD.replace('template = "forward"\nprogram = "add(a, b)"', 'template = "scenario"')
    bad_steps = scenario + 'steps = "import os"\n'
    with pytest.raises(specs.SpecError, match="field 'steps': line 1: Import is not allowed"):
        templates.load([write(tmp_path, bad_steps)])
    bad_oracle = scenario + 'steps = "expect_equal(1, 1)"\noracle = { E = "vjp(\'mul(a, a)\', a=Q)" }\n'
    with pytest.raises(specs.SpecError, match=r"field 'oracle.E': line 1: unknown name 'Q'"):
        templates.load([write(tmp_path, bad_oracle)])
    shadowing = scenario + 'steps = """\ndef backward(g):\n    return g\n"""\n'
    with pytest.raises(specs.SpecError, match="field 'steps': line 1: 'backward' is a name of the vocabulary"):
        templates.load([write(tmp_path, shadowing)])


def test_invalid_toml_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(specs.SpecError, match="not valid TOML"):
        templates.load([write(tmp_path, "[[rule]\n")])
    with pytest.raises(specs.SpecError, match="duplicate id"):
        templates.load([write(tmp_path, GOOD + GOOD)])


@pytest.mark.parametrize(
    ("bounds", "field"),
    [("min_dims = 3, max_dims = 2", "given.min_dims"), ("min_side = 2, max_side = 1", "given.min_side")],
)
def test_given_bounds_must_be_ordered(tmp_path: Path, bounds: str, field: str) -> None:
    path = write(tmp_path, GOOD.replace('shapes = "broadcastable"', f'shapes = "broadcastable", {bounds}'))
    with pytest.raises(specs.SpecError, match="exceeds") as info:
        templates.load([path])
    assert (info.value.path, info.value.rule, info.value.field) == (str(path), "demo.forward.add", field)


def test_a_bound_is_checked_against_the_other_default(tmp_path: Path) -> None:
    """max_dims defaults to 3, so min_dims = 4 alone is out of order."""
    with pytest.raises(specs.SpecError, match="min_dims = 4 exceeds max_dims = 3"):
        templates.load(
            [write(tmp_path, GOOD.replace('shapes = "broadcastable"', 'shapes = "broadcastable", min_dims = 4'))]
        )


def test_file_level_tolerance_applies_unless_the_rule_gives_its_own(tmp_path: Path) -> None:
    """Merged per dtype: the rule's float32 entry wins, the file's float64 entry stays."""
    own = (
        GOOD.replace("demo.forward.add", "demo.forward.own") + "tolerance = { float32 = { rtol = 0.5, atol = 0.5 } }\n"
    )
    path = tmp_path / "demo.toml"
    path.write_text(
        'area = "demo"\ntolerance = { float32 = { rtol = 1e-3, atol = 1e-4 }, float64 = { rtol = 1e-6, atol = 1e-8 } }\n'
        + GOOD
        + own
    )
    plain, overriding = templates.load([path])
    assert plain.tolerances == {"float32": (1e-3, 1e-4), "float64": (1e-6, 1e-8)}
    assert overriding.tolerances == {"float32": (0.5, 0.5), "float64": (1e-6, 1e-8)}


def test_file_level_tolerance_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "demo.toml"
    path.write_text('area = "demo"\ntolerance = { float8 = { rtol = 1, atol = 1 } }\n' + GOOD)
    with pytest.raises(specs.SpecError, match=r"field 'tolerance\.float8': unknown dtype") as info:
        templates.load([path])
    assert info.value.rule is None


def test_kinks_is_an_oracle_expression_over_the_drawn_arrays(tmp_path: Path) -> None:
    kinks = GOOD.replace('shapes = "broadcastable"', 'shapes = "broadcastable", kinks = "np.subtract(A, C)"')
    with pytest.raises(specs.SpecError, match=r"field 'given\.kinks': line 1: unknown name 'C'"):
        templates.load([write(tmp_path, kinks)])


OP_TABLE = """
[[op]]
name = "mul"
given = { names = ["a", "b"], shapes = "broadcastable" }
[op.forms]
tensors = "mul(a, b)"
number = { program = "mul(a, 2.0)", given = { names = ["a"] }, examples = [{ shapes = { a = [2] } }] }

[[op]]
name = "gt"
differentiable = false
forms.number = "gt(x, 0.0)"
"""


def test_an_op_table_expands_into_rules_per_form(tmp_path: Path) -> None:
    path = tmp_path / "ops.toml"
    path.write_text('area = "ops"\n[second_order]\ntolerance = { float64 = { rtol = 1e-5, atol = 1e-6 } }\n' + OP_TABLE)
    rules = {r.id: r for r in templates.load([path])}
    assert sorted(rules) == [
        "ops.gt.number.no-grad",
        "ops.mul.number.jvp",
        "ops.mul.number.vjp",
        "ops.mul.number.vjp2",
        "ops.mul.tensors.jvp",
        "ops.mul.tensors.vjp",
        "ops.mul.tensors.vjp2",
    ]
    forward = rules["ops.mul.tensors.jvp"]
    assert forward.template == "scenario" and templates.needs(forward) == ("forward_mode",)
    assert (
        forward.given.like == {"a_t": "a", "b_t": "b", "u_out": "a"}
        and "jvp(lambda a, b: mul(a, b)" in forward.args["steps"]
    )
    first, second = rules["ops.mul.tensors.vjp"], rules["ops.mul.tensors.vjp2"]
    assert (first.template, first.args["via"], first.given.names) == ("gradient", "vjp", ("a", "b"))
    assert (second.template, second.args["weights"]) == ("second_order", {"a": "a_w", "b": "b_w"})
    assert second.given.like == {"a_w": "a", "b_w": "b"} and templates.needs(second) == ("higher_order",)
    assert second.tolerances == {"float64": (1e-5, 1e-6)} and not first.tolerances
    assert rules["ops.mul.number.vjp"].given.names == ("a",) and rules["ops.mul.number.vjp"].examples
    no_grad = rules["ops.gt.number.no-grad"]
    assert no_grad.template == "scenario" and "stateful" in no_grad.needs


@pytest.mark.parametrize(
    ("old", "new", "where", "field"),
    [
        ('name = "mul"', 'name = "mull"', "op mull", "name"),
        ('tensors = "mul(a, b)"', 'tensors = { program = "mul(a, b)", colour = 1 }', "op mul", "forms.tensors"),
        ('tensors = "mul(a, b)"', 'tensors = "mul(a, c)"', "ops.mul.tensors.vjp", "program"),
    ],
)
def test_a_malformed_op_names_the_op_and_field(tmp_path: Path, old: str, new: str, where: str, field: str) -> None:
    path = tmp_path / "ops.toml"
    path.write_text('area = "ops"\n' + OP_TABLE.replace(old, new))
    with pytest.raises(specs.SpecError) as info:
        templates.load([path])
    assert (info.value.rule, info.value.field) == (where, field), str(info.value)


def test_the_ops_area_covers_the_catalog() -> None:
    """Every op but the in-place ones (the stateful layer's, tested by the inplace rules) has rules."""
    covered = {r.id.split(".")[1] for r in templates.load() if r.area == "ops"}
    assert covered == {name for name in OPS if not name.endswith("_")}
