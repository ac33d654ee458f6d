"""The pytest plugin: ``pytest conformance --backend=NAME``.

Registered through the ``pytest11`` entry point, so it is active wherever the package is
installed. It adds the options and checks every value before a test runs (a bad one is a usage
error), registers the Hypothesis profiles, resolves and validates the backend, loads the specs,
prints the run header, generates one test per (rule, dtype), and turns each rule's outcome
(``conformance.execute.runner``) into a pass, a skip (unsupported) or a failure with its repro.

Isolation: by default the checks run in a pytest-xdist worker process (``-n 1`` when no ``-n`` is
given) under a pytest-timeout limit, so an engine that crashes the process or hangs fails that one
check, which the results collector records as ``crashed`` or ``timeout``, and the run goes on.
"""

from __future__ import annotations

import gc
import random
import shlex
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

import conformance
from conformance import backends, templates
from conformance.backends import protocol
from conformance.draw import strategies
from conformance.execute import failures, repro, runner
from conformance.spec import specs
from conformance.verdict.gate import Gate

pytest_plugins = ["conformance.pytest_plugin.collector"]
"""The results collector, registered with this plugin: one entry point for the suite."""

_COMMON = {
    "deadline": None,
    "report_multiple_bugs": False,
    # Hypothesis's explain phase reruns a shrunk failure many times to annotate its source lines; a failure here
    # is reported by its case and script, so that would be time (minutes on a slow engine) for nothing.
    "phases": [p for p in Phase if p is not Phase.explain],
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
}
PROFILES = {
    "gate": {"max_examples": 8, "derandomize": True, "database": None},
    "dev": {"max_examples": 16, "database": DirectoryBasedExampleDatabase(".hypothesis/conformance")},
    "thorough": {"max_examples": 128, "database": DirectoryBasedExampleDatabase(".hypothesis/conformance")},
}
"""gate: the CI verdict, derandomized and with no database, so it depends only on the suite,
spec and backend versions. dev: random seeds, failures remembered. thorough: exploration.
``max_examples`` counts Hypothesis examples, each a batch of ``CASES_PER_EXAMPLE`` (4) cases: 32, 64, 512."""
for _name, _values in PROFILES.items():
    settings.register_profile(f"conformance-{_name}", **_COMMON, **_values)

DTYPES = ("float32", "float64")
"""The dtypes a run checks unless ``--dtypes`` says otherwise."""
DEFAULT_TIMEOUT = 120.0
"""Seconds one (rule, dtype) check may take by default: far above any shipped engine's slowest check."""
MAX_WORKER_RESTARTS = "100000"
"""xdist stops restarting crashed workers after a cap (4 per worker by default), which would leave
unrelated rules unrun: every crash is one check's failure, so the cap is effectively lifted."""
STASH = pytest.StashKey["Run"]()
OUTCOME = pytest.StashKey[runner.Outcome]()
"""Set on each rule's test item: what the results file and the report record about it."""


@dataclass
class Run:
    """What one conformance run is: backend, device, dtypes, rules, profile, seed, isolation."""

    adapter: Any
    device: str
    dtypes: list[str]
    rules: list[specs.Rule]
    spec_version: str
    profile: str
    seed: int | None
    repro_dir: Path
    args: str
    isolated: bool = False
    timeout: float = DEFAULT_TIMEOUT
    worker: str = "main"
    """The xdist worker id: names this process's in-flight file."""
    hypothesis_settings: settings | None = None
    """Overrides the loaded profile (the suite's own tests use it)."""
    shape_pool: int | None = None
    """``--shape-pool``: each rule draws its shapes from this many shape sets (for compile-per-shape engines)."""
    gate: Gate = field(default_factory=Gate)
    """The gate with ``--findings``: set by the results collector; its findings excuse cases (``runner.check``)."""

    def check(self, rule: specs.Rule, dtype: str, stash: pytest.Stash | None = None) -> runner.Outcome:
        """Run one rule in one dtype: skip when unsupported, fail with a repro on divergence.

        The outcome goes on ``stash`` (the test item's) first, so the results collector finds it.
        """
        inflight = self.inflight(self.worker) if self.isolated else None
        if inflight is not None:
            inflight.parent.mkdir(parents=True, exist_ok=True)
        outcome = runner.check(
            self.adapter,
            rule,
            dtype,
            self.device,
            self.seed,
            self.hypothesis_settings,
            inflight,
            shape_pool=self.shape_pool,
            findings=self.gate.findings,
        )
        if stash is not None:
            stash[OUTCOME] = outcome
        self.conclude(outcome)
        return outcome

    def inflight(self, worker: str) -> Path:
        """Where a worker writes the case it is running, so its crash or hang still gets a repro."""
        return self.repro_dir / self.adapter.name / ".inflight" / f"{worker}.pickle"

    def conclude(self, outcome: runner.Outcome) -> None:
        """Skip an unsupported rule; fail a diverging one, with its repro written; an excused one is xfailed."""
        if outcome.missing:
            pytest.skip(f"unsupported: {self.adapter.name} lacks {', '.join(outcome.missing)}")
        shown = outcome.failure or outcome.expected
        if shown is not None:
            outcome.replay = self.replay(outcome.rule, outcome.dtype)
            outcome.repro_path, outcome.repro = repro.write(
                self.repro_dir, self.adapter, outcome.rule, shown, self.device, outcome.replay
            )
        if outcome.failure is not None:
            pytest.fail(self.explain(outcome), pytrace=False)
        if outcome.excused:
            pytest.xfail(", ".join(f"{key} ({n} cases)" for key, n in sorted(outcome.excused.items())))

    def replay(self, rule: specs.Rule, dtype: str) -> str:
        return f"pytest {self.args} --dtypes={dtype} -k {shlex.quote(rule.id)}"

    def seed_text(self, rule: specs.Rule, dtype: str) -> str:
        if self.seed is None:
            return f"{runner.rule_seed(rule, dtype)} (the gate's, fixed per rule)"
        return str(self.seed)

    def explain(self, outcome: runner.Outcome) -> str:
        failure, rule = outcome.failure, outcome.rule
        assert failure is not None
        return (
            f"rule {rule.id} [{rule.level}] failed on {self.adapter.name}\n"
            f"  statement: {rule.statement}\n"
            f"  diverged:  [{failure.kind}] {failure.detail}\n"
            f"  at line:   {failure.line}\n"
            f"  example:   {failure.case!r}\n"
            f"  profile:   {self.profile}, seed {self.seed_text(rule, outcome.dtype)}\n"
            f"  replay:    {outcome.replay}\n"
            f"  repro:     python {outcome.repro_path}  (engine alone)\n"
            f"---- script ----\n{failure.script}"
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "autograd conformance")
    group.addoption("--backend", help="engine to test: a built-in name, an entry point, or module:Class")
    group.addoption("--device", default="cpu", help="device to run on (default: cpu); one of the adapter's devices()")
    group.addoption("--dtypes", default=",".join(DTYPES), help=f"comma-separated dtypes (default: {','.join(DTYPES)})")
    group.addoption("--specs", action="append", type=Path, help="spec file or directory (default: the shipped specs)")
    group.addoption(
        "--conformance-profile",
        default="gate",
        choices=sorted(PROFILES),
        help="gate (CI verdict, derandomized), dev, or thorough",
    )
    group.addoption(
        "--repro-dir",
        type=Path,
        default=Path(".conformance/repro"),
        help="where reproduction scripts of failures are written",
    )
    group.addoption(
        "--isolate",
        default="process",
        choices=("process", "none"),
        help="process (default): checks run in pytest-xdist workers, so a crash or a hang fails one check; "
        "none: in this process (for debugging; a crash or a hang then ends the run)",
    )
    group.addoption(
        "--shape-pool",
        default=None,
        metavar="K",
        help="draw each rule's shapes from K shape sets fixed per rule (the simplest, one with a size-0 dim, the "
        "largest, ...) while values vary: for engines that compile per fresh shape (JAX, tinygrad). Default: "
        "fresh shapes for every case",
    )
    group.addoption(
        "--check-timeout",
        default=str(DEFAULT_TIMEOUT),
        help=f"seconds one (rule, dtype) check may take before it fails as timed out (default {DEFAULT_TIMEOUT:g})",
    )


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(message)


def _targets_suite(config: pytest.Config) -> bool:
    """Whether the command line names the conformance tests (a path inside the package, or --pyargs)."""
    package = Path(conformance.__file__).resolve().parent
    for arg in config.args:
        target = arg.split("::")[0]
        if target == "conformance" or target.startswith("conformance."):
            return True
        path = Path(config.invocation_params.dir, target).resolve()
        if path == package or package in path.parents:
            return True
    return False


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, Any, Any]:
    """Before pytest-xdist reads its options: isolate the checks in a worker unless told otherwise."""
    option = config.option
    if (
        not hasattr(config, "workerinput")  # a worker runs its checks itself
        and getattr(option, "backend", None)
        and option.isolate == "process"
        and config.pluginmanager.hasplugin("xdist")
        and not config.getoption("usepdb", False)
    ):
        if getattr(option, "numprocesses", None) is None:
            option.numprocesses = 1
        if getattr(option, "maxworkerrestart", None) is None:
            option.maxworkerrestart = MAX_WORKER_RESTARTS
        if getattr(option, "dist", "no") == "no":  # no --dist given: an idle worker takes checks from a busy one
            option.dist = "worksteal"
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    for level in specs.LEVELS:
        config.addinivalue_line("markers", f"{level}: rules of level {level}")
    name = config.getoption("backend")
    if not name:
        if _targets_suite(config):
            raise _usage("pytest conformance needs --backend; available: " + ", ".join(sorted(backends.available())))
        return
    run = _configure_run(config, name)
    for area in sorted({r.area for r in run.rules}):
        config.addinivalue_line("markers", f"{area}: rules of the {area} area")
    failures.watch_interrupts()
    config.stash[STASH] = run


def _configure_run(config: pytest.Config, name: str) -> Run:
    """Every option checked, and the adapter validated, before a test runs."""
    try:
        adapter = backends.resolve(name)
    except backends.UnknownBackend as exc:
        raise _usage(str(exc)) from exc
    problems = protocol.validate(adapter)
    if problems:
        raise _usage(
            f"backend {name!r} ({type(adapter).__qualname__}) breaks the adapter protocol:\n  " + "\n  ".join(problems)
        )
    try:
        rules = templates.load(config.getoption("specs"))
    except (specs.SpecError, FileNotFoundError) as exc:
        raise _usage(f"invalid specs: {exc}") from exc
    if not rules:
        raise _usage(f"--specs {config.getoption('specs')}: no rules found; nothing would be checked")
    dtypes = [d.strip() for d in config.getoption("dtypes").split(",") if d.strip()]
    if not dtypes:
        raise _usage(f"--dtypes is empty; known: {', '.join(specs.DTYPES)}")
    unknown = [d for d in dtypes if d not in specs.DTYPES]
    if unknown:
        raise _usage(f"unknown dtypes {unknown}; known: {', '.join(specs.DTYPES)}")
    if not any(d == "float32" or d in adapter.capabilities for d in dtypes):
        raise _usage(f"{adapter.name} has none of the dtypes {dtypes}: every rule would be unsupported")
    device = config.getoption("device")
    devices = list(adapter.devices())
    if device not in devices:
        raise _usage(f"--device {device!r} is not available to {adapter.name} here; available: {', '.join(devices)}")
    try:
        timeout = float(config.getoption("check_timeout"))
    except ValueError:
        timeout = -1.0
    if not timeout >= 0:
        raise _usage(
            f"--check-timeout must be a number of seconds (0: no limit), got {config.getoption('check_timeout')!r}"
        )
    shape_pool = config.getoption("shape_pool")
    if shape_pool is not None:
        if not (shape_pool.isdigit() and int(shape_pool) >= 1):
            raise _usage(f"--shape-pool must be a whole number of shape sets (at least 1), got {shape_pool!r}")
        shape_pool = int(shape_pool)
    profile = config.getoption("conformance_profile")
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(f"conformance-{profile}")
    seed = config.getoption("hypothesis_seed", None)
    if seed is not None:
        try:
            seed = int(seed)
        except ValueError:
            raise _usage(f"--hypothesis-seed must be an integer, got {seed!r}") from None
    elif profile != "gate":
        worker = getattr(config, "workerinput", {})
        seed = worker.get("conformance_seed", random.randrange(2**32))
    # next to Hypothesis's own folder, where a run is started: drawn by the first run on this machine, read after
    strategies.keep_pools(Path(config.invocation_params.dir, ".hypothesis", "conformance-pools"))
    args = f"conformance --backend={name} --device={device} --conformance-profile={profile}"
    if seed is not None:
        args += f" --hypothesis-seed={seed}"
    if shape_pool is not None:
        args += f" --shape-pool={shape_pool}"
    return Run(
        adapter=adapter,
        device=device,
        dtypes=dtypes,
        rules=rules,
        spec_version=specs.spec_version(config.getoption("specs")),
        profile=profile,
        seed=seed,
        repro_dir=config.getoption("repro_dir"),
        args=args,
        isolated=hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", 0)),
        timeout=timeout,
        worker=getattr(config, "workerinput", {}).get("workerid", "main"),
        shape_pool=shape_pool,
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Under pytest-xdist, every worker draws with the controller's seed."""
    run = node.config.stash.get(STASH, None)
    if run is not None and run.seed is not None:
        node.workerinput["conformance_seed"] = run.seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash.get(STASH, None)
    if run is None:
        return []
    seed = "fixed per rule (gate)" if run.seed is None else f"{run.seed} (replay with --hypothesis-seed={run.seed})"
    isolation = (
        f"each check in a worker process, {run.timeout:g} s limit"
        if run.isolated
        else "none (a crash or a hang ends the run)"
    )
    return [
        f"conformance {conformance.__version__}: backend {run.adapter.name} {run.adapter.engine_version()}, "
        f"device {run.device}, dtypes {','.join(run.dtypes)}",
        f"conformance: {len(run.rules)} rules, spec version {run.spec_version}, "
        f"profile {run.profile} (hypothesis {hypothesis.__version__}), seed {seed}"
        + ("" if run.shape_pool is None else f", shapes from {run.shape_pool} sets per rule (--shape-pool)"),
        f"conformance: isolation: {isolation}",
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rule" not in metafunc.fixturenames:
        return
    run = metafunc.config.stash.get(STASH, None)
    if run is None:
        raise _usage("pytest conformance needs --backend; available: " + ", ".join(sorted(backends.available())))
    params = [
        pytest.param(
            rule,
            dtype,
            id=f"{rule.id}-{dtype}",
            marks=[getattr(pytest.mark, rule.area), getattr(pytest.mark, rule.level)],
        )
        for rule in run.rules
        for dtype in rule.dtypes
        if dtype in run.dtypes
    ]
    metafunc.parametrize(("rule", "dtype"), params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each check under a pytest-timeout limit; the thread method also ends a hang in native code."""
    run = config.stash.get(STASH, None)
    if run is None or not run.timeout:
        return
    for item in items:
        if "rule" in getattr(getattr(item, "callspec", None), "params", {}):
            item.add_marker(pytest.mark.timeout(run.timeout, method="thread"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is loaded by now (the modules, the engine, the catalog) lives as long as the run: frozen, the cyclic
    garbage collector stops walking it on every full collection and at exit (a tenth of a torch run, measured)."""
    if STASH in session.config.stash:
        gc.freeze()


@pytest.fixture
def conformance_run(request: pytest.FixtureRequest) -> Run:
    return request.config.stash[STASH]
