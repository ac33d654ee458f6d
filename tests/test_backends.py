"""Resolving --backend: built-ins, module:Class, and a clear error listing the known backends."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import backends
from conformance.backends.protocol import Adapter
from conformance.backends.pytorch import TorchAdapter
from conformance.vocabulary import CAPABILITIES, ERROR_MEANINGS, OPS

ROOT = Path(__file__).resolve().parent.parent


def test_builtin_and_module_class() -> None:
    assert isinstance(backends.resolve("torch"), TorchAdapter)
    broken = backends.resolve("tests.broken.broadcasting:MulGradNotReduced")
    assert isinstance(broken, TorchAdapter) and type(broken).__name__ == "MulGradNotReduced"


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(backends.UnknownBackend, match=r"unknown backend 'nope'; available: .*numpy.*torch"):
        backends.resolve("nope")
    with pytest.raises(backends.UnknownBackend, match="could not be imported"):
        backends.resolve("no_such_module:Adapter")
    with pytest.raises(backends.UnknownBackend, match="has no 'Missing'"):
        backends.resolve("conformance.backends.pytorch:Missing")


def test_torch_adapter_follows_the_protocol() -> None:
    adapter = TorchAdapter()
    assert isinstance(adapter, Adapter)
    assert adapter.capabilities <= set(CAPABILITIES)
    assert set(adapter.errors) <= set(ERROR_MEANINGS)
    assert all(hasattr(adapter.ops, op) for op in OPS)


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_entry_point_backends_are_listed_and_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    plugin = EntryPoint("brokenmul", "tests.broken.broadcasting:MulGradNotReduced", backends.GROUP)
    monkeypatch.setattr(backends, "entry_points", lambda group: [plugin] if group == backends.GROUP else [])
    assert "brokenmul" in backends.available()
    assert type(backends.resolve("brokenmul")).__name__ == "MulGradNotReduced"


@pytest.mark.parametrize("args", [["--backend=nope"], []], ids=["unknown", "missing"])
def test_cli_backend_usage_errors_list_the_available_ones(args: list[str]) -> None:
    result = run_pytest("conformance", *args)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "available: " + ", ".join(sorted(backends.available())) in result.stderr


def test_cli_loads_a_broken_adapter_and_writes_a_runnable_repro(tmp_path: Path) -> None:
    result = run_pytest(
        "conformance",
        "--backend=tests.broken.broadcasting:MulGradNotReduced",
        "--dtypes=float32",
        "--specs=specs/broadcasting.toml",
        "-k",
        "sum-to-input-shape",
        f"--repro-dir={tmp_path}",
    )
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout[-2000:]
    assert "rule broadcasting.grad.sum-to-input-shape [required] failed" in result.stdout
    assert "(the gate's, fixed per rule)" in result.stdout
    (repro,) = tmp_path.glob("*/*.py")
    standalone = subprocess.run(
        [sys.executable, str(repro)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "PYTHONPATH": ""},
    )
    assert standalone.returncode != 0
    assert "ConformanceFailure: [value]" in standalone.stderr
    assert not re.search(r"^\s*(from|import) (conformance|tests)\b", repro.read_text(), re.MULTILINE)


def test_cli_unavailable_device_is_a_usage_error() -> None:
    """No GPU here: --device=cuda is refused before any test runs, naming the devices there are."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the rules run on it instead")
    result = run_pytest(
        "conformance", "--backend=torch", "--device=cuda", "--specs=specs/broadcasting.toml", "-k", "test_rule"
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout[-2000:]
    assert "--device 'cuda' is not available to torch here; available: cpu" in result.stderr
