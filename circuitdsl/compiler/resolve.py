"""Passes that resolve names: definitions, model, datasets, metric/ablation, groups, settings, expects.

Every pass is a pure function `Unit -> Unit` that adds what it resolved and the diagnostics it
found, and carries on after an error so that a file's errors are reported together.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from circuitdsl import ast
from circuitdsl.compiler.codes import diag
from circuitdsl.compiler.names import is_builtin_name, ref_group_name, resolve_ref
from circuitdsl.compiler.unit import Unit, base_dir, did_you_mean
from circuitdsl.diagnostics import Diagnostic, Label
from circuitdsl.ir import (
    SCORE_NAMES,
    Ablation,
    AblationKind,
    Comparison,
    DatasetKind,
    DatasetSpec,
    Expect,
    Metric,
    MetricKind,
    ModelRef,
    NodeId,
)

__all__ = [
    "check_duplicates",
    "resolve_model",
    "resolve_datasets",
    "resolve_metric_ablation",
    "resolve_groups",
    "resolve_settings",
    "resolve_expects",
    "SETTINGS",
]

SETTINGS: dict[str, str] = {
    "seed": "int",
    "bootstrap": "int",
    "completeness.sizes": "list of int",
    "completeness.samples": "int",
    "completeness.greedy": "int",
    "completeness.enabled": "bool",
    "minimality.enabled": "bool",
    "treeify.shared_draws": "bool",
    "treeify.max_nodes": "int",
    "tests.sufficiency": "bool",
    "tests.necessity": "bool",
    "tests.equivalence": "bool",
    "tests.minimality": "bool",
    "tests.r": "int",
    "tests.seed": "int",
    "tests.eps": "float",
}


def _dup(what: str, name: str, span, first) -> Diagnostic:
    return diag(
        "E301",
        f"{what} `{name}` is defined twice" if name else f"{what} is given twice",
        span,
        label="second definition",
        hint="keep one definition (definitions may not be repeated, also across imported files)",
        related=(Label(first, f"first defined here ({first.file}:{first.line})"),),
    )


def check_duplicates(u: Unit) -> Unit:
    """E301 for repeated model/dataset/group/on/metric/ablate/set; E308 for groups named like nodes."""
    diags: list[Diagnostic] = []
    seen: dict[tuple[str, str], Any] = {}
    for s in u.statements:
        if isinstance(s, ast.Model):
            key, what, name, sp = ("model", ""), "the model", "", s.span
        elif isinstance(s, ast.DatasetGen | ast.DatasetFile):
            key, what, name, sp = ("dataset", s.name.text), "dataset", s.name.text, s.name.span
        elif isinstance(s, ast.Group):
            key, what, name, sp = ("group", s.name.text), "group", s.name.text, s.name.span
            if is_builtin_name(s.name.text):
                diags.append(diag("E308", f"group name `{s.name.text}` is the name of a model node", s.name.span,
                                  label="a node name", hint=f"rename the group, e.g. `{s.name.text}_group`"))  # fmt: skip
        elif isinstance(s, ast.On):
            key, what, name, sp = ("on", ""), "the dataset (`on`)", "", s.span
        elif isinstance(s, ast.MetricStmt):
            key, what, name, sp = ("metric", ""), "the metric", "", s.span
        elif isinstance(s, ast.Ablate):
            key, what, name, sp = ("ablate", ""), "the ablation", "", s.span
        elif isinstance(s, ast.SetStmt):
            key, what, name, sp = ("set", s.key.text), "setting", s.key.text, s.key.span
        else:
            continue
        if key in seen:
            diags.append(_dup(what, name, sp, seen[key]))
        else:
            seen[key] = sp
    return u.add(*diags)


def resolve_model(u: Unit) -> Unit:
    from circuitdsl.models.shapes import ShapeError, resolve_shape

    models = u.of(ast.Model)
    if not models:
        return u.add(
            diag(
                "E502",
                "no `model` statement",
                u.first_span(),
                label="the hypothesis needs a model",
                hint='add a line such as `model smollm2-135m` or `model "path/to/model_dir"`',
            )  # fmt: skip
        )
    m = models[0]
    try:
        resolved, shape = resolve_shape(m.ref, base_dir(m.span.file))
    except ShapeError as e:
        return u.add(diag("E501", str(e), m.span, label="cannot resolve this model", hint=e.hint))
    return u.add(model=ModelRef(m.ref, resolved, shape, m.span))


def _literal_value(lit: ast.Literal) -> Any:
    if lit.kind == "name" and lit.value in ("true", "false"):
        return lit.value == "true"
    if lit.kind == "list":
        return tuple(_literal_value(x) for x in lit.value)
    return lit.value


def _type_name(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", tuple: "list"}.get(type(v), type(v).__name__)


def _check_arg(gen: str, a: ast.Arg, default: Any) -> tuple[Any, Diagnostic | None]:
    v = _literal_value(a.value)
    if a.value.kind == "name" and not isinstance(v, bool):
        return None, diag("E405", f"argument `{a.key.text}` of `{gen}` is not a value", a.value.span,
                          label="a bare name", hint=f'write a number, true/false or a string: "{a.value.value}"')  # fmt: skip
    if isinstance(v, tuple):
        return None, diag("E405", f"argument `{a.key.text}` of `{gen}` cannot be a list", a.value.span,
                          label="a list", hint="generator arguments are numbers, true/false or strings")  # fmt: skip
    if default is None:
        return v, None
    want = type(default)
    if want is float and type(v) is int:
        return float(v), None
    if type(v) is not want:
        return None, diag("E405", f"argument `{a.key.text}` of `{gen}` expects {_type_name(default)}, got {_type_name(v)}",
                          a.value.span, label=f"expected {_type_name(default)} (default {default!r})")  # fmt: skip
    return v, None


def _jsonl_schema(path: Path):
    """(fields, positions) or None if the JSONL reader is not available; raises on bad files."""
    try:
        from circuitdsl.datasets.jsonl import read_schema
    except ImportError:
        return None
    return read_schema(path)


def resolve_datasets(u: Unit) -> Unit:
    from circuitdsl.datasets import registry
    from circuitdsl.diagnostics import CircuitError

    diags: list[Diagnostic] = []
    specs: list[DatasetSpec] = []
    schemas: list[tuple[str, tuple[str, ...] | None, tuple[str, ...] | None]] = []
    seen = set()
    for s in u.of(ast.DatasetGen, ast.DatasetFile):
        if s.name.text in seen:
            continue  # duplicate: reported by check_duplicates
        seen.add(s.name.text)
        if isinstance(s, ast.DatasetGen):
            gen = s.generator.text
            info = registry.get(gen)
            if info is None:
                known = registry.names()
                hint = did_you_mean(gen, known) or (
                    "registered generators: " + ", ".join(f"`{n}`" for n in known)
                    if known
                    else "no generators are registered"
                )
                diags.append(diag("E402", f"unknown dataset generator `{gen}`", s.generator.span,
                                  label="no generator of this name", hint=hint))  # fmt: skip
                schemas.append((s.name.text, None, None))
                continue
            params = dict(info.params)
            args, ok = {}, True
            for a in s.args:
                if a.key.text not in params:
                    accepted = ", ".join(f"`{p}`" for p in sorted(params))
                    dm = did_you_mean(a.key.text, params)
                    diags.append(diag("E403", f"`{gen}` has no argument `{a.key.text}`", a.key.span,
                                      label="unknown argument", hint=(dm + " " if dm else "") + f"`{gen}` accepts {accepted}"))  # fmt: skip
                    ok = False
                    continue
                if a.key.text in args:
                    diags.append(
                        _dup(
                            "argument",
                            a.key.text,
                            a.key.span,
                            next(x.key.span for x in s.args if x.key.text == a.key.text),
                        )
                    )
                    ok = False
                    continue
                v, err = _check_arg(gen, a, params[a.key.text])
                if err:
                    diags.append(err)
                    ok = False
                args[a.key.text] = v
            if ok:
                specs.append(DatasetSpec(s.name.text, DatasetKind.GENERATOR, gen, tuple(sorted(args.items())), s.span))
            schemas.append((s.name.text, tuple(info.fields), tuple(info.positions)))
        else:
            path = (base_dir(s.span.file) / s.path).resolve()
            if not path.is_file():
                why = "is a directory" if path.is_dir() else "does not exist"
                shown = (
                    os.path.normpath(os.path.join(os.path.dirname(s.span.file), s.path))
                    if not s.span.file.startswith("<")
                    else s.path
                )
                diags.append(diag("E404", f"dataset file `{s.path}` {why}", s.path_span,
                                  label=f"looked for {shown}", hint="JSONL paths are relative to the .circuit file that names them"))  # fmt: skip
                schemas.append((s.name.text, None, None))
                continue
            try:
                schema = _jsonl_schema(path)
            except CircuitError as e:
                diags.extend(e.diagnostics)
                schemas.append((s.name.text, None, None))
                continue
            except Exception as e:
                diags.append(diag("E404", f"cannot read dataset file `{s.path}`: {e}", s.path_span,
                                  label="unreadable", hint="each line must be one JSON object (docs/DATASETS.md)"))  # fmt: skip
                schemas.append((s.name.text, None, None))
                continue
            specs.append(DatasetSpec(s.name.text, DatasetKind.FILE, str(path), (), s.span))
            fields, positions = schema if schema is not None else (None, None)
            schemas.append(
                (
                    s.name.text,
                    None if fields is None else tuple(fields),
                    None if positions is None else tuple(positions),
                )
            )
    declared = [name for name, _, _ in schemas]
    main = declared[0] if declared else None
    ons = u.of(ast.On)
    if ons:
        on = ons[0]
        if on.dataset.text not in declared:
            diags.append(_unknown_dataset(on.dataset, declared))
        main = on.dataset.text
    if not declared:
        diags.append(diag("E401", "no dataset declared", u.first_span(), label="the hypothesis needs a dataset",
                          hint="add e.g. `dataset d = ioi(n = 64)` or `dataset d = \"prompts.jsonl\"`"))  # fmt: skip
    return u.add(*diags, datasets=tuple(specs), schemas=tuple(schemas), main_dataset=main)


def _unknown_dataset(ident: ast.Ident, declared) -> Diagnostic:
    hint = did_you_mean(ident.text, declared) or (
        "declared datasets: " + ", ".join(f"`{d}`" for d in declared)
        if declared
        else "declare it with `dataset NAME = ...`"
    )
    return diag("E207", f"unknown dataset `{ident.text}`", ident.span, label="not a declared dataset", hint=hint)


def resolve_metric_ablation(u: Unit) -> Unit:
    diags: list[Diagnostic] = []
    metric, ablation = u.metric, u.ablation
    metrics = u.of(ast.MetricStmt)
    if metrics:
        name = metrics[0].name
        kinds = {k.value: k for k in MetricKind}
        if name.text in kinds:
            metric = Metric(kinds[name.text])
        else:
            diags.append(diag("E214", f"unknown metric `{name.text}`", name.span, label="not a metric",
                              hint=did_you_mean(name.text, kinds) or "metrics: " + ", ".join(f"`{k}`" for k in kinds)))  # fmt: skip
    ablates = u.of(ast.Ablate)
    if ablates:
        a = ablates[0]
        kind = {"resample": AblationKind.RESAMPLE, "resample from": AblationKind.RESAMPLE_FROM, "paired": AblationKind.PAIRED,
                "mean": AblationKind.MEAN, "mean over": AblationKind.MEAN, "zero": AblationKind.ZERO}[a.kind]  # fmt: skip
        declared = [s[0] for s in u.schemas]
        if a.dataset is not None and a.dataset.text not in declared:
            diags.append(_unknown_dataset(a.dataset, declared))
        ablation = Ablation(kind, a.dataset.text if a.dataset else None)
    return u.add(*diags, metric=metric, ablation=ablation)


MAX_GROUP_DEPTH = 64
"""A group may contain a group that contains a group... at most this many levels deep (E310)."""


def resolve_groups(u: Unit) -> Unit:
    """Groups (which may contain groups, in any order) to sorted tuples of nodes; E307 on self-containment."""
    defs: dict[str, ast.Group] = {}
    for g in u.of(ast.Group):
        defs.setdefault(g.name.text, g)
    diags: list[Diagnostic] = []
    done: dict[str, tuple[NodeId, ...] | None] = {}

    def expand(name: str, stack: tuple[str, ...]) -> tuple[NodeId, ...] | None:
        if name in done:
            return done[name]
        g = defs[name]
        nodes: list[NodeId] = []
        ok = True
        for ref in g.members:
            gname = ref_group_name(ref)
            if gname is not None and gname in defs and not is_builtin_name(gname):
                if gname in stack or gname == name:
                    path = (
                        " -> ".join(stack[stack.index(gname) :] + (name, gname))
                        if gname in stack
                        else f"{name} -> {name}"
                    )
                    diags.append(diag("E307", f"group `{name}` contains itself ({path})", ref.span,
                                      label="leads back to the group being defined", hint="a group may contain other groups, not itself"))  # fmt: skip
                    ok = False
                    continue
                if len(stack) >= MAX_GROUP_DEPTH:  # a chain this deep is not meant (and would recurse without bound)
                    diags.append(diag("E310", f"groups nest more than {MAX_GROUP_DEPTH} deep (`{stack[0]}` -> ... -> `{gname}`)", ref.span,
                                      label="one level too many", hint="name the nodes of a deep chain in one group"))  # fmt: skip
                    ok = False
                    continue
                sub = expand(gname, stack + (name,))
                if sub is None:
                    ok = False
                else:
                    nodes.extend(sub)
                continue
            found, _, ds = resolve_ref(ref, u.model, {}, tuple(defs))
            diags.extend(ds)
            if ds or not found:
                ok = False
            nodes.extend(found)
        result = tuple(sorted(set(nodes))) if ok else None
        done[name] = result
        return result

    for name in defs:
        expand(name, ())
    groups = tuple((n, nodes) for n, nodes in done.items() if nodes is not None)
    order = {n: i for i, n in enumerate(defs)}
    groups = tuple(sorted(groups, key=lambda g: order[g[0]]))
    return u.add(*diags, groups=groups, group_spans=tuple((n, g.name.span) for n, g in defs.items()))


def _setting_value(key: str, lit: ast.Literal) -> tuple[Any, str]:
    v = _literal_value(lit)
    if SETTINGS[key] == "bool":
        return (v, "") if isinstance(v, bool) else (None, "true or false")
    if key in ("treeify.max_nodes", "tests.r") and (type(v) is not int or v < 1):
        return None, "a positive int"
    if key == "tests.eps":
        if type(v) not in (int, float) or not 0 < v < 0.5:
            return None, "a number between 0 and 0.5 (exclusive), e.g. 0.1"
        return float(v), ""
    if key == "completeness.sizes":
        if not isinstance(v, tuple) or not v or not all(type(x) is int and x >= 1 for x in v):
            return None, "a non-empty list of positive ints, e.g. [1, 2]"
        return v, ""
    if type(v) is not int or v < 0 or (key == "bootstrap" and v < 1):
        return None, "a positive int" if key == "bootstrap" else "a non-negative int"
    return v, ""


def resolve_settings(u: Unit) -> Unit:
    diags: list[Diagnostic] = []
    values: dict[str, Any] = {}
    for s in u.of(ast.SetStmt):
        key = s.key.text
        if key not in SETTINGS:
            diags.append(diag("E212", f"unknown setting `{key}`", s.key.span, label="not a setting",
                              hint=did_you_mean(key, SETTINGS) or "settings: " + ", ".join(f"`{k}`" for k in SETTINGS)))  # fmt: skip
            continue
        v, want = _setting_value(key, s.value)
        if want:
            diags.append(
                diag(
                    "E213", f"`{key}` must be {want}", s.value.span, label=f"got {_type_name(_literal_value(s.value))}"
                )
            )
            continue
        values.setdefault(key, v)
    return u.add(*diags, settings=tuple(sorted(values.items())))


def resolve_expects(u: Unit) -> Unit:
    diags: list[Diagnostic] = []
    expects = []
    for s in u.of(ast.ExpectStmt):
        if s.score.text not in SCORE_NAMES:
            diags.append(diag("E211", f"unknown score `{s.score.text}`", s.score.span, label="not a score",
                              hint=did_you_mean(s.score.text, SCORE_NAMES) or "scores: " + ", ".join(f"`{k}`" for k in SCORE_NAMES)))  # fmt: skip
            continue
        expects.append(Expect(s.score.text, Comparison(s.op), float(s.value.value), s.span))
        off = _turned_off(u, s.score.text)
        if off is not None:
            diags.append(diag("W214", f"`expect {s.score.text}` cannot hold: `set {off.key.text} = false` skips the search it reads",
                              s.span, label="always fails", related=(Label(off.span, "the search is turned off here"),),
                              hint=f"remove the expect, or the `set {off.key.text} = false` (then the check runs the search)"))  # fmt: skip
    return u.add(*diags, expects=tuple(expects))


_READS = {
    "minimality": "minimality.enabled",
    "minimality.p": "minimality.enabled",
    "incompleteness": "completeness.enabled",
}


def _turned_off(u: Unit, score: str):
    """The `set ... = false` statement that turns off the search `score` reads (W214), or None."""
    key = _READS.get(score)
    if key is None or dict(u.settings).get(key, True):
        return None
    return next((st for st in u.of(ast.SetStmt) if st.key.text == key), None)
