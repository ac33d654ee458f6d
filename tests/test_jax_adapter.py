"""The JAX adapter: a functional engine runs the functional rules for real and is unsupported elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance import templates
from conformance.pytest_plugin.plugin import OUTCOME
from conformance.spec import specs
from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS
from tests.adapter_checks import INPLACE_OPS, check_custom_vjp
from tests.conftest import check_rule, make_run

JaxAdapter = pytest.importorskip("conformance.backends.jax_adapter", reason="jax is not installed").JaxAdapter

FUNCTIONAL_CORE = ("engine_version", "devices", "tensor", "numpy", "dtype", "shape", "device", "vjp")


def test_adapter_has_the_functional_core_only() -> None:
    adapter = JaxAdapter()
    assert adapter.capabilities <= set(CAPABILITIES)
    assert {"float64", "higher_order"} <= adapter.capabilities and "stateful" not in adapter.capabilities
    assert set(adapter.errors) <= set(ERROR_MEANINGS)
    assert set(vars(adapter.ops)) == set(OPS) - INPLACE_OPS
    assert all(callable(getattr(adapter, name)) for name in FUNCTIONAL_CORE)
    assert not hasattr(adapter, "backward") and not hasattr(adapter, "grad_of")


def test_rules_that_call_in_place_ops_need_a_capability_jax_lacks(rules: dict[str, specs.Rule]) -> None:
    """Otherwise such a rule would run against jax and fail on a missing op instead of being unsupported."""
    adapter = JaxAdapter()
    calls = re.compile(r"\b(" + "|".join(sorted(INPLACE_OPS)) + r")\(")
    unguarded = [
        rule.id
        for rule in rules.values()
        if calls.search(" ".join(str(v) for v in rule.args.values()))
        and set(templates.needs(rule)) <= adapter.capabilities
    ]
    assert not unguarded


@pytest.mark.parametrize(
    "rule_id",
    [
        "broadcasting.grad.functional-vjp",
        "broadcasting.error.incompatible-shapes",
        "higher_order.vjp.nested-second-order",
    ],
)
def test_functional_rule_passes(rule_id: str, rules: dict[str, specs.Rule], tmp_path: Path) -> None:
    outcome = check_rule(JaxAdapter(), rules[rule_id], "float64", tmp_path)
    assert not outcome.missing and outcome.failure is None and outcome.examples > 0


@pytest.mark.parametrize(
    ("rule_id", "missing"),
    [("backward.gradient.vjp", ["stateful"]), ("broadcasting.inplace.broadcasts-other", ["inplace", "op:add_"])],
)
def test_stateful_rule_is_unsupported(
    rule_id: str, missing: list[str], rules: dict[str, specs.Rule], tmp_path: Path
) -> None:
    rule = rules[rule_id]
    stash = pytest.Stash()
    with pytest.raises(pytest.skip.Exception, match=f"unsupported: jax lacks {missing[0]}"):
        make_run(JaxAdapter(), tmp_path, [rule]).check(rule, "float32", stash)
    outcome = stash[OUTCOME]
    assert outcome.missing == missing and outcome.failure is None and outcome.examples == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_custom_vjp_is_the_engines_own(dtype: str) -> None:
    check_custom_vjp(JaxAdapter(), dtype)


def test_no_functional_optimizer_without_optax() -> None:
    """JAX itself has no optimizer (optax is a separate library), so sgd_step is missing, not emulated."""
    adapter = JaxAdapter()
    assert "functional_optimizer" not in adapter.capabilities and not hasattr(adapter, "sgd_step")
