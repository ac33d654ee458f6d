"""Shared fixtures for the suite's own tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, settings

from conformance import templates
from conformance.execute.runner import Outcome
from conformance.pytest_plugin.plugin import OUTCOME, Run
from conformance.spec import specs

# Proving a rule can fail needs a failure, not a shrunk one: skip the shrink phase.
settings.register_profile(
    "suite-can-fail", parent=settings.get_profile("conformance-gate"), phases=[Phase.explicit, Phase.generate]
)


def make_run(adapter: Any, repro_dir: Path, rules: list[specs.Rule] | None = None) -> Run:
    """A conformance run object, as the plugin builds it, for calling ``check`` directly."""
    return Run(
        adapter=adapter,
        device="cpu",
        dtypes=list(specs.DTYPES),
        rules=rules if rules is not None else templates.load(),
        spec_version="test",
        profile="gate",
        seed=None,
        repro_dir=repro_dir,
        args="conformance --backend=test",
        hypothesis_settings=settings.get_profile("suite-can-fail"),
    )


def check_rule(adapter: Any, rule: specs.Rule, dtype: str, repro_dir: Path) -> Outcome:
    """Run one rule in-process; returns its outcome (``failure`` set when it failed)."""
    stash = pytest.Stash()
    try:
        make_run(adapter, repro_dir, [rule]).check(rule, dtype, stash)
    except pytest.fail.Exception:
        assert stash[OUTCOME].failure is not None
    except pytest.skip.Exception:
        pass
    return stash[OUTCOME]


@pytest.fixture(scope="session")
def rules() -> dict[str, specs.Rule]:
    return {r.id: r for r in templates.load()}
