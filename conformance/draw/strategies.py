"""Hypothesis strategies for a rule's cases: a dtype, shapes, bounded values, in a few choices per case.

Shapes come from ``hypothesis.extra.numpy`` (``mutually_broadcastable_shapes`` with 0-d and size-0 dims
allowed, capped in total size), drawn once per shape configuration into a pool that cases pick from
(``shape_pool``). Values come from a drawn kind and seed (``VALUE_KINDS``): bounded, without NaN,
infinities or subnormals, and kept as float64 arrays exactly representable in the case's dtype, so the
oracle sees precisely what the engine sees. A case costs Hypothesis four choices whatever its size,
where drawing every element cost it dozens; Hypothesis still shrinks it, to simpler shapes and to the
``fill`` values.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import __version__ as hypothesis_version
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance import oracle
from conformance.spec import language
from conformance.spec.specs import DOMAINS, Given

Shape = tuple[int, ...]
CASES_PER_EXAMPLE = 4
"""Cases one Hypothesis example draws and checks, each on its own: a Hypothesis example costs about 0.6 ms
before it draws anything, more than a case's check on a fast engine, so a batch spreads that cost. A failing
batch shrinks like any example; the failure reported is its first failing case."""
KINK_MARGIN = 1e-3
"""How far from a kink (``Given.kinks``) drawn values stay: well beyond a finite-difference step."""


@dataclass(frozen=True)
class Case:
    """One concrete input to a rule: what a failure prints, shrunk."""

    dtype: str
    arrays: Mapping[str, np.ndarray]
    result: Shape = ()
    upstream: np.ndarray | None = field(default=None, compare=False)
    values_from: tuple[str, int] = field(default=("fill", 0), compare=False)
    """The ``VALUE_KINDS`` kind and seed the arrays were made from; ``more_values`` makes more from them."""

    def __repr__(self) -> str:
        parts = [f"dtype={self.dtype!r}"]
        parts += [
            f"{k}={np.array2string(v, precision=6, separator=', ')} (shape {v.shape})" for k, v in self.arrays.items()
        ]
        if self.upstream is not None:
            parts.append(f"upstream={np.array2string(self.upstream, precision=6, separator=', ')}")
        return "Case(" + ", ".join(parts) + ")"


def representable(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` rounded to ``dtype`` and back to float64 (bfloat16 by truncating float32)."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "bfloat16":
        bits = values.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
        return bits.view(np.float32).astype(np.float64)
    return values.astype(dtype).astype(np.float64)


def _size_ok(shapes: Sequence[Shape], cap: int) -> bool:
    return all(math.prod(s) <= cap for s in shapes)


@st.composite
def _incompatible(draw: st.DrawFn, g: Given) -> tuple[list[Shape], Shape]:
    """Two shapes that do not broadcast: one aligned dim has sizes n != m, neither 1."""
    a, b = draw(
        hnp.mutually_broadcastable_shapes(
            num_shapes=2, min_dims=max(g.min_dims, 1), max_dims=g.max_dims, min_side=1, max_side=g.max_side
        )
    ).input_shapes
    i = draw(st.integers(1, min(len(a), len(b))))
    sizes = [0, *range(2, g.max_side + 2)]
    n = draw(st.sampled_from(sizes))
    m = draw(st.sampled_from([s for s in sizes if s != n]))
    a, b = list(a), list(b)
    a[-i], b[-i] = n, m
    return [tuple(a), tuple(b)], ()


def shapes(g: Given) -> st.SearchStrategy[tuple[list[Shape], Shape]]:
    """The input shapes for ``g.names`` and the broadcast result shape."""
    n = len(g.names)
    dims = {"min_dims": g.min_dims, "max_dims": g.max_dims, "min_side": g.min_side, "max_side": g.max_side}
    if g.shapes in ("same", "scalar"):
        base = st.just(()) if g.shapes == "scalar" else hnp.array_shapes(**dims)
        strategy = base.map(lambda s: ([s] * n, s))
    elif g.shapes == "independent":
        strategy = st.lists(hnp.array_shapes(**dims), min_size=n, max_size=n).map(lambda ss: (ss, ()))
    elif g.shapes == "fixed":
        fixed = [g.fixed[name] for name in g.names]
        strategy = st.just((fixed, _result(fixed)))
    elif g.shapes == "incompatible":
        return _incompatible(g)
    elif g.shapes == "matmul":
        sig = "(m?,n),(n,p?)->(m?,p?)"
        strategy = hnp.mutually_broadcastable_shapes(signature=sig, **dims).map(
            lambda bs: (list(bs.input_shapes), bs.result_shape)
        )
    else:  # broadcastable, expand (one more hidden shape widens the result), reducible (the first is the result)
        extra = 1 if g.shapes == "expand" else 0
        strategy = hnp.mutually_broadcastable_shapes(num_shapes=n + extra, **dims).map(
            lambda bs: (list(bs.input_shapes[:n]), bs.result_shape)
        )
        if g.shapes == "reducible":
            strategy = strategy.map(lambda sr: ([sr[1], *sr[0][1:]], sr[1]))
    if g.fixed and g.shapes != "fixed":
        strategy = strategy.map(lambda sr: _pin(g, sr[0]))
    return strategy.filter(lambda sr: _size_ok([*sr[0], sr[1]], g.max_size))


POOL_SIZE = 32
"""Shape sets a rule draws from by default: more than a gate run's examples, each met with fresh values."""
_POOL_DRAWS = 64
"""Draws from a rule's shape strategy that a shape pool picks from."""
_POOLS: dict[tuple[Any, ...], list[tuple[list[Shape], Shape]]] = {}
_KEPT_IN: Path | None = None
"""The folder where derandomized pools are kept between processes (``keep_pools``); None: nowhere."""


def keep_pools(folder: Path | None) -> None:
    """Keep the derandomized shape pools in ``folder``, so a process reads what an earlier one drew: a pool takes
    64 Hypothesis examples to draw (seconds per process for a whole run) and depends only on its parameters, this
    module's code and the versions of Hypothesis and Python, which name its file. None: draw them in every process."""
    global _KEPT_IN
    _KEPT_IN = folder


@functools.cache
def _made_by() -> str:
    """What a derandomized pool depends on besides its parameters."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest() + hypothesis_version + repr(sys.version_info[:2])


def _kept_path(folder: Path, key: tuple[Any, ...]) -> Path:
    return folder / f"{hashlib.sha256((repr(key) + _made_by()).encode()).hexdigest()[:32]}.json"


def _read_pool(path: Path) -> list[tuple[list[Shape], Shape]] | None:
    """The pool kept at ``path``; None when there is none, or it cannot be read (it is then drawn again)."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        return [([tuple(s) for s in inputs], tuple(result)) for inputs, result in kept]
    except (OSError, ValueError, TypeError):
        return None


def _write_pool(path: Path, pool: list[tuple[list[Shape], Shape]]) -> None:
    """Written whole or not at all (a rename), so workers drawing the same pool at once cannot tear it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        draft.write_text(json.dumps(pool), encoding="utf-8")
        os.replace(draft, path)
    except OSError:  # a read-only folder: the pools are drawn in every process, as without one
        pass


def shape_pool(g: Given, k: int) -> list[tuple[list[Shape], Shape]]:
    """At most ``k`` of the shape sets ``shapes(g)`` draws: the simplest, one with a size-0 dim, the largest, then
    as drawn; simplest first, so shrinking a case's pick moves to simpler shapes. Drawing a case's shapes is then one
    choice, and an engine that compiles per shape (``--shape-pool``, a small ``k``) compiles a few. Rules with the
    same shape parameters share a pool, drawn with the run's seed (``Given.seed``), or derandomized without one."""
    if k < 1:
        raise ValueError(f"a shape pool needs at least one shape set, got {k}")
    names: Any = g.names if g.fixed else len(g.names)
    key = (names, g.shapes, g.min_dims, g.max_dims, g.min_side, g.max_side, g.max_size, tuple(g.fixed.items()))
    pooled = (*key, k, g.seed)
    kept = _kept_path(_KEPT_IN, (*key, k)) if _KEPT_IN and g.seed is None and pooled not in _POOLS else None
    if kept is not None and (read := _read_pool(kept)) is not None:
        _POOLS[pooled] = read
    if pooled not in _POOLS:
        drawn: list[tuple[list[Shape], Shape]] = []

        @settings(
            max_examples=_POOL_DRAWS,
            derandomize=g.seed is None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            deadline=None,
        )
        @given(shapes(g))
        def collect(shape_set: tuple[list[Shape], Shape]) -> None:
            if shape_set not in drawn:
                drawn.append(shape_set)

        if g.seed is not None:
            collect = seed(g.seed)(collect)
        collect()
        empty = [d for d in drawn if any(0 in s for s in d[0])]
        picks = [min(drawn, key=_complexity), *empty[:1], max(drawn, key=_complexity), *drawn]
        unique = [p for i, p in enumerate(picks) if p not in picks[:i]][:k]
        _POOLS[pooled] = sorted(unique, key=_complexity)
        if kept is not None:
            _write_pool(kept, _POOLS[pooled])
    return _POOLS[pooled]


def _complexity(shape_set: tuple[list[Shape], Shape]) -> tuple[int, int, list[Shape]]:
    """Dims, then elements, then the shapes themselves: what "simpler" means for a shape set (0-d first)."""
    every = [*shape_set[0], shape_set[1]]
    return sum(len(s) for s in every), sum(math.prod(s) for s in every), every


def _result(shapes: Sequence[Shape]) -> Shape:
    """The broadcast shape of ``shapes``; () when they do not broadcast (fixed shapes of a model's layers)."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        return ()


def _pin(g: Given, drawn: list[Shape]) -> tuple[list[Shape], Shape]:
    """Replace the drawn shapes of the names in ``g.fixed``; the result follows."""
    pinned = [g.fixed.get(name, s) for name, s in zip(g.names, drawn)]
    return pinned, np.broadcast_shapes(*pinned)


VALUE_KINDS = ("fill", "uniform", "grid")
"""How a case's values are made from its drawn seed, in the order shrinking prefers: ``fill``, the same
distinct values every time (the ``fill`` function's); ``uniform``, random over the domain; ``grid``, random
multiples of 1/4 in the domain, so zeros, ties and equal arrays occur."""
TINY = 2.0**-10
"""Uniform values closer to zero than this are zero: no dtype's rounding makes them subnormal."""
_SEEDS = st.integers(0, 2**32 - 1)


@functools.lru_cache(maxsize=8192)
def values(shape: Shape, dtype: str, domain: str) -> st.SearchStrategy[np.ndarray]:
    """Bounded finite values of ``dtype``, as exact float64: two choices (a kind and a seed) whatever the size."""
    return st.tuples(st.sampled_from(VALUE_KINDS), _SEEDS).map(
        lambda drawn: generate(np.random.default_rng(drawn[1]), shape, dtype, domain, drawn[0])
    )


def generate(rng: np.random.Generator, shape: Shape, dtype: str, domain: str, kind: str) -> np.ndarray:
    """Values of one ``VALUE_KINDS`` kind, drawn from ``rng`` (NumPy's PCG64: the same on every platform)."""
    if kind == "fill":
        return representable(fill(shape, domain), dtype)
    low, high = DOMAINS[domain]
    if kind == "uniform":
        drawn = rng.uniform(low, high, shape)
        drawn[np.abs(drawn) < TINY] = 0.0
    else:
        grid = np.arange(math.ceil(low * 4), math.floor(high * 4) + 1) / 4
        drawn = grid[rng.integers(0, len(grid), shape)]
    if domain == "nonzero":
        drawn = np.where(rng.random(shape) < 0.5, -drawn, drawn)
    return representable(drawn, dtype)


def more_values(case: Case, shape: Shape, domain: str) -> np.ndarray:
    """Values for one more array of ``case`` (an upstream gradient), from the case's own kind and seed."""
    kind, seed = case.values_from
    return generate(np.random.default_rng((seed, 1)), shape, case.dtype, domain, kind)


def cases(g: Given, dtypes: Sequence[str]) -> st.SearchStrategy[Case]:
    """A dtype, a shape set from the rule's pool, then a kind and a seed that make every array's values
    (names, then ``like`` extras): four choices per case, whatever its size. A rule with kinks leaves out
    the ``grid`` kind, whose ties it would only reject."""
    return st.tuples(
        st.sampled_from(list(dtypes)),
        st.sampled_from(shape_pool(g, g.shape_pool or POOL_SIZE)),
        st.sampled_from(VALUE_KINDS if g.kinks is None else VALUE_KINDS[:2]),
        _SEEDS,
    ).map(functools.partial(_case, g))


def _case(g: Given, drawn: tuple[str, tuple[list[Shape], Shape], str, int]) -> Case:
    dtype, (input_shapes, result), kind, seed = drawn
    shape_of = dict(zip(g.names, input_shapes))
    for extra, source in g.like.items():
        shape_of[extra] = result if source == "result" else shape_of[source]
    rng = np.random.default_rng(seed)
    arrays = {name: generate(rng, tuple(shape), dtype, g.domain_of(name), kind) for name, shape in shape_of.items()}
    if g.kinks is not None:
        assume(away_from_kinks(g.kinks, arrays, tuple(result)))
    return Case(dtype, arrays, tuple(result), values_from=(kind, seed))


def away_from_kinks(kinks: str, arrays: Mapping[str, np.ndarray], result: Shape) -> bool:
    """Whether every element of the oracle expression ``kinks`` is at least ``KINK_MARGIN`` from zero."""
    scope = {"__builtins__": {}, **oracle.NAMESPACE, **{k.upper(): v for k, v in arrays.items()}, "RESULT": result}
    with np.errstate(all="ignore"):
        gaps = np.asarray(eval(language.compile_expression(kinks), scope), dtype=np.float64)
    return bool(np.all(np.abs(gaps) >= KINK_MARGIN))


def fill(shape: Shape, domain: str) -> np.ndarray:
    """Deterministic, distinct values across the domain: an explicit example's default."""
    low, high = DOMAINS[domain]
    size = math.prod(shape)
    return np.linspace(low + (high - low) / 8, high, size).reshape(shape) if size else np.zeros(shape)


def example_case(g: Given, example: Mapping[str, Any], dtype: str) -> Case:
    """The ``Case`` for one of a rule's explicit examples."""
    given_values = example.get("values", {})
    given_shapes = example.get("shapes", {})
    arrays = {}
    for name in [*g.names, *g.like]:
        if name in given_values:
            arrays[name] = representable(np.asarray(given_values[name], dtype=np.float64), dtype)
        elif name in given_shapes:
            arrays[name] = representable(fill(tuple(given_shapes[name]), g.domain_of(name)), dtype)
        elif name in g.like:
            source = g.like[name]
            shape = arrays[source].shape if source in arrays else tuple(example.get("result", ()))
            arrays[name] = representable(fill(shape, g.domain_of(name)), dtype)
        else:
            default = g.fixed.get(name, ())
            arrays[name] = representable(fill(tuple(default), g.domain_of(name)), dtype)
    if "result" in example:
        result = tuple(example["result"])
    else:
        result = _result([a.shape for name, a in arrays.items() if name in g.names])
    upstream = example.get("upstream")
    return Case(dtype, arrays, result, None if upstream is None else np.asarray(upstream, dtype=np.float64))
