"""Loading and validating the rules in ``specs/*.toml``.

The format is documented in ``specs/README.md``. Every field is checked here, and each problem
is reported with its file, rule id and field, so a malformed spec never reaches an engine.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import oracle
from conformance.execute import runtime
from conformance.spec import language
from conformance.vocabulary import CAPABILITIES, OPS

LEVELS = ("required", "recommended", "extension")
DTYPES = ("float16", "bfloat16", "float32", "float64")
SHAPE_KINDS = (
    "same", "independent", "broadcastable", "incompatible", "matmul", "expand", "reducible", "scalar", "fixed",
)  # fmt: skip
DOMAINS = {"real": (-2.0, 2.0), "positive": (0.25, 2.0), "unit": (-0.875, 0.875), "nonzero": (0.25, 2.0)}
"""name -> (low, high). ``nonzero`` draws a magnitude in that range and a random sign."""

_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9][a-z0-9_-]*)+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
COMMON_FIELDS = {
    "id", "area", "level", "statement", "template", "references", "needs", "dtypes", "tolerance",
    "given", "examples", "convention",
}  # fmt: skip
_GIVEN = {
    "names", "shapes", "min_dims", "max_dims", "min_side", "max_side", "max_size", "domain", "like", "fixed",
    "kinks",
}  # fmt: skip
_EXAMPLE = {"shapes", "values", "upstream", "result"}
_FILE = {"area", "rule", "tolerance", "given", "op", "second_order"}
_OP = {"name", "level", "differentiable", "promise", "references", "given", "examples", "tolerance", "forms"}
_FORM = {"program", "given", "examples", "wrt"}


_MAX_GIVEN = {"min_dims": 32, "max_dims": 32, "min_side": 64, "max_side": 64, "max_size": language.MAX_ELEMENTS}
"""Bounds of ``given``'s sizes: NumPy's arrays have at most 64 dims, and a spec cannot exhaust the memory."""


class SpecError(ValueError):
    """One problem in one spec file, located by rule id and field."""

    def __init__(self, path: Path | str, rule: str | None, field: str | None, message: str) -> None:
        where = f"{path}"
        if rule:
            where += f": rule {rule!r}"
        if field:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")
        self.path, self.rule, self.field = str(path), rule, field


VOCABULARY = frozenset(
    {
        *OPS,
        *runtime.STATEFUL,
        *runtime.CHECKS,
        *language.BUILTINS,
        "tensor",
        "in_thread",
        "np",
        "DTYPE",
        "DEVICE",
        "RESULT",
    }
)
"""Names a program or scenario may use, besides its drawn arrays (upper-cased) and oracle names."""


@dataclass(frozen=True)
class Given:
    """Generator parameters: which arrays a rule draws, and how."""

    names: tuple[str, ...] = ("x",)
    shapes: str = "same"
    min_dims: int = 0
    max_dims: int = 3
    min_side: int = 0
    max_side: int = 4
    max_size: int = 64
    domain: Mapping[str, str] = field(default_factory=dict)
    like: Mapping[str, str] = field(default_factory=dict)
    fixed: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    kinks: str | None = None
    """An oracle expression over the drawn arrays whose zeros are where the rule's program is not
    differentiable; drawn cases put every element of it at least ``KINK_MARGIN`` from zero."""
    shape_pool: int | None = None
    """Set by the run (``--shape-pool``), never by a spec: draw the shapes from this many shape sets
    fixed per rule, so an engine that compiles per shape compiles a few, while values vary freely."""
    ops: frozenset[str] | None = None
    """Set by the run, never by a spec: the catalog ops the engine has (None: all), for rules that draw
    their ops (random programs), which are about composition, not about an op the engine lacks."""
    seed: int | None = None
    """Set by the run, never by a spec: the run's seed (None in the gate), which the shape pools are drawn with
    (``strategies.shape_pool``); without one they are derandomized, the same on every run."""
    known: frozenset[str] = frozenset()
    """Set by the run, never by a spec: the rules the engine's findings excuse a divergence of in this dtype.
    Random programs leave out the op forms whose own rules are among them: that deviation is already
    reported by its rule, and a program failure should be about composition."""

    def domain_of(self, name: str) -> str:
        return self.domain.get(name, self.domain.get("*", "real"))


@dataclass(frozen=True)
class Rule:
    """One rule of autograd, as data."""

    id: str
    area: str
    level: str
    statement: str
    template: str
    args: Mapping[str, Any]
    given: Given
    examples: tuple[Mapping[str, Any], ...]
    dtypes: tuple[str, ...]
    tolerances: Mapping[str, tuple[float, float]]
    needs: tuple[str, ...]
    references: tuple[str, ...]
    path: str
    convention: bool = False
    """What PyTorch does where the catalog calls it implementation-defined (ties split, a clamp's bounds): outside
    the default gate, which ``--gate-conventions`` widens to them (an engine that claims PyTorch parity)."""


def _expect(cond: bool, path: Path, rule: str | None, fld: str, message: str) -> None:
    if not cond:
        raise SpecError(path, rule, fld, message)


def _check_example_sizes(example: Mapping[str, Any], path: Path, rid: str, i: int) -> None:
    """An example's shapes and values within ``language.MAX_ELEMENTS``: a spec cannot exhaust the memory."""
    shapes = example.get("shapes", {})
    _expect(isinstance(shapes, dict), path, rid, f"examples[{i}].shapes", "must be a table of name = shape")
    for name, shape in shapes.items():
        problem = language.check_size(shape)
        _expect(problem is None, path, rid, f"examples[{i}].shapes.{name}", f"{problem}")
    if "result" in example:
        problem = language.check_size(example["result"])
        _expect(problem is None, path, rid, f"examples[{i}].result", f"{problem}")
    values = example.get("values", {})
    _expect(isinstance(values, dict), path, rid, f"examples[{i}].values", "must be a table of name = values")
    for name, value in [*values.items(), ("upstream", example.get("upstream"))]:
        count = _count(value)
        field_name = f"examples[{i}].values.{name}" if name != "upstream" else f"examples[{i}].upstream"
        _expect(count <= language.MAX_ELEMENTS, path, rid, field_name, f"is too large: {count} numbers")


def _count(value: Any) -> int:
    """How many numbers nested lists hold."""
    return sum(_count(v) for v in value) if isinstance(value, list) else 1


def _flag(value: Any, path: Path, rule: str, fld: str) -> bool:
    _expect(isinstance(value, bool), path, rule, fld, f"must be true or false, got {value!r}")
    return value


def _str_list(value: Any, path: Path, rule: str, fld: str) -> tuple[str, ...]:
    _expect(
        isinstance(value, list) and all(isinstance(v, str) for v in value),
        path,
        rule,
        fld,
        f"must be a list of strings, got {value!r}",
    )
    return tuple(value)


def _given(raw: Any, path: Path, rid: str) -> Given:
    _expect(isinstance(raw, dict), path, rid, "given", "must be a table")
    unknown = set(raw) - _GIVEN
    _expect(not unknown, path, rid, f"given.{min(unknown or {''})}", f"unknown field; known: {sorted(_GIVEN)}")
    names = _str_list(raw.get("names", ["x"]), path, rid, "given.names")
    for n in names:
        _expect(bool(_NAME.match(n)), path, rid, "given.names", f"{n!r} is not a lower-case identifier")
    kind = raw.get("shapes", "same")
    _expect(kind in SHAPE_KINDS, path, rid, "given.shapes", f"{kind!r} is not one of {SHAPE_KINDS}")
    ints = {}
    for key in ("min_dims", "max_dims", "min_side", "max_side", "max_size"):
        if key in raw:
            ok = isinstance(raw[key], int) and not isinstance(raw[key], bool) and 0 <= raw[key] <= _MAX_GIVEN[key]
            _expect(ok, path, rid, f"given.{key}", f"must be an integer in [0, {_MAX_GIVEN[key]}], got {raw[key]!r}")
            ints[key] = raw[key]
    for low, high in (("min_dims", "max_dims"), ("min_side", "max_side")):
        lo, hi = ints.get(low, getattr(Given, low)), ints.get(high, getattr(Given, high))
        _expect(lo <= hi, path, rid, f"given.{low}", f"{low} = {lo} exceeds {high} = {hi}")
    domain = raw.get("domain", {})
    domain = {"*": domain} if isinstance(domain, str) else domain
    _expect(isinstance(domain, dict), path, rid, "given.domain", "must be a string or a table")
    for name, dom in domain.items():
        _expect(dom in DOMAINS, path, rid, f"given.domain.{name}", f"{dom!r} is not one of {sorted(DOMAINS)}")
    like = raw.get("like", {})
    _expect(isinstance(like, dict), path, rid, "given.like", "must be a table of name = name")
    for extra, source in like.items():
        ok = _NAME.match(extra) is not None and (source in names or source == "result")
        _expect(ok, path, rid, f"given.like.{extra}", f"must name one of {list(names)} or 'result'")
    fixed = raw.get("fixed", {})
    _expect(isinstance(fixed, dict), path, rid, "given.fixed", "must be a table of name = shape")
    for name, shape in fixed.items():
        problem = language.check_size(shape)
        _expect(problem is None, path, rid, f"given.fixed.{name}", f"{problem}")
    if kind == "fixed":
        missing = [n for n in names if n not in fixed]
        _expect(not missing, path, rid, "given.fixed", f"no shape for {missing}")
    if kind in ("matmul", "incompatible"):
        _expect(len(names) == 2, path, rid, "given.names", f"shapes = {kind!r} draws exactly two names")
    kinks = raw.get("kinks")
    if kinks is not None:
        _expect(isinstance(kinks, str), path, rid, "given.kinks", "must be an oracle expression")
        known = {*oracle.NAMESPACE, "RESULT", *(n.upper() for n in [*names, *like])}
        try:
            language.compile_expression(kinks, frozenset(known))
        except language.LanguageError as exc:
            raise SpecError(path, rid, "given.kinks", str(exc)) from exc
    return Given(
        names=names,
        shapes=kind,
        domain=domain,
        like=like,
        fixed={k: tuple(v) for k, v in fixed.items()},
        kinks=kinks,
        **ints,
    )


def _tolerances(raw: Any, path: Path, rid: str | None) -> dict[str, tuple[float, float]]:
    _expect(isinstance(raw, dict), path, rid, "tolerance", "must be a table of dtype = {rtol, atol}")
    out = {}
    for dtype, tol in raw.items():
        fld = f"tolerance.{dtype}"
        _expect(dtype in DTYPES, path, rid, fld, f"unknown dtype; known: {DTYPES}")
        ok = isinstance(tol, dict) and set(tol) == {"rtol", "atol"}
        _expect(
            ok and all(isinstance(v, (int, float)) for v in tol.values()), path, rid, fld, "needs rtol and atol numbers"
        )
        out[dtype] = (float(tol["rtol"]), float(tol["atol"]))
    return out


def parse_rule(
    raw: Any,
    path: Path,
    default_area: str | None,
    default_tolerances: Mapping[str, tuple[float, float]] | None = None,
    default_given: Mapping[str, Any] | None = None,
) -> Rule:
    """Validate one ``[[rule]]`` table; the file's defaults fill what the rule leaves out (per dtype, per field).

    The template's own fields are kept in ``args`` unchecked: ``conformance.templates.load`` checks them.
    """
    _expect(isinstance(raw, dict), path, None, "rule", "each [[rule]] must be a table")
    rid = raw.get("id")
    _expect(
        isinstance(rid, str) and bool(_ID.match(rid)),
        path,
        str(rid),
        "id",
        "must be a stable dotted id such as 'broadcasting.grad.sum-to-shape'",
    )
    area = raw.get("area", default_area)
    _expect(isinstance(area, str) and bool(area), path, rid, "area", "missing (set it on the rule or the file)")
    _expect(rid.split(".")[0] == area, path, rid, "id", f"must start with its area {area!r}")
    level = raw.get("level")
    _expect(level in LEVELS, path, rid, "level", f"must be one of {LEVELS}, got {level!r}")
    statement = raw.get("statement")
    _expect(isinstance(statement, str) and bool(statement.strip()), path, rid, "statement", "must be a sentence")
    template = raw.get("template")
    _expect(isinstance(template, str) and bool(template), path, rid, "template", "must name a template")
    args = {k: v for k, v in raw.items() if k not in COMMON_FIELDS}
    needs = _str_list(raw.get("needs", []), path, rid, "needs")
    for need in needs:
        _expect(need in CAPABILITIES, path, rid, "needs", f"unknown capability {need!r}; known: {sorted(CAPABILITIES)}")
    dtypes = _str_list(raw.get("dtypes", ["float32", "float64"]), path, rid, "dtypes")
    for dtype in dtypes:
        _expect(dtype in DTYPES, path, rid, "dtypes", f"unknown dtype {dtype!r}; known: {DTYPES}")
    examples = raw.get("examples", [])
    _expect(isinstance(examples, list), path, rid, "examples", "must be an array of tables")
    for i, ex in enumerate(examples):
        ok = isinstance(ex, dict) and not set(ex) - _EXAMPLE
        _expect(ok, path, rid, f"examples[{i}]", f"must be a table with keys from {sorted(_EXAMPLE)}")
        _check_example_sizes(ex, path, rid, i)
    return Rule(
        id=rid,
        area=area,
        level=level,
        statement=" ".join(statement.split()),
        template=template,
        args=args,
        given=_given(_merged(default_given, raw.get("given", {})), path, rid),
        examples=tuple(examples),
        dtypes=dtypes,
        tolerances={**(default_tolerances or {}), **_tolerances(raw.get("tolerance", {}), path, rid)},
        needs=needs,
        references=_str_list(raw.get("references", []), path, rid, "references"),
        convention=_flag(raw.get("convention", False), path, rid, "convention"),
        path=str(path),
    )


def _merged(default: Mapping[str, Any] | None, own: Any) -> Any:
    """``own`` over ``default``, field by field (``own`` as is when it is not a table, for the error)."""
    return {**(default or {}), **own} if isinstance(own, dict) else own


def load_file(path: Path) -> list[Rule]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(path, None, None, f"not valid TOML: {exc}") from exc
    unknown = set(data) - _FILE
    _expect(not unknown, path, None, min(unknown or {""}), f"unknown top-level key; known: {sorted(_FILE)}")
    rules = data.get("rule", [])
    _expect(isinstance(rules, list), path, None, "rule", "must be an array of tables ([[rule]])")
    ops = data.get("op", [])
    _expect(isinstance(ops, list), path, None, "op", "must be an array of tables ([[op]])")
    given = data.get("given", {})
    _expect(isinstance(given, dict), path, None, "given", "must be a table")
    second = data.get("second_order", {})
    _expect(isinstance(second, dict) and set(second) <= {"tolerance"}, path, None, "second_order", "takes tolerance")
    tolerances = _tolerances(data.get("tolerance", {}), path, None)
    area = data.get("area")
    raws = [*rules, *(r for op in ops for r in expand_op(op, path, str(area), second.get("tolerance", {})))]
    return [parse_rule(raw, path, area, tolerances, given) for raw in raws]


def expand_op(op: Any, path: Path, area: str, second_order_tolerance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rules of one ``[[op]]`` entry: per argument form, ``<area>.<op>.<form>.vjp`` and ``.vjp2``
    (first and second order through the functional core) and ``.jvp`` (forward mode, needs
    ``forward_mode``), or ``.no-grad`` for an op that promises outputs that never require grad. A
    detaching op (``oracle.DETACHING``) gets no ``.vjp2``: finite differences of its value are no
    reference. The op's ``given``, ``examples`` and ``tolerance`` are each form's defaults."""
    _expect(isinstance(op, dict), path, None, "op", "each [[op]] must be a table")
    name = op.get("name")
    _expect(name in OPS, path, f"op {name}", "name", f"not in the op catalog; known: {sorted(OPS)}")
    where = f"op {name}"
    _expect(not set(op) - _OP, path, where, min(set(op) - _OP or {""}), f"unknown field; known: {sorted(_OP)}")
    forms = op.get("forms")
    _expect(isinstance(forms, dict) and bool(forms), path, where, "forms", "must be a table of form = program")
    rules = []
    for form, raw in forms.items():
        raw = {"program": raw} if isinstance(raw, str) else raw
        ok = isinstance(raw, dict) and isinstance(raw.get("program"), str) and not set(raw) - _FORM
        _expect(ok, path, where, f"forms.{form}", f"a program, or a table with keys from {sorted(_FORM)}")
        given = _merged(op.get("given", {}), raw.get("given", {}))
        common = {
            "level": op.get("level", "required"),
            "references": [f"catalog: {OPS[name]}", *op.get("references", [])],
            "given": given,
            "examples": raw.get("examples", op.get("examples", [])),
            "program": raw["program"],
        }
        what = f"{name} as {raw['program']}" + (f" ({op['promise']})" if "promise" in op else "")
        prefix = f"{area}.{name}.{form}"
        if not op.get("differentiable", True):
            rules.append(_no_grad_rule(f"{prefix}.no-grad", what, common))
            continue
        wrt = raw.get("wrt", given.get("names", ["x"]))
        _check_program(raw["program"], given, path, f"{prefix}.vjp")
        weights = {n: f"{n}_w" for n in wrt} if isinstance(wrt, list) else {}
        like = {**given.get("like", {}), **{w: n for n, w in weights.items()}}
        tolerance = {**second_order_tolerance, **op.get("tolerance", {})}
        rules += [
            {
                **common,
                "id": f"{prefix}.vjp",
                "statement": f"{what}: its vjp equals the float64 reference VJP.",
                "template": "gradient",
                "via": "vjp",
                "tolerance": op.get("tolerance", {}),
                **({"wrt": wrt} if "wrt" in raw else {}),
            },
            _jvp_rule(f"{prefix}.jvp", what, common, given, wrt if isinstance(wrt, list) else [], tolerance),
        ]
        if name in oracle.DETACHING:  # no finite-difference reference: its second order is in detach.toml
            continue
        rules.append(
            {
                **common,
                "id": f"{prefix}.vjp2",
                "statement": f"{what}: the nested vjp of <vjp(fn, x; u), w> in x and u matches finite differences"
                " of the reference VJP.",
                "template": "second_order",
                "weights": weights,
                "given": {**given, "like": like},
                "tolerance": tolerance,
            }
        )
    return rules


def _check_program(program: str, given: Any, path: Path, rid: str) -> None:
    """A form's program calls only catalog ops and builtins on its inputs. Checked here, against the form's
    ``.vjp`` rule: the ``.jvp`` rule embeds the program in generated steps, where a mistake would be
    reported against a script the author never wrote."""
    names = list(given.get("names", ["x"])) if isinstance(given, dict) else ["x"]
    try:
        language.compile_expression(program, VOCABULARY | {*names, *(n.upper() for n in names)})
    except language.LanguageError as exc:
        raise SpecError(path, rid, "program", str(exc)) from exc


def _jvp_rule(
    rid: str, what: str, common: dict[str, Any], given: Any, wrt: list[str], tolerance: Mapping[str, Any]
) -> dict[str, Any]:
    """Forward mode of one op form (``scenario``, needs ``forward_mode``): the engine's jvp with drawn tangents
    ``<n>_t`` equals the oracle's ``J @ t``, in the output's dtype, and the dot-product test
    ``<u, J t> = sum_i <(J^T u)_i, t_i>`` holds between the engine's own jvp and vjp, for a cotangent ``u``
    drawn as ``u_out`` (like the first input) and resized to the output's shape. Where the output is NaN (an
    empty mean) the tangent's value is implementation-defined: only its dtype and shape are checked."""
    names = list(given.get("names", ["x"])) if isinstance(given, dict) else ["x"]
    program, args = common["program"], ", ".join(wrt)
    tangents = {n: f"{n}_t" for n in wrt}
    inputs = ", ".join([*(f"{n}={n.upper()}" for n in names), "RESULT=RESULT"])
    oracle = {
        "COTANGENT": f"np.resize(U_OUT, np.shape(value({program!r}, {inputs})))",
        "EXPECTED_JVP": f"jvp({program!r}, {{{', '.join(f'{n!r}: {t.upper()}' for n, t in tangents.items())}}}, {inputs})",
    }
    terms = [f"sum(mul(pulled[{i}], tensor({t.upper()})))" for i, t in enumerate(tangents.values())]
    pulled = terms[0]
    for term in terms[1:]:
        pulled = f"add({pulled}, {term})"
    steps = "".join(f"{n} = tensor({n.upper()})\n" for n in names)
    steps += (
        f"primal_out, tangent_out = jvp(lambda {args}: {program}, [{args}],"
        f" [{', '.join(f'tensor({t.upper()})' for t in tangents.values())}])\n"
        "if np.all(np.isfinite(EXPECTED_JVP)):\n"
        "    expect_close(tangent_out, EXPECTED_JVP, dtype=dtype(primal_out))\n"
        "    cotangent = tensor(COTANGENT, dtype(primal_out))\n"
        f"    pulled = vjp(lambda {args}: {program}, [{args}], cotangent)[1]\n"
        f"    expect_close(sum(mul(cotangent, tangent_out)), numpy({pulled}), dtype=dtype(primal_out))\n"
        "else:  # a NaN output (an empty mean): its tangent is 0/0 in forward mode, 0 by the rows\n"
        "    expect_equal([dtype(tangent_out), shape(tangent_out)], [dtype(primal_out), shape(primal_out)])\n"
    )
    like = {**(given.get("like", {}) if isinstance(given, dict) else {}), **{t: n for n, t in tangents.items()}}
    return {
        **{k: v for k, v in common.items() if k != "program"},
        "id": rid,
        "statement": f"{what}: its jvp equals the float64 reference J t, in the output's dtype, and"
        " <u, J t> = <J^T u, t> between its own jvp and vjp.",
        "template": "scenario",
        "needs": ["forward_mode"],
        "given": {**given, "like": {**like, "u_out": names[0]}} if isinstance(given, dict) else given,
        "tolerance": dict(tolerance),
        "oracle": oracle,
        "steps": steps,
    }


def _no_grad_rule(rid: str, what: str, common: dict[str, Any]) -> dict[str, Any]:
    """An op whose output never requires grad, even from inputs that do (stateful engines)."""
    names = common["given"].get("names", ["x"]) if isinstance(common["given"], dict) else ["x"]
    leaves = "".join(f"{n} = tensor({n.upper()}, requires_grad=True)\n" for n in names)
    return {
        **{k: v for k, v in common.items() if k != "program"},
        "id": rid,
        "statement": f"{what}: its output never requires grad, even when its inputs do.",
        "template": "scenario",
        "needs": ["stateful"],
        "steps": f"{leaves}expect_equal(requires_grad({common['program']}), False)\n",
    }


def default_specs_dir() -> Path:
    """``specs/`` of a checkout, or the copy installed inside the package."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "specs", package.parent / "specs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no specs directory beside {package}")


def load(paths: Iterable[Path] | None = None) -> list[Rule]:
    """Every rule in the given files or directories (default: the shipped specs), sorted by id."""
    files: list[Path] = []
    for p in paths or [default_specs_dir()]:
        files.extend(sorted(p.glob("*.toml")) if p.is_dir() else [p])
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for f in files:
        for rule in load_file(f):
            _expect(rule.id not in seen, f, rule.id, "id", f"duplicate id (also in {seen.get(rule.id)})")
            seen[rule.id] = str(f)
            rules.append(rule)
    return sorted(rules, key=lambda r: r.id)


def spec_version(paths: Iterable[Path] | None = None) -> str:
    """A digest of the spec files: the gate's verdict depends on it, so the header prints it."""
    digest = hashlib.sha256()
    for p in paths or [default_specs_dir()]:
        for f in sorted(p.glob("*.toml")) if p.is_dir() else [p]:
            digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:12]
