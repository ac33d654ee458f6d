"""Drawing cases: the shape pool that keeps compile-per-shape engines to a few shapes per rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings

from conformance import specs, strategies
from tests.results_fixtures import BROKEN_RULE, broken_backend, run_suite

RULES = {r.id: r for r in specs.load()}
BROADCAST = RULES["ops.add.tensors.vjp"].given


def test_a_shape_pool_is_fixed_per_rule_and_keeps_the_edge_cases() -> None:
    pool = strategies.shape_pool(BROADCAST, 4)
    assert 1 < len(pool) <= 4 and len({repr(p) for p in pool}) == len(pool), pool
    assert pool[0] == ([(), ()], ()), "the simplest shape set comes first (and is where a failure shrinks to)"
    assert any(0 in s for inputs, _ in pool for s in inputs), "a size-0 dim is kept"
    strategies._POOLS.clear()
    assert strategies.shape_pool(BROADCAST, 4) == pool, "the same on every run"
    assert strategies.shape_pool(BROADCAST, 1) == pool[:1]
    with pytest.raises(ValueError, match="at least one"):
        strategies.shape_pool(BROADCAST, 0)


POOL = strategies.shape_pool(BROADCAST, 3)


@settings(max_examples=30, deadline=None)
@given(strategies.cases(dataclasses.replace(BROADCAST, shape_pool=3), ["float64"]))
def test_pooled_cases_draw_shapes_from_the_pool_only(case: strategies.Case) -> None:
    assert ([case.arrays[n].shape for n in BROADCAST.names], case.result) in POOL


def test_a_pooled_run_records_the_pool_and_replays_with_it(tmp_path: Path) -> None:
    code, output, doc = run_suite(tmp_path, broken_backend(), "--shape-pool=3", rules=(BROKEN_RULE,))
    assert code == 1 and doc is not None, output
    assert doc["shape_pool"] == 3
    failed = [r for r in doc["results"] if r["status"] == "failed"]
    assert failed and all("--shape-pool=3" in r["failure"]["replay"] for r in failed), output
