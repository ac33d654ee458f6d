"""The stateful model: random step sequences over the engine's stateful layer obey the rules."""

from __future__ import annotations

import pytest
from hypothesis import seed, settings
from hypothesis.stateful import run_state_machine_as_test

from conformance.adapter import missing_capabilities
from conformance.model import machine_for
from conformance.plugin import Run

STEPS = 50
"""Steps per drawn sequence: long enough to reach freed graphs and stale saved tensors."""
GATE_SEED = 20261122


def check_model(run: Run) -> None:
    """Run the state machine against ``run``'s adapter; a divergence raises ``ModelFailure``."""
    machine = machine_for(run.adapter, run.dtypes, run.device)
    base = run.hypothesis_settings or settings.default
    # An explicit seed, like every rule's: the sequences drawn must not depend on incidental state.
    machine = seed(GATE_SEED if run.seed is None else run.seed)(machine)
    run_state_machine_as_test(machine, settings=settings(base, stateful_step_count=STEPS))


def test_model(conformance_run: Run) -> None:
    """Leaves, ops, detach, grad modes, retain_grad, backward (retained, create_graph, inputs=),
    zeroing and clearing grads and in-place SGD steps keep every live tensor as the rules predict."""
    missing = missing_capabilities(conformance_run.adapter, ["stateful"])
    if missing:
        pytest.skip(f"unsupported: {conformance_run.adapter.name} lacks {', '.join(missing)}")
    check_model(conformance_run)
