"""Every check can fail: each rule fails under a deliberately broken adapter (tests/broken/)."""

from __future__ import annotations

import pytest

from conformance import specs
from tests.broken import all_broken
from tests.conftest import check_rule

BROKEN = all_broken()
PAIRS = [(cls, rule_id) for cls in BROKEN for rule_id in cls.breaks]


def test_every_rule_has_a_broken_adapter() -> None:
    covered = {rule_id for _, rule_id in PAIRS}
    missing = sorted(r.id for r in specs.load() if r.id not in covered)
    assert not missing, f"rules no broken adapter breaks: {missing}"


def test_broken_adapters_name_real_rules() -> None:
    known = {r.id for r in specs.load()}
    stale = sorted({rule_id for _, rule_id in PAIRS} - known)
    assert not stale, f"broken adapters name unknown rules: {stale}"


@pytest.mark.parametrize(("cls", "rule_id"), PAIRS, ids=[f"{c.__name__}-{r}" for c, r in PAIRS])
def test_broken_adapter_fails_its_rule(cls: type, rule_id: str, rules: dict[str, specs.Rule], tmp_path) -> None:
    """The rule fails in every dtype it runs in, with a divergence (not an unsupported skip)."""
    rule = rules[rule_id]
    for dtype in rule.dtypes:
        outcome = check_rule(cls(), rule, dtype, tmp_path)
        assert not outcome.missing, f"{cls.__name__} lacks {outcome.missing}: {rule_id} would be unsupported"
        assert outcome.failure is not None, f"{rule_id} passed under {cls.__name__} in {dtype}"
