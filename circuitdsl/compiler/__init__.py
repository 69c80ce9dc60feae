"""`.circuit` text -> frozen `circuitdsl.ir.Hypothesis`, with every problem as a Diagnostic.

    result = compile_file("hypotheses/ioi.circuit")
    if result.hypothesis is None:
        print(result.render("full"))

Stages: load (parse the file and its imports) -> passes (circuitdsl.compiler.passes.PASSES) ->
build. No torch is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from circuitdsl.compiler.codes import CODES, diag
from circuitdsl.diagnostics import Diagnostic, cap, has_errors, render
from circuitdsl.ir import Hypothesis, SearchBudget, TestPlan, TreeRule, make_graph

__all__ = ["CompileResult", "compile_file", "compile_source", "CODES"]


@dataclass(frozen=True)
class CompileResult:
    hypothesis: Hypothesis | None
    """None if and only if there is an error among the diagnostics."""
    diagnostics: tuple[Diagnostic, ...]
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    """The text of every file read, for rendering diagnostics with their source lines."""

    @property
    def ok(self) -> bool:
        return self.hypothesis is not None

    def render(self, fmt: str = "full") -> str:
        return render(self.diagnostics, fmt, dict(self.sources))


def _sort_key(d: Diagnostic):
    s = d.span
    return (0, s.file, s.line, s.col) if s is not None else (1, "", 0, 0)


def _build(unit, text: str, path: str) -> Hypothesis:
    settings = dict(unit.settings)
    budget = SearchBudget(
        sizes=tuple(settings.get("completeness.sizes", SearchBudget.sizes)),
        samples=settings.get("completeness.samples", SearchBudget.samples),
        greedy_steps=settings.get("completeness.greedy", SearchBudget.greedy_steps),
        enabled=settings.get("completeness.enabled", SearchBudget.enabled),
    )
    name = "<string>" if path.startswith("<") else Path(path).stem
    return Hypothesis(
        name=name,
        source_path=None if path.startswith("<") else str(Path(path).resolve()),
        source_text=text,
        model=unit.model,
        datasets=unit.datasets,
        main_dataset=unit.main_dataset,
        metric=unit.metric,
        ablation=unit.ablation,
        claims=unit.claims,
        edges=unit.edges,
        groups=unit.groups,
        expects=unit.expects,
        splits=unit.splits,
        budget=budget,
        seed=settings.get("seed", 0),
        bootstrap=settings.get("bootstrap", 1000),
        treeify=TreeRule(
            shared_draws=settings.get("treeify.shared_draws", TreeRule.shared_draws),
            max_nodes=settings.get("treeify.max_nodes", TreeRule.max_nodes),
        ),
        tests=TestPlan(
            sufficiency=settings.get("tests.sufficiency", TestPlan.sufficiency),
            necessity=settings.get("tests.necessity", TestPlan.necessity),
            equivalence=settings.get("tests.equivalence", TestPlan.equivalence),
            minimality=settings.get("tests.minimality", TestPlan.minimality),
            r=settings.get("tests.r", TestPlan.r),
            seed=settings.get("tests.seed", TestPlan.seed),
            eps=settings.get("tests.eps", TestPlan.eps),
        ),
        minimality_enabled=settings.get("minimality.enabled", True),
        edge_origins=_edge_origins(unit),
        graph=make_graph(unit.claims, unit.edges),
    )


def _edge_origins(unit) -> tuple:
    spans, wired = dict(unit.edge_spans), set(unit.wired_only)
    return tuple((e, spans.get(e), "wire" if e in wired else "edge") for e in unit.edges)


def compile_source(text: str, path: str = "<string>") -> CompileResult:
    """Compile `.circuit` text; `path` names it in diagnostics and anchors relative paths."""
    from circuitdsl.compiler.load import load_source
    from circuitdsl.compiler.passes import run_passes

    unit = load_source(text, path)
    if not has_errors(unit.diagnostics):
        unit = run_passes(unit)
    diags = tuple(sorted(unit.diagnostics, key=_sort_key))
    hyp = None if has_errors(diags) else _build(unit, text, path)
    return CompileResult(hyp, cap(diags), unit.sources)


def compile_file(path) -> CompileResult:
    """Read and compile a `.circuit` file (E901 if it cannot be read)."""
    from circuitdsl.compiler.load import read_text

    path = str(path)
    text, why = read_text(path)
    if text is None:
        d = diag("E901", f"cannot read `{path}`: {why}", hint="pass the path of a readable UTF-8 `.circuit` file")
        return CompileResult(None, (d,), ())
    return compile_source(text, path)
