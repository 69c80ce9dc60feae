"""The statistical tests of SEMANTICS.md section 5, run through the check's one Engine.

* **sufficiency**: recovered of C against recovered of R random circuits of C's size
  (circuitdsl.engine.randcirc); a null draw is at least as extreme when it is at least as close to 1.
* **necessity**: F(M \\ C), the full hypothesis with the outgoing edges of C's heads and MLPs removed,
  against F(M \\ R) for R random sets of as many heads and MLPs; a draw is at least as extreme when it
  is at least as bad (lower, or higher for loss and kl).
* **equivalence**: the two one-sided binomial tests on #{x : m(scrubbed, x) > m(model, x)}.
* **minimality, per node**: F(C) - F(C \\ {v}) (signed: positive = removing v hurts) against the cost
  of removing one random node of v's kind from each random circuit; Holm-Bonferroni across C's nodes.

Every scrub goes through the Engine that scrubbed C: clean activations are computed once, and the row
memo shares the rows that the scrubs have in common. docs/TESTS.md has the decisions and their reasons.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from circuitdsl.engine import derive, randcirc, stats
from circuitdsl.ir import TEST_NAMES, Hypothesis, NodeId, NodeKind, TestPlan
from circuitdsl.results import EquivalenceTest, MinimalityTest, NodeTest, NullTest, Recovered, Tests

__all__ = ["wanted_tests", "run_tests", "equivalence_test", "TIE_RTOL"]

TIE_RTOL = 1e-6
"""m(scrubbed, x) and m(model, x) within TIE_RTOL * (1 + |m(model, x)|) are a tie (left out of the
equivalence test): metrics are float64 computed from float32 logits."""


def wanted_tests(h: Hypothesis, plan: TestPlan | None = None) -> tuple[str, ...]:
    """The tests a check of h runs: those its plan enables, and those an `expect` names (`sufficiency.p`)."""
    plan = plan or h.tests
    named = {x.score.split(".", 1)[0] for x in h.expects if x.score.endswith(".p")} if plan.follow_expects else set()
    return tuple(t for t in TEST_NAMES if plan.enabled(t) or t in named)


def equivalence_test(m_model: np.ndarray, m_scrub: np.ndarray, eps: float) -> EquivalenceTest:
    m_model = np.asarray(m_model, dtype=np.float64)
    m_scrub = np.asarray(m_scrub, dtype=np.float64)
    tol = TIE_RTOL * (1.0 + np.abs(m_model))
    above = int(np.count_nonzero(m_scrub > m_model + tol))
    below = int(np.count_nonzero(m_scrub < m_model - tol))
    ties = len(m_model) - above - below
    n = above + below
    if n == 0:
        return EquivalenceTest(
            eps,
            0,
            0,
            ties,
            None,
            None,
            None,
            f"on all {ties} examples m(scrubbed, x) equals m(model, x): no untied example to test",
        )
    lo, hi, p = stats.equivalence_p(above, n, eps)
    return EquivalenceTest(eps, n, above, ties, lo, hi, p)


def _pass_nodes(h: Hypothesis) -> int:
    sh = h.model.shape
    return sh.n_layers * sh.n_heads + (sh.n_layers if sh.has_mlp else 0)


class _TooLarge(Exception):
    pass


def run_tests(
    h: Hypothesis,
    names: tuple[str, ...],
    *,
    plan: TestPlan,
    seed: int,
    scrub: Callable,
    m_of: Callable,
    m_model: np.ndarray,
    m_scrub: np.ndarray,
    m_base: np.ndarray,
    rec: Recovered,
    minimality,
    engine=None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Tests:
    """Run the named tests (a subset of ir.TEST_NAMES). `seed` seeds the random circuits and node sets
    (the plan's `seed`, else the check's); `minimality` is the check's Minimality (its removals are the
    observed per-node costs). `scrub(h)` returns the engine's ScrubOutput and `m_of(logits)` the
    per-example metric; `engine` (optional) is read for block-run counts."""
    from circuitdsl.engine.treeify import TreeTooLarge, count

    t_all = time.perf_counter()
    runs0 = getattr(engine, "block_runs", 0)
    say = progress or (lambda *a: None)
    R = int(plan.r)
    lower_better = h.metric.kind.lower_is_better
    sign = -1.0 if lower_better else 1.0
    f_base = float(np.mean(m_base))
    gap = rec.gap if rec.undefined_reason is None else None
    scrubs = [0]
    rows = [0]

    def score(hh: Hypothesis) -> float:
        if not hh.treeify.shared_draws:
            n, _ = count(hh)
            if n > hh.treeify.max_nodes:
                raise _TooLarge(
                    f"`{hh.name}` needs {n:,} distinct computations per example, more than "
                    f"treeify.max_nodes = {hh.treeify.max_nodes:,} (E601)"
                )
        try:
            so = scrub(hh)
        except TreeTooLarge as e:
            raise _TooLarge(e.diagnostics[0].message) from None
        scrubs[0] += 1
        rows[0] += int(so.rows_computed)
        return float(np.mean(m_of(so.logits)))

    circuits: dict[int, Hypothesis] = {}
    f_rc: dict[int, float] = {}

    def circuit(r: int) -> Hypothesis:
        if r not in circuits:
            circuits[r] = randcirc.random_circuit(h, stats.keyed_rng(seed, "circuit", r), f"random circuit {r}")
        return circuits[r]

    circ_scrubs, circ_secs = [0], [0.0]  # scrubs and seconds spent on the random circuits themselves

    def f_circuit(r: int) -> float:
        if r not in f_rc:
            t = time.perf_counter()
            f_rc[r] = score(circuit(r))
            circ_scrubs[0] += 1
            circ_secs[0] += time.perf_counter() - t
        return f_rc[r]

    equivalence: EquivalenceTest | None = None
    minimality_test: MinimalityTest | None = None
    sufficiency: NullTest | None = None
    necessity: NullTest | None = None

    if "equivalence" in names:
        equivalence = equivalence_test(m_model, m_scrub, plan.eps)

    if "minimality" in names:
        t0, s0 = time.perf_counter(), scrubs[0]
        from circuitdsl.engine.search import removable_nodes

        by_name: dict[str, NodeId] = {v.name: v for v in removable_nodes(h)}
        removals = [x for x in minimality.removals if x.node in by_name]
        kinds_needed = sorted({by_name[x.node].kind for x in removals}, key=lambda k: randcirc.COUNTED_KINDS.index(k))
        nulls: dict[NodeKind, list[float]] = {}
        reason = None
        if getattr(minimality, "skipped", None):
            reason = f"the per-node test needs the removals: {minimality.skipped}"
        elif not removals:
            reason = "C has no claimed node with outgoing edges"
        else:
            nulls = {kind: [] for kind in kinds_needed}
            try:
                # circuit by circuit: the removals from one random circuit reuse its rows from the memo
                for r in range(R):
                    say("test: minimality", r, R)
                    rc = circuit(r)
                    f_r = f_circuit(r)
                    for kind in kinds_needed:
                        cands = [v for v in rc.claimed_nodes if v.kind is kind]
                        u = cands[int(stats.keyed_rng(seed, "minimality", kind.value, r).integers(len(cands)))]
                        nulls[kind].append(sign * (f_r - score(derive.remove(rc, {u}))) + 0.0)
            except _TooLarge as e:
                reason = f"a random circuit cannot be scrubbed exactly: {e}"
        nodes: list[NodeTest] = []
        p_all = None
        if reason is None:
            raw_p = [stats.p_value(sign * x.raw, nulls[by_name[x.node].kind], "greater") for x in removals]
            adj = stats.holm(raw_p)
            nodes = [
                NodeTest(x.node, by_name[x.node].kind.value, sign * x.raw + 0.0, p, a)
                for x, p, a in zip(removals, raw_p, adj)
            ]
            p_all = max(adj)
        else:
            nodes = [NodeTest(x.node, by_name[x.node].kind.value, sign * x.raw + 0.0, None, None) for x in removals]
        n_scr, secs = scrubs[0] - s0, time.perf_counter() - t0
        if "sufficiency" in names:  # the random circuits' own scrubs are the sufficiency test's
            n_scr, secs = n_scr - circ_scrubs[0], secs - circ_secs[0]
        minimality_test = MinimalityTest(
            tuple(nodes),
            tuple((k.value, tuple(v)) for k, v in nulls.items()),
            R,
            p_all,
            seed,
            n_scr,
            secs,
            reason,
            h.metric.kind.unit,
        )

    if "sufficiency" in names:
        t0, c0_secs = time.perf_counter(), circ_secs[0]
        stat = "recovered of the circuit (C: its own features; null: random circuits of C's size, identity features)"
        reason = None
        null: list[float | None] = []
        if rec.value is None:
            reason = f"recovered is undefined: {rec.undefined_reason}"
        else:
            try:
                for r in range(R):
                    say("test: sufficiency", r, R)
                    null.append((f_circuit(r) - f_base) / gap)  # type: ignore[operator]
            except _TooLarge as e:
                reason = f"a random circuit cannot be scrubbed exactly: {e}"
        p = None if reason else stats.p_value(rec.value, null, "closer_to_1")  # type: ignore[arg-type]
        # scrubs and seconds of every random circuit (some were scrubbed by the minimality test, before this one)
        sufficiency = NullTest(
            "sufficiency",
            stat,
            "closer_to_1",
            rec.value,
            tuple(null),
            R,
            p,
            seed,
            circ_scrubs[0],
            circ_secs[0] + (time.perf_counter() - t0) - (circ_secs[0] - c0_secs),
            reason,
            "recovered",
        )

    if "necessity" in names:
        t0, s0 = time.perf_counter(), scrubs[0]
        kinds = (NodeKind.HEAD, NodeKind.MLP)
        c_nodes = frozenset(v for v in h.claimed_nodes if v.kind in kinds)
        direction = "greater" if lower_better else "less"
        stat = (
            f"F(M \\ X) in {h.metric.kind.unit}: the full model with the outgoing edges of X's nodes removed; "
            "X = C's heads and MLPs, null: random sets of as many heads and MLPs"
        )
        reason = None
        obs = None
        null = []
        notes: tuple[str, ...] = ()
        if not c_nodes:
            reason = "C claims no head or MLP (embeddings are the input itself and are not removed)"
        else:
            M = derive.full(h)
            try:
                say("test: necessity", 0, R + 1)
                obs = score(derive.remove(M, c_nodes, " [necessity]"))
                for r in range(R):
                    say("test: necessity", r + 1, R + 1)
                    picked = randcirc.random_nodes(h, stats.keyed_rng(seed, "necessity", r), kinds)
                    null.append(score(derive.remove(M, frozenset(picked), f" [necessity {r}]")))
            except _TooLarge as e:
                reason = f"M \\ X cannot be scrubbed exactly: {e}"
            if gap and obs is not None:
                notes = (
                    f"F(M \\ C) = {obs:.4g} is {(obs - f_base) / gap:.3g} of the gap F(model) - F(baseline) above the baseline",
                )
        p = None if reason or obs is None else stats.p_value(obs, null, direction)
        necessity = NullTest(
            "necessity",
            stat,
            direction,
            obs,
            tuple(null),
            R,
            p,
            seed,
            scrubs[0] - s0,
            time.perf_counter() - t0,
            reason,
            h.metric.kind.unit,
            notes,
        )

    parts = [randcirc.describe(h)] if any(t in names for t in ("sufficiency", "minimality")) else []
    counts = randcirc.node_counts(h, (NodeKind.HEAD, NodeKind.MLP))
    if "necessity" in names and any(counts.values()):
        parts.append(
            "necessity: random sets of "
            + ", ".join(f"{n} {k.value}{'s' if n != 1 else ''}" for k, n in counts.items() if n)
        )
    return Tests(
        r=R,
        seed=seed,
        sufficiency=sufficiency,
        necessity=necessity,
        equivalence=equivalence,
        minimality=minimality_test,
        random_circuits="; ".join(parts),
        scrubs=scrubs[0],
        rows=rows[0],
        pass_nodes=_pass_nodes(h),
        block_runs=getattr(engine, "block_runs", 0) - runs0,
        seconds=time.perf_counter() - t_all,
    )
