"""`run_check`: scrub a compiled hypothesis and compute every score (SEMANTICS.md sections 3-4)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import AblationKind, Hypothesis, TestPlan
from circuitdsl.results import CheckResult, Completeness, ExampleRow, ExpectResult

__all__ = ["run_check", "Progress", "SHARED_DRAWS_NOTE"]

SHARED_DRAWS_NOTE = (
    "APPROXIMATION: this file sets `treeify.shared_draws = true`: copies of a node reached through identity-feature "
    "nodes or through different ports of one receiver share one set of draws, where causal scrubbing gives each its "
    "own (SEMANTICS.md section 3). Exact when no draw lies below the shared copies; otherwise scores can differ "
    "(by up to 0.07 of the gap on compiled circuits with known mechanisms)"
)

Progress = Callable[[str, float, float], None]
"""progress(task description, completed, total); total 0 means unknown."""


def run_check(
    h: Hypothesis,
    *,
    seed: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    progress: Progress | None = None,
    completeness: bool = True,
    clean_cache_bytes: int | None = None,
    tests: TestPlan | None = None,
    minimality: bool = True,
    cache: bool = True,
) -> CheckResult:
    """clean_cache_bytes: clean activations held in memory (default `scrub.DEFAULT_CLEAN_BYTES`); the
    rest are spilled to a temporary file that is removed when the check ends (results do not change).
    tests: the statistical tests to run (SEMANTICS.md section 5); None: the file's `set tests.*` plan.
    A test an `expect` names runs whatever the plan says (circuitdsl.engine.nulltests.wanted_tests).
    cache: read and write clean batches in the on-disk activation cache (engine/diskcache.py; results do
    not change); False (`--no-cache`) neither reads nor writes it."""
    import torch

    from circuitdsl.engine import derive, diskcache, finite, meets, metrics, nulltests, prepare, scores, search
    from circuitdsl.engine.scrub import Engine

    seed = h.seed if seed is None else int(seed)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    say = progress or (lambda *a: None)
    span = h.model.span
    plan = h.tests if tests is None else tests
    from circuitdsl.engine.treeify import refuse_splits

    refuse_splits(h, nulltests.wanted_tests(h, plan))  # before any work (E602)
    say("loading model", 0, 0)
    backend = prepare.load_model(h, device)
    timings["load_model"] = time.perf_counter() - t0

    t = time.perf_counter()
    datasets = prepare.load_datasets(h, backend)
    ds = datasets[h.main_dataset]
    causal = backend.causal
    edge_notes = meets.check_edges(h, ds.examples, causal=causal)
    timings["datasets"] = time.perf_counter() - t

    t = time.perf_counter()
    with (
        torch.no_grad(),
        Engine(
            backend,
            datasets,
            h.main_dataset,
            h.ablation,
            seed=seed,
            batch_size=batch_size,
            clean_bytes=clean_cache_bytes,
            disk_cache=diskcache.open_cache(backend, enabled=cache),
        ) as engine,
    ):
        _check_names(h, ds)
        fwd: dict[str, float] = {}
        fwd_at = [0.0]

        def fwd_mark(phase: str) -> None:  # forward-pass equivalents the phase cost (Engine.forward_equiv)
            now = engine.forward_equiv()
            fwd[phase] = round(now - fwd_at[0], 3)
            fwd_at[0] = now

        clean = engine.clean_logits()
        finite.check_finite(backend, ds, clean, span)  # NaN weights: a diagnostic naming where, not a score of nan
        timings["clean_run"] = time.perf_counter() - t
        fwd_mark("clean_run")

        def m_of(logits) -> np.ndarray:
            return metrics.metric_values(h.metric.kind, logits, ds.examples, clean)

        t = time.perf_counter()
        say("scrubbing the hypothesis", 0, 0)
        sc = engine.scrub(h)
        base = engine.scrub(derive.empty(h))
        m_model = m_of(clean)
        m_scrub = m_of(sc.logits)
        m_base = m_of(base.logits)
        kl = metrics.kl_values(clean, sc.logits)
        kl_base = metrics.kl_values(clean, base.logits)
        timings["scrub"] = time.perf_counter() - t
        fwd_mark("scrub")

        rec = scores.recovered(
            m_model, m_scrub, m_base, resamples=h.bootstrap, seed=seed, ids=[e.id for e in ds.examples]
        )
        gap = None if rec.undefined_reason else rec.gap
        mean_d, med_d, p90_d = scores.abs_delta_stats(m_model, m_scrub)

        def scorer(hh: Hypothesis) -> np.ndarray:
            return m_of(engine.scrub(hh).logits)

        t = time.perf_counter()
        n_rem = len(search.removable_nodes(h))
        done = [0]

        def tick(label, total):
            def f():
                done[0] += 1
                say(label, done[0], total)

            return f

        if minimality and h.minimality_enabled:
            mini = search.minimality(h, scorer, m_scrub, gap, progress=tick("minimality", n_rem))
        else:  # --no-minimality / --only / `set minimality.enabled = false`: no removal is scrubbed, the score is undefined
            from circuitdsl.results import Minimality

            why = "--no-minimality" if h.minimality_enabled else "`set minimality.enabled = false` in the file"
            mini = Minimality((), None, None, 0.0, None, skipped=f"minimality disabled ({why})")
        timings["minimality"] = time.perf_counter() - t
        fwd_mark("minimality")
        t = time.perf_counter()
        if completeness and h.budget.enabled:
            done[0] = 0
            comp = search.completeness(h, scorer, seed=seed, progress=tick("completeness", 0))
        else:
            b = h.budget
            why = "--no-completeness" if h.budget.enabled else "`set completeness.enabled = false` in the file"
            comp = Completeness(
                tuple(b.sizes), b.samples, b.greedy_steps, (), None, 0, f"completeness search disabled ({why})"
            )
        timings["completeness"] = time.perf_counter() - t
        fwd_mark("completeness")

        plan = h.tests if tests is None else tests
        test_names = nulltests.wanted_tests(h, plan)
        test_result = None
        if test_names:
            t = time.perf_counter()
            test_result = nulltests.run_tests(
                h,
                test_names,
                plan=plan,
                seed=seed if plan.seed is None else plan.seed,
                scrub=engine.scrub,
                m_of=m_of,
                m_model=m_model,
                m_scrub=m_scrub,
                m_base=m_base,
                rec=rec,
                minimality=mini,
                engine=engine,
                progress=say,
            )
            timings["tests"] = time.perf_counter() - t
            fwd_mark("tests")

    notes = _notes(h, rec, mini, sc, m_model, m_base) + comp.notes + edge_notes
    rows = tuple(
        ExampleRow(e.id, e.text, tuple(e.tokens), float(a), float(b_), float(c), float(abs(b_ - a)))
        for e, a, b_, c in zip(ds.examples, m_model, m_scrub, m_base)
    )
    partial = CheckResult(
        name=h.name,
        source_path=h.source_path,
        model=h.model.name,
        metric=h.metric.kind.value,
        ablation=str(h.ablation),
        dataset=h.main_dataset,
        seed=seed,
        n=len(ds),
        f_model=float(m_model.mean()),
        f_scrubbed=float(m_scrub.mean()),
        f_baseline=float(m_base.mean()),
        recovered=rec,
        mean_abs_delta=mean_d,
        median_abs_delta=med_d,
        p90_abs_delta=p90_d,
        kl=float(kl.mean()),
        kl_baseline=float(kl_base.mean()),
        reused_class_of_one=sc.reused,
        class_draws=sc.class_draws,
        completeness=comp,
        minimality=mini,
        expects=(),
        examples=rows,
        timings=(),
        notes=notes,
        treeify="shared draws" if sc.shared_draws else "exact",
        tree_nodes=sc.tree_nodes,
        tests=test_result,
    )
    expects = tuple(_expect(partial, x) for x in h.expects)
    timings["total"] = time.perf_counter() - t0
    cost: tuple[tuple[str, float], ...] = (
        ("forward_passes", engine.forward_passes),
        ("block_runs", engine.block_runs),
        ("clean_bytes_in_memory", engine.clean_held),
        ("clean_bytes_spilled", engine.clean_spilled),
    )
    cost += tuple((f"forward_equiv.{k}", v) for k, v in fwd.items())
    if engine.disk_cache is not None:  # clean batches read from / written to the activation cache
        dc = engine.disk_cache
        cost += (("clean_batches_cached", dc.hits), ("clean_batches_written", dc.writes))
    if test_result is not None and test_result.scrubs:
        cost += (("test_scrubs", test_result.scrubs), ("test_block_runs", test_result.block_runs))
    import dataclasses

    return dataclasses.replace(partial, expects=expects, timings=tuple(timings.items()), cost=cost)


def _expect(r: CheckResult, x) -> ExpectResult:
    value = r.score(x.score)
    line = x.span.line if x.span else None
    if value is None:
        reason = {
            "incompleteness": r.completeness.skipped or "; ".join(r.completeness.notes) or "no subset K was evaluated",
            "minimality": r.minimality.skipped or "no claimed node has outgoing edges, or recovered is undefined",
        }.get(x.score, r.recovered.undefined_reason or "the bootstrap interval is undefined")
        if x.score.endswith(".p"):
            reason = _test_reason(r, x.score.split(".", 1)[0])
        return ExpectResult(x.score, x.op.value, x.threshold, None, False, f"undefined: {reason}", line)
    return ExpectResult(
        x.score, x.op.value, x.threshold, float(value), bool(x.op.holds(value, x.threshold)), None, line
    )


def _test_reason(r: CheckResult, name: str) -> str:
    t = r.tests.get(name) if r.tests is not None else None
    if t is None:
        return f"the {name} test did not run"
    return t.undefined_reason or f"the {name} test gave no p-value"


def _check_names(h: Hypothesis, ds) -> None:
    """Every position a claim names must be a named position of the dataset (an unresolved name is an error)."""
    known = set(ds.position_names) | {k for e in ds.examples[:1] for k, _ in e.positions}
    for c in h.claims:
        for p in c.positions or ():
            if p not in known:
                raise CircuitError(
                    [
                        Diagnostic(
                            "E240",
                            f"position `{p}` (claimed for {c.node.name}) is not a named position of dataset `{ds.name}`",
                            c.span,
                            hint=f"named positions: {', '.join(sorted(known)) or 'none'}",
                        )
                    ]
                )


def _notes(h, rec, mini, sc, m_model, m_base) -> tuple[str, ...]:
    notes = [f"numbers are {h.metric.kind.value} under `ablate unclaimed by {h.ablation}`"]
    for sp in h.splits:  # the exact weights each split was scored with (docs/FEATURES.md)
        what = f"subspace `{sp.name}`" if sp.kind.value == "subspace" else f"SAE latents {list(sp.latents)}"
        notes.append(
            f"split {sp.node.name} by {what} from {sp.source} (blake2b {sp.digest[:16]}): parts "
            + ", ".join(pt.name for pt in sp.parts)
        )
    if sc.shared_draws:
        notes.append(SHARED_DRAWS_NOTE)
    if rec.undefined_reason:
        notes.append(f"recovered is undefined: {rec.undefined_reason}")
    if sc.reused:
        notes.append(f"{sc.reused} of {sc.class_draws} class draws found a class holding only x itself; x was reused")
    unchanged = [r.node for r in mini.removals if r.changed_nothing]
    if unchanged:
        extra = (
            (
                " (a component that computes only a function of length or position is invisible to resampling "
                "within a layout; `ablate unclaimed by zero` shows such components)"
            )
            if h.ablation.kind in (AblationKind.RESAMPLE, AblationKind.RESAMPLE_FROM)
            else ""
        )
        notes.append(f"removing {', '.join(unchanged)} changed no example's metric{extra}")
    if mini.redundancy_note:
        notes.append(mini.redundancy_note)
    return tuple(notes)
