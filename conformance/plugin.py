"""The pytest plugin: ``pytest conformance --backend=NAME``.

Registered through the ``pytest11`` entry point, so it is active wherever the package is
installed. It adds the options, registers the Hypothesis profiles, resolves the backend, loads
the specs, prints the run header and generates one test per (rule, dtype).
"""

from __future__ import annotations

import hashlib
import random
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase

import conformance
from conformance import backends, repro, specs
from conformance.runner import RuleFailure, run_case
from conformance.strategies import example_case
from conformance.templates import TEMPLATES

_COMMON = {
    "deadline": None,
    "report_multiple_bugs": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
}
PROFILES = {
    "gate": {"max_examples": 25, "derandomize": True, "database": None},
    "dev": {"max_examples": 50, "database": DirectoryBasedExampleDatabase(".hypothesis/conformance")},
    "thorough": {"max_examples": 500, "database": DirectoryBasedExampleDatabase(".hypothesis/conformance")},
}
"""gate: the CI verdict, derandomized and with no database, so it depends only on the suite,
spec and backend versions. dev: random seeds, failures remembered. thorough: exploration."""
for _name, _values in PROFILES.items():
    settings.register_profile(f"conformance-{_name}", **_COMMON, **_values)

STASH = pytest.StashKey["Run"]()
OUTCOME = pytest.StashKey["Outcome"]()
"""Set on each rule's test item: what the results file and the report record about it."""


@dataclass
class Outcome:
    """Structured facts about one (rule, dtype) test beyond pytest's passed/failed/skipped."""

    rule: specs.Rule
    dtype: str
    missing: list[str] = field(default_factory=list)
    """Capabilities (or the device) the engine lacks: the rule is unsupported."""
    failure: RuleFailure | None = None
    repro_path: Path | None = None
    replay: str = ""
    examples: int = 0
    """Cases run: explicit, generated and shrinking."""


@dataclass
class Run:
    """What one conformance run is: backend, device, dtypes, rules, profile, seed."""

    adapter: Any
    device: str
    dtypes: list[str]
    rules: list[specs.Rule]
    spec_version: str
    profile: str
    seed: int | None
    repro_dir: Path
    args: str
    hypothesis_settings: settings | None = None
    """Overrides the loaded profile (the suite's own tests use it)."""

    def check(self, rule: specs.Rule, dtype: str, outcome: Outcome) -> None:
        """Run one rule in one dtype through Hypothesis; fail with a repro on divergence."""
        needs = [*rule.all_needs(), dtype]
        outcome.missing = [n for n in needs if n not in self.adapter.capabilities and n != "float32"]
        if outcome.missing:
            pytest.skip(f"unsupported: {self.adapter.name} lacks {', '.join(outcome.missing)}")
        if self.device not in self.adapter.devices():
            outcome.missing = [f"device:{self.device}"]
            pytest.skip(f"unsupported: device {self.device!r} is not available to {self.adapter.name} here")
        template = TEMPLATES[rule.template]

        def prop(case: Any) -> None:
            outcome.examples += 1
            run_case(self.adapter, rule, case, self.device)

        # Every rule shares this inner function: key Hypothesis's database and seed per rule.
        prop._hypothesis_internal_add_digest = f"{rule.id}/{dtype}".encode()  # type: ignore[attr-defined]
        test = given(template.strategy(rule, [dtype]))(prop)
        if self.hypothesis_settings is not None:
            test = self.hypothesis_settings(test)
        for raw in reversed(rule.examples):
            test = example(template.example(rule, example_case(rule.given, raw, dtype)))(test)
        test = hypothesis.seed(self.seed if self.seed is not None else rule_seed(rule, dtype))(test)
        try:
            test()
        except RuleFailure as failure:
            outcome.failure = failure
        if outcome.failure is not None:
            outcome.replay = f"pytest {self.args} --dtypes={dtype} -k {shlex.quote(rule.id)}"
            outcome.repro_path = repro.write(self.repro_dir, self.adapter, outcome.failure, self.device, outcome.replay)
            pytest.fail(self.explain(outcome.failure, outcome.repro_path, outcome.replay), pytrace=False)

    def explain(self, failure: RuleFailure, path: Path, replay: str) -> str:
        rule = failure.rule
        seed = (
            f"{rule_seed(rule, failure.case.dtype)} (the gate's, fixed per rule)"
            if self.seed is None
            else str(self.seed)
        )
        return (
            f"rule {rule.id} [{rule.level}] failed on {self.adapter.name}\n"
            f"  statement: {rule.statement}\n"
            f"  diverged:  [{failure.kind}] {failure.detail}\n"
            f"  at line:   {failure.line}\n"
            f"  example:   {failure.case!r}\n"
            f"  profile:   {self.profile}, seed {seed}\n"
            f"  replay:    {replay}\n"
            f"  repro:     python {path}  (engine alone)\n"
            f"---- script ----\n{failure.script}"
        )


def rule_seed(rule: specs.Rule, dtype: str) -> int:
    """The gate's seed for one rule: a digest of its id and dtype, so the cases it draws depend only on
    the rule, the spec and Hypothesis, never on the suite's incidental source code."""
    return int.from_bytes(hashlib.sha256(f"{rule.id}/{dtype}".encode()).digest()[:8], "big")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "autograd conformance")
    group.addoption("--backend", help="engine to test: a built-in name, an entry point, or module:Class")
    group.addoption("--device", default="cpu", help="device to run on (default: cpu)")
    group.addoption("--dtypes", default="float32,float64", help="comma-separated dtypes (default: float32,float64)")
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


def pytest_configure(config: pytest.Config) -> None:
    for level in specs.LEVELS:
        config.addinivalue_line("markers", f"{level}: rules of level {level}")
    name = config.getoption("backend")
    if not name:
        if _targets_suite(config):
            raise _usage("pytest conformance needs --backend; available: " + ", ".join(sorted(backends.available())))
        return
    try:
        adapter = backends.resolve(name)
    except backends.UnknownBackend as exc:
        raise _usage(str(exc)) from exc
    try:
        rules = specs.load(config.getoption("specs"))
    except (specs.SpecError, FileNotFoundError) as exc:
        raise _usage(f"invalid specs: {exc}") from exc
    for area in sorted({r.area for r in rules}):
        config.addinivalue_line("markers", f"{area}: rules of the {area} area")
    dtypes = [d.strip() for d in config.getoption("dtypes").split(",") if d.strip()]
    unknown = [d for d in dtypes if d not in specs.DTYPES]
    if unknown:
        raise _usage(f"unknown dtypes {unknown}; known: {', '.join(specs.DTYPES)}")
    profile = config.getoption("conformance_profile")
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(f"conformance-{profile}")
    seed = config.getoption("hypothesis_seed", None)
    if seed is None and profile != "gate":
        worker = getattr(config, "workerinput", {})
        seed = worker.get("conformance_seed", random.randrange(2**32))
    args = f"conformance --backend={name} --device={config.getoption('device')} --conformance-profile={profile}"
    if seed is not None:
        args += f" --hypothesis-seed={seed}"
    config.stash[STASH] = Run(
        adapter=adapter,
        device=config.getoption("device"),
        dtypes=dtypes,
        rules=rules,
        spec_version=specs.spec_version(config.getoption("specs")),
        profile=profile,
        seed=None if seed is None else int(seed),
        repro_dir=config.getoption("repro_dir"),
        args=args,
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
    return [
        f"conformance {conformance.__version__}: backend {run.adapter.name} {run.adapter.engine_version()}, "
        f"device {run.device}, dtypes {','.join(run.dtypes)}",
        f"conformance: {len(run.rules)} rules, spec version {run.spec_version}, "
        f"profile {run.profile} (hypothesis {hypothesis.__version__}), seed {seed}",
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


@pytest.fixture
def conformance_run(request: pytest.FixtureRequest) -> Run:
    return request.config.stash[STASH]


@pytest.fixture
def outcome(request: pytest.FixtureRequest, rule: specs.Rule, dtype: str) -> Outcome:
    """Where the test records its structured outcome, on the item's stash."""
    request.node.stash[OUTCOME] = Outcome(rule, dtype)
    return request.node.stash[OUTCOME]
