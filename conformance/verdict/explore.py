"""Exploration: turning each new shrunk counterexample into an explicit example for its rule.

A thorough run (``--conformance-profile=thorough --explore-out FILE``) searches far more cases
than the gate. Every minimal failure it finds that the rule does not already list is written to
FILE as an inline TOML table, ready to paste into the rule's ``examples`` array: the gate runs
explicit examples first, in every dtype, so it then remembers the case for good.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conformance.draw.strategies import Case, example_case
from conformance.spec import specs


def counterexample(case: Case) -> dict[str, Any]:
    """A shrunk case as data, in the form of a spec example (JSON-able).

    Arrays with a zero-size dimension are given by ``shapes`` (their values are empty and a
    nested list cannot carry the shape); the others by exact ``values``.
    """
    data: dict[str, Any] = {"dtype": case.dtype, "values": {}, "shapes": {}, "result": list(case.result)}
    for name, array in case.arrays.items():
        if array.size:
            data["values"][name] = array.tolist()
        else:
            data["shapes"][name] = list(array.shape)
    if case.upstream is not None and case.upstream.size:
        data["upstream"] = case.upstream.tolist()
    return data


def spec_example(rule: specs.Rule, data: Mapping[str, Any]) -> dict[str, Any]:
    """The ``examples`` entry for a counterexample: only the keys that change the case."""
    entry = {key: dict(data[key]) for key in ("shapes", "values") if data[key]}
    if "upstream" in data:
        entry["upstream"] = data["upstream"]
    implied = example_case(rule.given, entry, data["dtype"]).result
    if tuple(data["result"]) != tuple(implied):
        entry["result"] = data["result"]
    return entry


def is_new(rule: specs.Rule, entry: Mapping[str, Any], dtype: str) -> bool:
    """Whether no explicit example of ``rule`` already gives this case."""
    case = example_case(rule.given, entry, dtype)
    return not any(_same(case, example_case(rule.given, known, dtype)) for known in rule.examples)


def _same(a: Case, b: Case) -> bool:
    arrays = a.arrays.keys() == b.arrays.keys() and all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    upstream = a.upstream is None or b.upstream is None or np.array_equal(a.upstream, b.upstream)
    return arrays and upstream and a.result == b.result


def toml_inline(value: Any) -> str:
    """``value`` as an inline TOML value (floats keep their exact ``repr``)."""
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_inline(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def write(path: Path, header: str, failures: Iterable[tuple[specs.Rule, Mapping[str, Any]]]) -> int:
    """Write each new counterexample of ``failures`` (rule, failure record); returns how many."""
    lines = [f"# {header}", "# Paste each entry into the `examples` array of its rule, then run the gate.", ""]
    seen: set[tuple[str, str]] = set()
    for rule, failure in failures:
        entry = spec_example(rule, failure["counterexample"])
        text = toml_inline(entry)
        if (rule.id, text) in seen or not is_new(rule, entry, failure["counterexample"]["dtype"]):
            continue
        seen.add((rule.id, text))
        lines += [
            f"# {rule.id} ({rule.path}), found in {failure['counterexample']['dtype']}",
            f"# [{failure['kind']}] {failure['message'].splitlines()[0] if failure['message'] else ''}",
            f"{text},",
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return len(seen)
