"""The torch.func adapter against torch itself: tensors, dtypes, devices, vjp, errors, and no stateful layer."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from conformance import templates
from conformance.backends.protocol import validate
from conformance.backends.torch_func_adapter import TorchFuncAdapter
from conformance.execute import runtime
from conformance.pytest_plugin.plugin import OUTCOME
from conformance.spec import specs
from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS
from tests.adapter_checks import (
    INPLACE_OPS,
    STATEFUL,
    check_custom_vjp,
    check_sgd_step,
    check_vjp_of_a_broadcast_product,
    check_vjp_unused_primal_and_nesting,
)
from tests.conftest import check_rule, make_run

DTYPES = ("float16", "bfloat16", "float32", "float64", "int64", "int32", "bool")


def test_functional_core_only() -> None:
    adapter = TorchFuncAdapter()
    assert not validate(adapter)
    assert adapter.capabilities <= set(CAPABILITIES) and not adapter.capabilities & STATEFUL
    assert {"float64", "float16", "bfloat16", "higher_order", "integer_tensors"} <= adapter.capabilities
    assert set(adapter.errors) <= set(ERROR_MEANINGS)
    assert set(vars(adapter.ops)) == set(OPS) - INPLACE_OPS


def test_no_rule_it_runs_reaches_an_inherited_stateful_method(rules: dict[str, specs.Rule]) -> None:
    """The class inherits the torch adapter's stateful methods; only capabilities keep them unreachable."""
    adapter = TorchFuncAdapter()
    functional = {"numpy", "dtype", "shape", "device", "vjp", "jvp", "custom_vjp", "sgd_step"}
    stateful_names = [n for n in runtime.STATEFUL if n not in functional]
    calls = re.compile(r"\b(" + "|".join(stateful_names) + r")\(")
    reached = [
        rule.id
        for rule in rules.values()
        if set(templates.needs(rule)) <= adapter.capabilities
        and calls.search(" ".join(str(v) for v in rule.args.values()))
    ]
    assert not reached


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_round_trip_keeps_values_and_dtype(dtype: str) -> None:
    adapter = TorchFuncAdapter()
    array = np.array([[0, 1, 2], [3, 4, 5]]).astype("float32" if dtype == "bfloat16" else dtype)
    t = adapter.tensor(array, dtype)
    assert adapter.dtype(t) == dtype and adapter.shape(t) == (2, 3) and not t.requires_grad
    back = adapter.numpy(t)
    assert back.dtype.name == ("float32" if dtype == "bfloat16" else dtype)  # NumPy has no bfloat16
    assert np.array_equal(back, array)


def test_requires_grad_is_ignored() -> None:
    """torch.func needs no flag on its primals; the flag belongs to the stateful layer."""
    assert not TorchFuncAdapter().tensor(np.ones(2), "float32", requires_grad=True).requires_grad


def test_devices() -> None:
    adapter = TorchFuncAdapter()
    assert adapter.devices()[0] == "cpu"
    assert ("devices" in adapter.capabilities) == torch.cuda.is_available()
    for device in adapter.devices():
        assert adapter.device(adapter.tensor(np.zeros(2), "float32", device=device)) == device


def test_vjp_of_a_broadcast_product() -> None:
    check_vjp_of_a_broadcast_product(TorchFuncAdapter(), "float32")


def test_vjp_gives_zeros_for_an_unused_primal_and_nests() -> None:
    check_vjp_unused_primal_and_nesting(TorchFuncAdapter())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_custom_vjp_is_the_engines_own(dtype: str) -> None:
    check_custom_vjp(TorchFuncAdapter(), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_step_is_plain_sgd(dtype: str) -> None:
    check_sgd_step(TorchFuncAdapter(), dtype)


def _wrong_cotangent() -> None:
    _, pullback = torch.func.vjp(torch.sin, torch.ones(3))
    pullback(torch.ones(4))


def _across_devices() -> None:
    torch.add(torch.ones(2), torch.ones(2, device="cuda"))


TRIGGERS: dict[str, Callable[[], object]] = {
    "incompatible_shapes": lambda: torch.add(torch.ones(2, 3), torch.ones(4)),
    "invalid_expand": lambda: torch.broadcast_to(torch.ones(3), (2, 4)),
    "grad_shape_mismatch": _wrong_cotangent,
    "device_mismatch": _across_devices,
    "nonfloat_differentiated": lambda: torch.func.vjp(lambda a: a.double() * 2.0, torch.tensor([1, 2]))[1](
        torch.ones(2, dtype=torch.float64)
    ),
}
"""Each meaning the adapter maps, raised by torch (through torch.func where it is about gradients)."""


def test_every_mapped_error_is_triggered_here() -> None:
    assert set(TorchFuncAdapter().errors) == set(TRIGGERS)


@pytest.mark.parametrize("meaning", sorted(TRIGGERS))
def test_mapped_error_matches_what_torch_raises(meaning: str) -> None:
    if meaning == "device_mismatch" and not torch.cuda.is_available():
        pytest.skip("needs a second device")
    with runtime.Checks(TorchFuncAdapter(), "float32", {}).raises(meaning):
        TRIGGERS[meaning]()


@pytest.mark.parametrize(
    "rule_id",
    [
        "broadcasting.grad.functional-vjp",
        "broadcasting.error.incompatible-shapes",
        "higher_order.vjp.nested-second-order",
        "higher_order.kink.relu-abs-clamp-at-zero",
    ],
)
def test_functional_rule_passes(rule_id: str, rules: dict[str, specs.Rule], tmp_path: Path) -> None:
    outcome = check_rule(TorchFuncAdapter(), rules[rule_id], "float32", tmp_path)
    assert not outcome.missing and outcome.failure is None and outcome.examples > 0


@pytest.mark.parametrize(
    ("rule_id", "capability"),
    [("backward.gradient.vjp", "stateful"), ("broadcasting.inplace.broadcasts-other", "inplace")],
)
def test_stateful_rule_is_unsupported(
    rule_id: str, capability: str, rules: dict[str, specs.Rule], tmp_path: Path
) -> None:
    rule, stash = rules[rule_id], pytest.Stash()
    with pytest.raises(pytest.skip.Exception, match=f"unsupported: torch-func lacks {capability}"):
        make_run(TorchFuncAdapter(), tmp_path, [rule]).check(rule, "float32", stash)
    outcome = stash[OUTCOME]
    assert capability in outcome.missing and outcome.failure is None and outcome.examples == 0
