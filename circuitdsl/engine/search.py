"""Completeness search and minimality (SEMANTICS.md section 4).

incompleteness(K) = |F(C \\ K) - F(M \\ K)|; K is drawn at random for each size in the budget and grown
greedily. minimality(v) = F(C) - F(C \\ {v}). Every scrub goes through one Engine, whose row memo makes
the many related scrubs share work.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from circuitdsl.engine import derive
from circuitdsl.ir import Hypothesis, NodeId, NodeKind
from circuitdsl.results import Completeness, KTrial, Minimality, NodeRemoval

__all__ = ["Scorer", "completeness", "minimality", "removable_nodes", "searched_sizes"]

Scorer = Callable[[Hypothesis], np.ndarray]
"""Scrub a hypothesis and return per-example metric values."""


def removable_nodes(h: Hypothesis) -> tuple[NodeId, ...]:
    """Claimed nodes with outgoing claimed edges (out has none)."""
    senders = {e.sender for e in h.edges}
    return tuple(sorted(v for v in h.claimed_nodes if v.kind is not NodeKind.OUT and v in senders))


def searched_sizes(sizes, n_nodes: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The sizes of K to draw, each clamped to the number of removable nodes, and notes saying so."""
    out: list[int] = []
    notes = []
    for size in sizes:
        got = min(size, n_nodes)
        if got != size:
            notes.append(
                f"completeness.sizes asks for K of size {size}, but the hypothesis has only {n_nodes} removable "
                f"node{'s' if n_nodes != 1 else ''} (claimed nodes with outgoing edges): searched size {got} instead"
            )
        if got >= 1 and got not in out:
            out.append(got)
    return tuple(out), tuple(notes)


def completeness(h: Hypothesis, score: Scorer, *, seed: int, progress=None) -> Completeness:
    """incompleteness(K) for the empty K, random K of each size (every K of a size with at most `samples`
    subsets), and greedy growth (each step adds the node that most raises it); the worst is reported."""
    b = h.budget
    nodes = removable_nodes(h)
    M = derive.full(h)
    cache: dict[frozenset, KTrial] = {}
    scrubs = 0

    def trial(k: frozenset, how: str) -> KTrial:
        nonlocal scrubs
        if k in cache:
            return cache[k]
        fc = float(score(derive.remove(h, k)).mean())
        fm = float(score(derive.remove(M, k)).mean())
        scrubs += 2
        t = KTrial(tuple(v.name for v in sorted(k)), how, fc, fm, abs(fc - fm))
        cache[k] = t
        if progress:
            progress()
        return t

    trials: list[KTrial] = [trial(frozenset(), "empty")]
    sizes, notes = searched_sizes(b.sizes, len(nodes))
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xC0DE])
    for size in sizes:
        if math.comb(len(nodes), size) <= b.samples:
            for pick in itertools.combinations(nodes, size):
                trials.append(trial(frozenset(pick), "all"))
            continue
        seen = set()
        for _ in range(b.samples):
            sample = frozenset(nodes[i] for i in rng.choice(len(nodes), size=size, replace=False))
            if sample in seen:
                continue
            seen.add(sample)
            trials.append(trial(sample, "random"))
    k: frozenset = frozenset()
    for _ in range(b.greedy_steps):
        cands = [v for v in nodes if v not in k]
        if not cands:
            break
        best = max((trial(k | {v}, "greedy") for v in cands), key=lambda t: t.incompleteness)
        k = frozenset(v for v in nodes if v.name in best.nodes)
        trials.append(best)
    uniq: dict[tuple, KTrial] = {}
    for t in trials:
        uniq.setdefault((t.nodes, t.how), t)
    trials = list(uniq.values())
    worst = max(trials, key=lambda t: t.incompleteness)
    if not any(t.nodes for t in trials):
        why = (
            "the hypothesis has no removable node"
            if not nodes
            else "completeness.samples and completeness.greedy are both 0"
        )
        notes += (f"the search evaluated only the empty K ({why}): incompleteness is undefined",)
    return Completeness(
        tuple(b.sizes), b.samples, b.greedy_steps, tuple(trials), worst, scrubs, searched_sizes=sizes, notes=notes
    )


def minimality(h: Hypothesis, score: Scorer, m_c: np.ndarray, gap: float | None, progress=None) -> Minimality:
    f_c = float(m_c.mean())
    removals = []
    for v in removable_nodes(h):
        m = score(derive.remove(h, {v}))
        raw = f_c - float(m.mean())
        unchanged = bool(np.all(np.abs(m - m_c) <= 1e-6 * (1 + np.abs(m_c))))
        removals.append(NodeRemoval(v.name, float(m.mean()), raw, raw / gap if gap else None, unchanged))
        if progress:
            progress()
    inner = {v for v in removable_nodes(h) if v.kind in (NodeKind.HEAD, NodeKind.MLP)}
    joint = None
    note = None
    total = float(sum(r.raw for r in removals if any(v.name == r.node for v in inner)))
    if len(inner) >= 2:
        joint = f_c - float(score(derive.remove(h, inner)).mean())
        # far apart: by over 25% of the larger, and (where the gap is defined) by over 5% of the gap
        if abs(joint - total) > 0.25 * max(abs(joint), abs(total)) and (
            not gap or abs(joint - total) > 0.05 * abs(gap)
        ):
            note = (
                f"removing the claimed heads/MLPs one at a time costs {total:.4g} in total, but removing them together "
                f"costs {joint:.4g}: "
                + (
                    "some of them back each other up (redundant/backup components look removable one at a time)"
                    if abs(joint) > abs(total)
                    else "single removals overlap (their effects are not additive)"
                )
            )
    fracs = [r.fraction for r in removals if r.fraction is not None]
    return Minimality(tuple(removals), min(fracs) if fracs else None, joint, total, note)
