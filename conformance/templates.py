"""The property templates: each turns a rule and one drawn case into a script.

A script (``literal.Script``) is a few lines in the runtime vocabulary (``runtime``), the same for
every case of a rule, and the case's constants: its inputs and the oracle's expectations. The runner
executes the body with the constants bound; a failure's reproduction file is the same script, its
constants written out as literals, behind the inlined adapter and runtime. The templates:

* ``forward``  - the program's output (dtype, shape, values) equals the oracle's;
* ``gradient`` - each input's gradient equals the oracle's VJP (cross-checked by finite
  differences), through ``backward``, ``grad`` or the functional ``vjp``;
* ``raises``   - the program raises the error the adapter maps to a meaning;
* ``scenario`` - hand-written steps with ``expect_*`` checks and named oracle expectations.
"""

from __future__ import annotations

import abc
import ast
import dataclasses
import functools
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance import oracle
from conformance.draw.model import ModelTemplate
from conformance.draw.programs import ProgramTemplate
from conformance.draw.strategies import Case, cases, fill, more_values, representable
from conformance.spec import language, specs
from conformance.spec.literal import Script
from conformance.spec.specs import COMMON_FIELDS, VOCABULARY, Rule, SpecError
from conformance.vocabulary import ERROR_MEANINGS, OPS


class OracleError(RuntimeError):
    """The oracle disagrees with itself (its VJP with finite differences): a bug in the suite."""


def _inputs(case: Case) -> dict[str, Any]:
    """Drawn arrays by their script names (upper case), plus the broadcast result shape."""
    return {**{k.upper(): v for k, v in case.arrays.items()}, "RESULT": case.result}


def _oracle_inputs(case: Case) -> dict[str, Any]:
    """The program's inputs for the oracle: arrays by their program names, and ``RESULT``."""
    return {**case.arrays, "RESULT": case.result}


class Template(abc.ABC):
    """Base: the fields a template takes, its implied needs, its strategy and its script."""

    fields: dict[str, bool] = {}
    """Template argument -> required."""
    code_field = "program"
    """The field a language error is reported against."""

    def needs(self, rule: Rule) -> list[str]:
        return []

    def ops(self, rule: Rule) -> frozenset[str]:
        """The catalog ops the rule's code calls: an engine without one of them cannot run it."""
        code = textwrap.dedent(rule.args.get(self.code_field, ""))
        return frozenset(n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and n.id in OPS)

    def validate(self, rule: Rule) -> None:
        program = rule.args.get("program")
        if program is not None:
            if not isinstance(program, str):
                raise SpecError(rule.path, rule.id, "program", "must be a string")
            known = VOCABULARY | set(rule.given.names) | {n.upper() for n in rule.given.names}
            language.compile_expression(program, frozenset(known))

    def strategy(self, rule: Rule, dtypes: list[str]) -> st.SearchStrategy[Case]:
        return cases(rule.given, dtypes)

    def example(self, rule: Rule, case: Case) -> Case:
        """Complete an explicit example (e.g. with an upstream gradient)."""
        return case

    @abc.abstractmethod
    def script(self, rule: Rule, case: Case) -> Script:
        """The rule's script on ``case``: inputs and oracle expectations as constants, then the steps
        (the same body for every case of a rule, so it is compiled once)."""

    def _leaves(self, rule: Rule, requires_grad: set[str]) -> str:
        return "".join(f"{n} = tensor({n.upper()}, requires_grad={n in requires_grad})\n" for n in rule.given.names)


class Forward(Template):
    fields = {"program": True, "requires_grad": False}

    def script(self, rule: Rule, case: Case) -> Script:
        expected = oracle.value(rule.args["program"], **_oracle_inputs(case))
        grad_names = set(rule.given.names) if rule.args.get("requires_grad") else set()
        body = self._leaves(rule, grad_names) + f"out = {rule.args['program']}\nexpect_close(out, EXPECTED)\n"
        return Script({**_inputs(case), "EXPECTED": expected}, body)


class Raises(Template):
    fields = {"program": True, "error": True, "requires_grad": False}

    def validate(self, rule: Rule) -> None:
        super().validate(rule)
        if rule.args["error"] not in ERROR_MEANINGS:
            raise SpecError(rule.path, rule.id, "error", f"unknown meaning; known: {sorted(ERROR_MEANINGS)}")
        names = rule.args.get("requires_grad", [])
        if not (isinstance(names, list) and set(names) <= set(rule.given.names)):
            raise SpecError(rule.path, rule.id, "requires_grad", f"must list names from {list(rule.given.names)}")

    def script(self, rule: Rule, case: Case) -> Script:
        body = self._leaves(rule, set(rule.args.get("requires_grad", [])))
        return Script(_inputs(case), body + f"with raises({rule.args['error']!r}):\n    {rule.args['program']}\n")


class Gradient(Template):
    fields = {"program": True, "via": False, "wrt": False, "upstream": False}
    VIAS = {"backward": ["stateful"], "grad": ["stateful", "autograd_grad"], "vjp": []}

    def needs(self, rule: Rule) -> list[str]:
        return self.VIAS[rule.args.get("via", "backward")]

    def validate(self, rule: Rule) -> None:
        super().validate(rule)
        if rule.args.get("via", "backward") not in self.VIAS:
            raise SpecError(rule.path, rule.id, "via", f"must be one of {sorted(self.VIAS)}")
        if rule.args.get("upstream", "drawn") not in ("drawn", "implicit"):
            raise SpecError(rule.path, rule.id, "upstream", "must be 'drawn' or 'implicit'")
        if not set(self._wrt(rule)) <= set(rule.given.names):
            raise SpecError(rule.path, rule.id, "wrt", f"must list names from {list(rule.given.names)}")

    def _wrt(self, rule: Rule) -> list[str]:
        return list(rule.args.get("wrt", rule.given.names))

    def _out_shape(self, rule: Rule, case: Case) -> tuple[int, ...]:
        shapes = tuple((name, a.shape) for name, a in case.arrays.items())
        return _output_shape(rule.args["program"], shapes, case.result)

    def strategy(self, rule: Rule, dtypes: list[str]) -> st.SearchStrategy[Case]:
        base = cases(rule.given, dtypes)
        if rule.args.get("upstream", "drawn") == "implicit":
            return base

        def with_upstream(case: Case) -> Case:
            return dataclasses.replace(case, upstream=more_values(case, self._out_shape(rule, case), "real"))

        return base.map(with_upstream)

    def example(self, rule: Rule, case: Case) -> Case:
        if rule.args.get("upstream", "drawn") == "implicit" or case.upstream is not None:
            return case
        return dataclasses.replace(case, upstream=representable(fill(self._out_shape(rule, case), "real"), case.dtype))

    def expected(self, rule: Rule, case: Case) -> dict[str, np.ndarray]:
        """The oracle's VJP, checked against finite differences when the program is smooth."""
        program = rule.args["program"]
        grads = oracle.vjp(program, case.upstream, **_oracle_inputs(case))
        if oracle.is_smooth(program):
            _cross_check(program, case, grads)
        return grads

    def script(self, rule: Rule, case: Case) -> Script:
        program, via, wrt = rule.args["program"], rule.args.get("via", "backward"), self._wrt(rule)
        grads = self.expected(rule, case)
        constants = {**_inputs(case), **{f"EXPECTED_{n.upper()}": grads[n] for n in wrt}}
        cotangent = "None"
        if case.upstream is not None:
            constants["UPSTREAM"] = case.upstream
            cotangent = "tensor(UPSTREAM)"
        text = ""
        if via == "vjp":
            text += self._leaves(rule, set())
            cot = cotangent if case.upstream is not None else "tensor(np.ones(shape(out)))"
            text += f"out = {program}\n"
            text += f"out, grads = vjp(lambda {', '.join(wrt)}: {program}, [{', '.join(wrt)}], {cot})\n"
        else:
            text += self._leaves(rule, set(wrt)) + f"out = {program}\n"
            if via == "backward":
                text += f"backward(out, {cotangent})\n"
            else:
                text += f"grads = grad(out, [{', '.join(wrt)}], {cotangent})\n"
        for i, name in enumerate(wrt):
            check = f"expect_grad({name}, " if via == "backward" else f"expect_close(grads[{i}], "
            text += f"{check}EXPECTED_{name.upper()})\n"
        return Script(constants, text)


@functools.lru_cache(maxsize=1024)
def _body(steps: str) -> str:
    """A scenario's steps as a script body: dedented once per rule, not per case."""
    return textwrap.dedent(steps).strip() + "\n"


@functools.lru_cache(maxsize=8192)
def _output_shape(program: str, shapes: tuple[tuple[str, tuple[int, ...]], ...], result: tuple[int, ...]) -> tuple:
    """The shape of ``program``'s output on inputs of ``shapes``: no catalog op's output shape depends on values,
    so it is worked out once per shape set (on ones), not per case."""
    return np.shape(oracle.value(program, **{name: np.ones(shape) for name, shape in shapes}, RESULT=result))


def _cross_check(program: str, case: Case, grads: dict[str, np.ndarray]) -> None:
    """The oracle's VJP against a central difference along one random direction ``v`` of all inputs
    at once: ``<grads, v>`` must equal ``d/dh <u, f(x + h v)>``. Any wrong element of ``grads``
    shows almost surely, at two evaluations of the program instead of two per element."""
    inputs = _oracle_inputs(case)
    rng = np.random.default_rng(len(grads))
    direction = {name: rng.standard_normal(np.shape(grads[name])) for name in grads}
    step = 1e-6 * max([1.0, *(float(np.max(np.abs(inputs[n]), initial=0.0)) for n in grads)])
    upstream = 1.0 if case.upstream is None else case.upstream

    def pairing(sign: float) -> float:
        moved = {n: inputs[n] + sign * step * direction[n] for n in grads}
        return float(np.sum(upstream * oracle.value(program, **{**inputs, **moved})))

    slope = (pairing(1.0) - pairing(-1.0)) / (2 * step)
    projected = sum(float(np.sum(grads[n] * direction[n])) for n in grads)
    scale = 1.0 + sum(float(np.sum(np.abs(grads[n] * direction[n]))) for n in grads)
    if abs(projected - slope) > 1e-5 * scale:
        raise OracleError(f"oracle VJP of {program!r} disagrees with finite differences ({projected} vs {slope})")


class Scenario(Template):
    fields = {"steps": True, "oracle": False}
    code_field = "steps"

    def validate(self, rule: Rule) -> None:
        drawn = {n.upper() for n in [*rule.given.names, *rule.given.like]} | {"RESULT"}
        known = set(oracle.NAMESPACE) | drawn
        table = rule.args.get("oracle", {})
        if not isinstance(table, dict):
            raise SpecError(rule.path, rule.id, "oracle", "must be a table of NAME = 'expression'")
        for name, expr in table.items():
            if not (isinstance(expr, str) and name.isupper()):
                raise SpecError(rule.path, rule.id, f"oracle.{name}", "must be UPPER_CASE = 'expression'")
            try:
                language.compile_expression(expr, frozenset(known))
            except language.LanguageError as exc:
                raise SpecError(rule.path, rule.id, f"oracle.{name}", str(exc)) from exc
            known.add(name)
        if not isinstance(rule.args["steps"], str):
            raise SpecError(rule.path, rule.id, "steps", "must be a string")
        language.check_script(textwrap.dedent(rule.args["steps"]), VOCABULARY | known)

    def script(self, rule: Rule, case: Case) -> Script:
        # One dict as globals, so a lambda in an expression (fd_vjp of an oracle vjp) sees the names.
        scope = {"__builtins__": {}, **oracle.NAMESPACE, **_inputs(case)}
        constants = _inputs(case)
        for name, expr in rule.args.get("oracle", {}).items():
            scope[name] = constants[name] = eval(language.compile_expression(expr), scope)
        return Script(constants, _body(rule.args["steps"]))


class SecondOrder(Gradient):
    """Second order through the functional core: the nested vjp of ``(x, u) -> <vjp(program, x; u), w>``.

    Its gradient in ``x`` is the Hessian-vector product and in ``u`` the Jacobian-vector product, so
    it also catches a wrong backward of a linear op, whose second derivative in ``x`` is zero. The
    reference is the oracle's own VJP: differentiated along ``w`` in ``x`` (``oracle.along``), exactly in ``u``.
    ``weights`` maps each differentiated input to the ``like`` array that is its ``w``.
    """

    fields = {"program": True, "weights": True}
    RESERVED = frozenset({"upstream", "paired", "first", "second"})
    """Names the script defines; an input may not take them."""

    def needs(self, rule: Rule) -> list[str]:
        return ["higher_order"]

    def _wrt(self, rule: Rule) -> list[str]:
        return list(rule.args["weights"])

    def validate(self, rule: Rule) -> None:
        super().validate(rule)
        weights, given = rule.args["weights"], rule.given
        if not (isinstance(weights, dict) and weights and all(given.like.get(w) == n for n, w in weights.items())):
            raise SpecError(rule.path, rule.id, "weights", "must map inputs to their like arrays: { x = 'x_w' }")
        if self.RESERVED & {*given.names, *given.like}:
            raise SpecError(rule.path, rule.id, "given.names", f"may not use {sorted(self.RESERVED)}")

    def expected(self, rule: Rule, case: Case) -> dict[str, np.ndarray]:
        """In ``x``: central differences of the oracle's VJP along ``w`` (the Hessian-vector product).
        In ``u``: ``<vjp(x; u), w>`` is linear in ``u``, so its gradient is ``J w`` (its value at each unit ``u``)."""
        program, weights, inputs = rule.args["program"], rule.args["weights"], _oracle_inputs(case)
        direction = {n: inputs[w] for n, w in weights.items()}
        hvp = oracle.along(lambda **kw: oracle.vjp(program, case.upstream, **kw), inputs, direction)
        return {**{n: hvp[n] for n in weights}, "upstream": oracle.jacobian_product(program, direction, **inputs)}

    def script(self, rule: Rule, case: Case) -> Script:
        program, weights = rule.args["program"], rule.args["weights"]
        expected = self.expected(rule, case)
        args = ", ".join(weights)
        pairing = ""
        for i, w in enumerate(weights.values()):
            term = f"sum(mul(first[{i}], tensor({w.upper()})))"
            pairing = f"add({pairing}, {term})" if pairing else term
        constants = {**_inputs(case), "UPSTREAM": case.upstream}
        constants.update({f"EXPECTED_{n.upper()}": expected[n] for n in [*weights, "upstream"]})
        text = self._leaves(rule, set())
        text += f"def paired({args}, upstream):\n"
        text += f"    _, first = vjp(lambda {args}: {program}, [{args}], upstream)\n"
        text += f"    return {pairing}\n"
        text += f"out, second = vjp(paired, [{args}, tensor(UPSTREAM)], tensor(1.0))\n"
        checks = [*weights, "upstream"]
        return Script(
            constants,
            text + "".join(f"expect_close(second[{i}], EXPECTED_{n.upper()})\n" for i, n in enumerate(checks)),
        )


TEMPLATES: dict[str, Template | ProgramTemplate | ModelTemplate] = {
    "forward": Forward(),
    "raises": Raises(),
    "gradient": Gradient(),
    "scenario": Scenario(),
    "second_order": SecondOrder(),
    "program": ProgramTemplate(),
    "model": ModelTemplate(),
}


def check(rule: Rule) -> None:
    """The rule's template exists and its arguments are valid for it; a ``SpecError`` names the field."""
    template = TEMPLATES.get(rule.template)
    if template is None:
        raise SpecError(rule.path, rule.id, "template", f"must be one of {sorted(TEMPLATES)}, got {rule.template!r}")
    for key in rule.args:
        if key not in template.fields:
            known = sorted(COMMON_FIELDS | set(template.fields))
            raise SpecError(rule.path, rule.id, key, f"unknown field for template {rule.template!r}; known: {known}")
    for key, required in template.fields.items():
        if required and key not in rule.args:
            raise SpecError(rule.path, rule.id, key, f"required by template {rule.template!r}")
    try:
        template.validate(rule)
    except language.LanguageError as exc:
        raise SpecError(rule.path, rule.id, getattr(exc, "field", None) or template.code_field, str(exc)) from exc


def load(paths: Iterable[Path] | None = None) -> list[Rule]:
    """The rules of the spec files (``specs.load``), each checked against its template: what a run uses."""
    rules = specs.load(paths)
    for rule in rules:
        check(rule)
    return rules


def needs(rule: Rule) -> tuple[str, ...]:
    """The capabilities a rule needs: declared, plus those its template implies."""
    return tuple(dict.fromkeys([*rule.needs, *TEMPLATES[rule.template].needs(rule)]))


def draws_arrays(rule: Rule) -> bool:
    """Whether a rule's cases are drawn arrays (a ``Case``), on which a finding's condition can be tested: not the
    stateful model's step sequences nor the random programs."""
    return isinstance(TEMPLATES.get(rule.template), Template)
