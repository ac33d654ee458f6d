"""The rulebook (docs/rules/): every rule appears, the committed pages match the generator, and every
PyTorch example in it runs, so it never teaches code that does not work."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conformance import rulebook
from conformance.__main__ import main
from conformance.rulebook import torch_source
from conformance.spec import specs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "rules"
WITHOUT_EXAMPLE = {
    "properties.model.stateful": "the model template writes no script: it checks drawn sequences of steps",
}
"""Rules the rulebook shows without a PyTorch example, and why; any other such rule fails a test."""

RULES = specs.load()


@pytest.fixture(scope="module")
def areas() -> dict[str, list[rulebook.Entry]]:
    return rulebook.by_area(RULES)


@pytest.fixture(scope="module")
def entries(areas: dict[str, list[rulebook.Entry]]) -> dict[str, rulebook.Entry]:
    return {e.rule.id: e for group in areas.values() for e in group}


@pytest.mark.parametrize("rule_id", [r.id for r in RULES])
def test_example_runs_in_torch(entries: dict[str, rulebook.Entry], rule_id: str) -> None:
    torch = pytest.importorskip("torch")
    e = entries[rule_id]
    if rule_id in WITHOUT_EXAMPLE:
        assert e.code is None and e.problem, f"{rule_id} has an example now: drop it from WITHOUT_EXAMPLE"
        pytest.skip(WITHOUT_EXAMPLE[rule_id])
    assert e.code is not None, f"{rule_id}: {e.problem}"
    assert "np." not in e.code and "import torch" in e.code
    grad_mode = torch.is_grad_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. reading .grad of a non-leaf, which a rule shows
        exec(compile(e.code, f"<rulebook {rule_id}>", "exec"), {"__name__": "__rulebook__"})
    assert torch.is_grad_enabled() == grad_mode


def test_every_rule_is_in_the_committed_rulebook() -> None:
    pages = {p.name: p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")}
    for rule in RULES:
        assert f'<a id="{rule.id}"></a>' in pages.get(f"{rule.area}.md", ""), f"{rule.id} is not in docs/rules"
        assert f"({rule.area}.md#{rule.id})" in pages["index.md"]


def test_committed_rulebook_is_up_to_date(areas: dict[str, list[rulebook.Entry]]) -> None:
    expected = rulebook.markdown(areas)
    committed = {p.name: p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")}
    hint = f"regenerate it: {rulebook.REGENERATE}"
    assert sorted(committed) == sorted(expected), f"docs/rules has other pages than the specs' areas; {hint}"
    stale = [name for name in expected if committed[name] != expected[name]]
    assert not stale, f"docs/rules/{stale} differ from the specs; {hint}"


def test_raises_becomes_try_except_naming_what_torch_raises() -> None:
    script = "X = np.array([1.0, 2.0], dtype=np.float64).reshape((2,))\n"
    script += "x = tensor(X, requires_grad=True)\nwith raises('implicit_grad_nonscalar'):\n    backward(mul(x, 2.0))\n"
    code = torch_source.translate(script)
    assert "x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)" in code
    assert "try:\n    (x * 2.0).backward()\nexcept RuntimeError as error:\n    # expected: backward/grad" in code
    assert "re.search('grad can be implicitly created only for', str(error))" in code
    assert "else:\n    raise AssertionError(" in code


def test_untranslatable_construct_is_reported_not_crashed() -> None:
    with pytest.raises(torch_source.Untranslatable, match="NumPy on a tensor"):
        torch_source.translate("x = tensor(np.ones(3))\ny = np.sin(x)\n")


def test_rules_text_for_one_area(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--area", "detach"]) == 0
    out = capsys.readouterr().out
    assert "detach.grad.stops  [required]" in out
    assert not [line for line in out.splitlines() if line.startswith("leaf.")]
    assert "x.detach()" in out


def test_rules_html_writes_an_index_and_a_page_per_area(tmp_path: Path) -> None:
    assert main(["rules", "--format", "html", "--area", "end_to_end", "-o", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["end_to_end.html"]
    page = (tmp_path / "end_to_end.html").read_text(encoding="utf-8")
    assert 'id="end_to_end.sgd.linear-regression"' in page and "with torch.no_grad():" in page


def test_unknown_area_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["rules", "--area", "nowhere"])
    assert exit_info.value.code == 2 and "known: accumulation" in capsys.readouterr().err


def test_show_prints_file_line_template_needs_and_script(capsys: pytest.CaptureFixture[str]) -> None:
    rule = next(r for r in RULES if r.id == "broadcasting.grad.sum-to-input-shape")
    assert main(["show", rule.id]) == 0
    out = capsys.readouterr().out
    path, line = rulebook.locate(rule)
    assert line is not None and f'id = "{rule.id}"' in path.read_text(encoding="utf-8").splitlines()[line - 1]
    assert f"broadcasting.toml:{line}" in out
    assert "template: gradient" in out and "needs:    stateful" in out
    assert "backward(out, tensor(UPSTREAM))" in out


def test_show_unknown_id_names_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["show", "broadcasting.grad.sum-to-input-shap"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "unknown rule id" in err and "closest: broadcasting.grad.sum-to-input-shape" in err


def test_rulebook_commands_do_not_load_pytest() -> None:
    code = "import sys; from conformance.__main__ import main; main(['show', 'detach.grad.stops']); "
    code += "assert 'pytest' not in sys.modules, 'pytest imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
