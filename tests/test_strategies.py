"""Drawing cases: values from a kind and a seed, shapes from a pool (small for compile-per-shape engines), and
batches of cases per Hypothesis example."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from conformance.backends.reference import ReferenceAdapter
from conformance.draw import strategies
from conformance.execute import runner
from conformance.spec import specs
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


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[Path]:
    """Pools kept in a fresh folder, and drawn anew in this process."""
    strategies._POOLS.clear()
    strategies.keep_pools(tmp_path)
    yield tmp_path
    strategies.keep_pools(None)
    strategies._POOLS.clear()


def test_a_kept_pool_is_what_drawing_gives_and_is_read_back(kept: Path) -> None:
    drawn = strategies.shape_pool(BROADCAST, 4)
    assert drawn == POOL_4, "keeping a pool does not change it"
    (file,) = kept.glob("*.json")
    other = [([(2,), (2,)], (2,))]
    file.write_text("[[[[2], [2]], [2]]]")
    strategies._POOLS.clear()
    assert strategies.shape_pool(BROADCAST, 4) == other, "a later process reads the kept pool instead of drawing it"
    file.write_text("[[[2], [")
    strategies._POOLS.clear()
    assert strategies.shape_pool(BROADCAST, 4) == drawn, "a pool that cannot be read is drawn again"
    assert strategies.shape_pool(BROADCAST, 4) == strategies._read_pool(file)


def test_a_seeded_pool_is_not_kept(kept: Path) -> None:
    strategies.shape_pool(dataclasses.replace(BROADCAST, seed=12345), 4)
    assert not list(kept.iterdir())


POOL = strategies.shape_pool(BROADCAST, 3)
POOL_4 = strategies.shape_pool(BROADCAST, 4)


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


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("domain", sorted(specs.DOMAINS))
@pytest.mark.parametrize("kind", strategies.VALUE_KINDS)
def test_values_of_every_kind_stay_in_their_domain_and_dtype(kind: str, domain: str, dtype: str) -> None:
    low, high = specs.DOMAINS[domain]
    for seed in range(20):
        v = strategies.generate(np.random.default_rng(seed), (4, 5), dtype, domain, kind)
        assert v.dtype == np.float64 and v.shape == (4, 5)
        assert np.array_equal(strategies.representable(v, dtype), v), "exactly what the engine's dtype holds"
        magnitude = np.abs(v) if domain == "nonzero" else v
        assert np.all((magnitude >= low) & (magnitude <= high)), v
        assert np.all((v == 0) | (np.abs(v) >= strategies.TINY / 2)), "no subnormal in any dtype"
        if kind == "grid":
            assert np.array_equal(v * 4, np.round(v * 4)), "multiples of 1/4"
        if kind == "fill":
            assert np.array_equal(v, strategies.representable(strategies.fill((4, 5), domain), dtype))
    if domain == "nonzero" and kind != "fill":
        signs = np.sign(strategies.generate(np.random.default_rng(0), (64,), dtype, domain, kind))
        assert {-1.0, 1.0} <= set(signs), "both signs"


def test_a_run_with_a_seed_draws_its_own_pool_the_same_each_time() -> None:
    seeded = dataclasses.replace(BROADCAST, seed=12345)
    first = strategies.shape_pool(seeded, 8)
    assert first != strategies.shape_pool(BROADCAST, 8), "the seed draws the pool, not the derandomized draw"
    strategies._POOLS.clear()
    assert strategies.shape_pool(seeded, 8) == first
    for inputs, result in first:
        assert np.broadcast_shapes(*inputs) == result and all(np.prod(s) <= BROADCAST.max_size for s in inputs)


def test_a_hypothesis_example_checks_a_batch_of_cases() -> None:
    rule = RULES["broadcasting.grad.sum-to-input-shape"]
    gate = settings.get_profile("conformance-gate")
    outcome = runner.check(ReferenceAdapter(), rule, "float64", "cpu", overrides=gate)
    assert outcome.failure is None
    assert outcome.examples == len(rule.examples) + gate.max_examples * strategies.CASES_PER_EXAMPLE
