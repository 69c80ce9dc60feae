"""Circuit hypotheses in ordinary Python tests.

    from circuitdsl.testing import check, assert_recovers, assert_expects_hold

    def test_induction():
        r = check("hypotheses/induction_refined.circuit", seed=0)
        assert_recovers(r, at_least=0.9)
        assert_expects_hold(r)

`check` compiles a `.circuit` file (or `.circuit` source text) and scrubs it with the engine
(`circuitdsl.engine.check.run_check`); torch is imported only when a check runs. A file with language
errors raises `InvalidHypothesis`, whose message is the rendered diagnostics. The assertion helpers
raise `AssertionError` with a message that shows the score, its interval, the threshold, the raw F
numbers and the worst examples (`explain`). The pytest plugin (circuitdsl.pytest_plugin) uses the
same pieces.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from circuitdsl.diagnostics import CircuitError, render
from circuitdsl.ir import Comparison, DatasetKind, Hypothesis
from circuitdsl.results import CheckResult

__all__ = [
    "InvalidHypothesis",
    "compile_hypothesis",
    "with_sample_count",
    "needs_completeness",
    "needs_minimality",
    "check",
    "explain",
    "assert_recovers",
    "assert_expects_hold",
    "assert_score",
    "assert_faithful",
]


class InvalidHypothesis(CircuitError):
    """The hypothesis could not be compiled or checked; `str(err)` is the full rendering of its diagnostics."""

    def __init__(self, diagnostics, sources: dict[str, str] | None = None):
        super().__init__(list(diagnostics))
        self.rendered = render(self.diagnostics, "full", sources or {})
        self.args = (self.rendered,)

    def __str__(self) -> str:
        return self.rendered


def _is_path(path_or_source: str | os.PathLike) -> bool:
    if isinstance(path_or_source, os.PathLike):
        return True
    s = str(path_or_source)
    return "\n" not in s and (s.endswith(".circuit") or Path(s).is_file())


def compile_hypothesis(path_or_source: str | os.PathLike) -> Hypothesis:
    """Compile a `.circuit` path (a `Path`, or a string ending in `.circuit`) or source text.

    Raises InvalidHypothesis (with the rendered diagnostics) if the file has a language error."""
    from circuitdsl.compiler import compile_file, compile_source

    if _is_path(path_or_source):
        compiled = compile_file(path_or_source)
    else:
        compiled = compile_source(str(path_or_source))
    if compiled.hypothesis is None:
        raise InvalidHypothesis(compiled.diagnostics, dict(compiled.sources))
    return compiled.hypothesis


def with_sample_count(h: Hypothesis, n: int) -> Hypothesis:
    """`h` with the sample count `n` of every generator dataset replaced by `n`, and every JSONL file
    cut to its first `n` rows (a file with fewer rows is used whole).

    Every dataset gets the same `n`, so datasets paired row by row stay paired."""
    from circuitdsl.datasets import registry

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the sample count must be a positive integer, got {n!r}")
    specs = []
    for spec in h.datasets:
        info = registry.get(spec.source) if spec.kind is DatasetKind.GENERATOR else None
        if info is not None and "n" in dict(info.params):
            args = dict(spec.args)
            args["n"] = n
            spec = dataclasses.replace(spec, args=tuple(sorted(args.items())))
        elif spec.kind is DatasetKind.FILE:
            spec = dataclasses.replace(spec, args=(("n", n),))
        specs.append(spec)
    return dataclasses.replace(h, datasets=tuple(specs))


def needs_completeness(h: Hypothesis) -> bool:
    """Whether an `expect` of `h` reads the completeness search (the slowest part of a check)."""
    return any(x.score == "incompleteness" for x in h.expects)


def needs_minimality(h: Hypothesis) -> bool:
    """Whether `h` reads the minimality search: an `expect minimality` or `expect minimality.p`, or the
    per-node test switched on by `set tests.minimality = true` (it needs the removals)."""
    return any(x.score in ("minimality", "minimality.p") for x in h.expects) or h.tests.minimality


NOT_NEEDED = "no expect of the file reads it"
"""Why the plugin skipped a phase (`Minimality.skipped` / `Completeness.skipped` end with it)."""


def check(
    path_or_source: str | os.PathLike | Hypothesis,
    *,
    seed: int | None = None,
    n: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    completeness: bool | None = None,
    minimality: bool | None = True,
    progress=None,
) -> CheckResult:
    """Compile and scrub a hypothesis; return its CheckResult.

    seed: overrides the file's `set seed`. n: overrides the sample count of every generator dataset and
    takes the first n rows of every JSONL file. completeness: run the completeness search; None
    (default) runs it only when an `expect` names `incompleteness`. minimality: run the minimality
    search (default); None runs it only when the file reads it (`needs_minimality`); a skipped search
    says why in `r.minimality.skipped`. progress: `progress(phase, done, total)` as the check goes
    (total 0: unknown). Raises InvalidHypothesis for language, dataset or model errors."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    if isinstance(path_or_source, Hypothesis):
        h = path_or_source
    else:
        h = compile_hypothesis(path_or_source)
    if n is not None:
        h = with_sample_count(h, n)
    auto_c, auto_m = completeness is None, minimality is None
    if completeness is None:
        completeness = needs_completeness(h)
    if minimality is None:
        minimality = needs_minimality(h)
    from circuitdsl.engine.check import run_check

    try:
        r = run_check(
            h,
            seed=seed,
            device=device,
            batch_size=batch_size,
            completeness=completeness,
            minimality=minimality,
            progress=progress,
        )
    except CircuitError as e:
        sources = {h.source_path: h.source_text} if h.source_path else {}
        raise InvalidHypothesis(e.diagnostics, sources) from None
    # a phase left out because nothing reads it says so (not "--no-minimality", which was not given)
    if auto_m and not minimality and h.minimality_enabled:
        r = dataclasses.replace(
            r, minimality=dataclasses.replace(r.minimality, skipped=f"minimality not run: {NOT_NEEDED}")
        )
    if auto_c and not completeness and h.budget.enabled:
        r = dataclasses.replace(
            r, completeness=dataclasses.replace(r.completeness, skipped=f"completeness search not run: {NOT_NEEDED}")
        )
    return r


def _f(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.4g}"


def _test_line(tests, name: str) -> str:
    """One line on a statistical test (SEMANTICS.md section 5): its statistic against its null."""
    from circuitdsl.engine.stats import null_summary

    t = tests.get(name)
    if name == "equivalence":
        return (
            f"equivalence: m(scrubbed) > m(model) on {t.above} of {t.n} examples ({t.ties} ties left out), "
            f"margin eps {t.eps:g}"
        )
    if name == "minimality":
        worst = max((n for n in t.nodes if n.p_holm is not None), key=lambda n: n.p_holm, default=None)
        return f"minimality: {len(t.nodes)} nodes against {t.r} random removals per kind" + (
            f"; least needed: {worst.node} (cost {_f(worst.observed)}, Holm-adjusted p {_f(worst.p_holm)})"
            if worst
            else ""
        )
    s = null_summary(t.null)
    return (
        f"{name}: observed {_f(t.observed)} against {len(t.null)} null draws (mean {_f(s['mean'])}, "
        f"5-95% [{_f(s['q05'])}, {_f(s['q95'])}])"
    )


def explain(
    r: CheckResult,
    *,
    score: str | None = None,
    op: str | None = None,
    threshold: float | None = None,
    reason: str | None = None,
    worst: int = 5,
) -> str:
    """A readable account of a result: the score (if given) against its threshold, recovered with its
    interval, the raw F numbers, per-example faithfulness, the worst examples and the engine's notes."""
    unit = "logits" if r.metric == "logit_diff" else "nats"
    lines = []
    where = r.source_path or r.name
    if score is not None:
        value = r.score(score)
        lines.append(f"{score} = {_f(value)}, expected {op} {threshold:g}" + (f" ({reason})" if reason else ""))
        if score.endswith(".p") and r.tests is not None and r.tests.get(score.split(".", 1)[0]) is not None:
            lines.append(_test_line(r.tests, score.split(".", 1)[0]))
    rec = r.recovered
    if rec.value is None:
        lines.append(f"recovered = undefined: {rec.undefined_reason}")
    else:
        lines.append(
            f"recovered = {_f(rec.value)}, bootstrap 95% interval [{_f(rec.lower)}, {_f(rec.upper)}] "
            f"({rec.resamples} resamples)"
        )
    lines.append(
        f"F(model) = {_f(r.f_model)}, F(scrubbed) = {_f(r.f_scrubbed)}, F(baseline) = {_f(r.f_baseline)} "
        f"({r.metric}, {unit})"
    )
    lines.append(
        f"|m(scrubbed, x) - m(model, x)|: mean {_f(r.mean_abs_delta)}, median {_f(r.median_abs_delta)}, "
        f"p90 {_f(r.p90_abs_delta)} {unit}; KL(model||scrubbed) {_f(r.kl)} nats"
    )
    c = r.completeness
    if c.worst is not None:
        lines.append(
            f"incompleteness = {_f(c.worst.incompleteness)} (worst K = {{{', '.join(c.worst.nodes)}}}, "
            f"{len(c.trials)} subsets tried)"
        )
    lines.append(f"minimality = {_f(r.minimality.score)}")
    lines.append(f"{where}: model {r.model}, dataset {r.dataset} (N={r.n}), seed {r.seed}, ablation {r.ablation}")
    rows = sorted(r.examples, key=lambda e: -e.abs_delta)[:worst]
    if rows:
        lines.append(f"worst examples by |m(scrubbed) - m(model)| ({unit}):")
        for e in rows:
            txt = e.text if e.text is not None else " ".join(map(str, e.tokens))
            if len(txt) > 70:
                txt = txt[:67] + "..."
            lines.append(
                f"  {e.id}  m(model) {_f(e.m_model)}  m(scrubbed) {_f(e.m_scrubbed)}  "
                f"m(baseline) {_f(e.m_baseline)}  |delta| {_f(e.abs_delta)}  {txt}"
            )
    for note in r.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _check_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def assert_score(r: CheckResult, score: str, op: str, threshold: float) -> None:
    """Assert `score op threshold` (op one of >=, <=, >, <; score a name of ir.SCORE_NAMES)."""
    from circuitdsl.ir import SCORE_NAMES

    if score not in SCORE_NAMES:
        raise ValueError(f"unknown score {score!r}; known: {', '.join(SCORE_NAMES)}")
    try:
        cmp = Comparison(op)
    except ValueError:
        raise ValueError(f"op must be one of >=, <=, >, <; got {op!r}") from None
    threshold = _check_number("threshold", threshold)
    value = r.score(score)
    if value is None or not cmp.holds(value, threshold):
        raise AssertionError(explain(r, score=score, op=op, threshold=threshold))


def assert_recovers(r: CheckResult, *, at_least: float, interval: bool = False) -> None:
    """Assert recovered >= at_least; with interval=True, the lower end of its 95% interval."""
    assert_score(r, "recovered.lower" if interval else "recovered", ">=", at_least)


def assert_faithful(
    r: CheckResult, *, mean_abs_delta_at_most: float | None = None, p90_abs_delta_at_most: float | None = None
) -> None:
    """Assert per-example faithfulness bounds (raw metric units)."""
    if mean_abs_delta_at_most is None and p90_abs_delta_at_most is None:
        raise ValueError("give mean_abs_delta_at_most or p90_abs_delta_at_most")
    if mean_abs_delta_at_most is not None:
        assert_score(r, "mean_abs_delta", "<=", mean_abs_delta_at_most)
    if p90_abs_delta_at_most is not None:
        assert_score(r, "p90_abs_delta", "<=", p90_abs_delta_at_most)


def assert_expects_hold(r: CheckResult, *, only: Sequence[str] | None = None) -> None:
    """Assert every `expect` clause of the file held (or those whose score is in `only`)."""
    failed = [x for x in r.expects if not x.passed and (only is None or x.score in only)]
    if not failed:
        return
    parts = []
    for x in failed:
        where = f" (line {x.line})" if x.line else ""
        parts.append(
            f"FAILED expect {x.score} {x.op} {x.threshold:g}{where}: value {_f(x.value)}"
            + (f" - {x.reason}" if x.reason else "")
        )
    raise AssertionError("\n".join(parts) + "\n" + explain(r))
