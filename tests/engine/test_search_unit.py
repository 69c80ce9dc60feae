"""engine/search.py and engine/derive.py without torch: completeness (random and greedy search) and
minimality scored by a fake scorer, a table from (C or M, the removed set K) to per-example values,
so every number below is computed by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from circuitdsl.engine import derive
from circuitdsl.engine.search import completeness, minimality, removable_nodes
from circuitdsl.ir import (
    IDENTITY,
    Ablation,
    Claim,
    EdgeId,
    Feature,
    FeatureKind,
    Hypothesis,
    Metric,
    ModelRef,
    ModelShape,
    NodeId,
    NodeKind,
    Port,
    SearchBudget,
    make_graph,
)

EMBED, POS, OUT = NodeId(NodeKind.EMBED), NodeId(NodeKind.POS), NodeId(NodeKind.OUT)


def head(L, H):
    return NodeId(NodeKind.HEAD, L, H)


def mlp(L):
    return NodeId(NodeKind.MLP, L)


SHAPE = ModelShape(n_layers=2, n_heads=2, n_kv_heads=2, d_model=8, pos_embed="learned", has_mlp=False, vocab_size=10)
A00, A01, A10 = head(0, 0), head(0, 1), head(1, 0)


def hyp(edges, *, budget=SearchBudget(), shape=SHAPE, extra_claims=()) -> Hypothesis:
    nodes = sorted({v for e in edges for v in (e.sender, e.receiver)} | set(extra_claims))
    feat = Feature(FeatureKind.FIELD, ("f",))
    claims = tuple(Claim(v, IDENTITY if v.kind in (NodeKind.EMBED, NodeKind.OUT) else feat) for v in nodes)
    edges = tuple(sorted(set(edges), key=derive.edge_key))
    return Hypothesis(
        name="h",
        source_path=None,
        source_text="",
        model=ModelRef("m", "m", shape),
        datasets=(),
        main_dataset="D",
        metric=Metric(),
        ablation=Ablation(),
        claims=claims,
        edges=edges,
        groups=(),
        expects=(),
        budget=budget,
        graph=make_graph(claims, edges),
    )


EDGES = [
    EdgeId(EMBED, A00, Port.V),
    EdgeId(EMBED, A01, Port.Q),
    EdgeId(A00, A10, Port.K),
    EdgeId(A01, A10, Port.V),
    EdgeId(A10, OUT, Port.IN),
    EdgeId(EMBED, OUT, Port.IN),
]


class FakeScorer:
    """score(H) for H = C \\ K or M \\ K: looks up (which, K) in a table; records every call."""

    def __init__(self, h: Hypothesis, table):
        self.h, self.M, self.table, self.calls = h, derive.full(h), table, []

    def __call__(self, hh: Hypothesis) -> np.ndarray:
        which = "M" if len(hh.claims) == len(self.M.claims) else "C"
        base = self.M if which == "M" else self.h
        k = frozenset(v.name for v in {e.sender for e in base.edges} - {e.sender for e in hh.edges})
        self.calls.append((which, k))
        return np.asarray(self.table(which, k), dtype=np.float64)


def additive(wc: dict, wm: dict, c0=1.0, m0=1.0):
    """F(C \\ K) = c0 - sum wc[v], F(M \\ K) = m0 - sum wm[v] (two examples, same mean)."""

    def table(which, k):
        w, f0 = (wc, c0) if which == "C" else (wm, m0)
        f = f0 - sum(w.get(v, 0.0) for v in k)
        return [f - 0.5, f + 0.5]

    return table


# ---- removable nodes, derive ------------------------------------------------------------------------------


def test_removable_nodes_are_claimed_senders_in_model_order():
    h = hyp(EDGES)
    assert removable_nodes(h) == (EMBED, A00, A01, A10)
    assert removable_nodes(hyp([EdgeId(EMBED, OUT, Port.IN)])) == (EMBED,)


def test_full_hypothesis_by_hand():
    M = derive.full(hyp(EDGES))
    # heads of layer 0 read embed, pos (2 senders x 3 ports x 2 heads = 12); layer 1: 4 senders x 3 x 2 = 24;
    # out reads all 6 writers: 6. Every node claimed with the identity feature.
    assert len(M.edges) == 42 and len(M.claims) == 7
    assert all(c.feature == IDENTITY and c.positions is None for c in M.claims)
    assert EdgeId(A00, head(1, 1), Port.Q) in M.edges and EdgeId(A00, head(0, 1), Port.Q) not in M.edges


def test_full_with_mlps_sequential_and_parallel():
    seq = ModelShape(n_layers=1, n_heads=1, n_kv_heads=1, d_model=8, pos_embed="rotary", has_mlp=True)
    par = ModelShape(
        n_layers=1, n_heads=1, n_kv_heads=1, d_model=8, pos_embed="rotary", has_mlp=True, parallel_attn_mlp=True
    )
    e = [EdgeId(EMBED, OUT, Port.IN)]
    ms, mp = derive.full(hyp(e, shape=seq)), derive.full(hyp(e, shape=par))
    # sequential: a0.0 <- embed (3); m0 <- embed, a0.0 (2); out <- embed, a0.0, m0 (3)
    assert len(ms.edges) == 8 and EdgeId(head(0, 0), mlp(0), Port.IN) in ms.edges
    # parallel: the MLP of layer 0 does not read the heads of layer 0
    assert len(mp.edges) == 7 and EdgeId(head(0, 0), mlp(0), Port.IN) not in mp.edges


def test_full_with_mlps_across_layers():
    two = ModelShape(n_layers=2, n_heads=1, n_kv_heads=1, d_model=8, pos_embed="rotary", has_mlp=True)
    M = derive.full(hyp([EdgeId(EMBED, OUT, Port.IN)], shape=two))
    assert EdgeId(mlp(0), mlp(1), Port.IN) in M.edges and EdgeId(head(0, 0), mlp(1), Port.IN) in M.edges
    assert EdgeId(mlp(1), mlp(0), Port.IN) not in M.edges and EdgeId(head(1, 0), mlp(0), Port.IN) not in M.edges
    assert EdgeId(mlp(0), head(1, 0), Port.K) in M.edges and EdgeId(mlp(1), head(1, 0), Port.K) not in M.edges


def test_remove_drops_outgoing_edges_only_and_empty_keeps_out():
    h = hyp(EDGES)
    r = derive.remove(h, {A00})
    assert set(r.edges) == set(EDGES) - {EdgeId(A00, A10, Port.K)} and r.claims == h.claims and r.expects == ()
    assert EdgeId(EMBED, A00, Port.V) in r.edges  # its incoming edges stay
    e = derive.empty(h)
    assert e.edges == () and [c.node for c in e.claims] == [OUT]


# ---- completeness -----------------------------------------------------------------------------------------

WC = {"embed": 0.0, "a0.0": 0.5, "a0.1": 0.2, "a1.0": 0.1}
WM = {"embed": 0.0, "a0.0": 0.1, "a0.1": 0.3, "a1.0": 0.4}
# |diff| per node: embed 0, a0.0 0.4, a0.1 0.1, a1.0 0.3 (signs: a0.0 +0.4, a0.1 -0.1, a1.0 -0.3)


def _inc(k):
    return abs(sum(WC[v] - WM[v] for v in k))


def test_empty_k_and_its_numbers():
    h = hyp(EDGES, budget=SearchBudget(sizes=(1,), samples=0, greedy_steps=0))
    c = completeness(h, FakeScorer(h, additive(WC, WM, c0=2.0, m0=1.5)), seed=0)
    (t,) = c.trials
    assert t.nodes == () and t.how == "empty"
    assert (t.f_c_minus_k, t.f_m_minus_k, t.incompleteness) == (
        pytest.approx(2.0),
        pytest.approx(1.5),
        pytest.approx(0.5),
    )
    assert c.scrubs == 2


def test_greedy_takes_the_max_at_each_step():
    h = hyp(EDGES, budget=SearchBudget(sizes=(1,), samples=0, greedy_steps=3))
    c = completeness(h, FakeScorer(h, additive(WC, WM)), seed=0)
    greedy = [t for t in c.trials if t.how == "greedy"]
    # step 1: singles 0, 0.4, 0.1, 0.3 -> {a0.0}. step 2: {a0.0}+embed 0.4, +a0.1 0.3, +a1.0 0.1 -> embed (first max)
    # step 3: {a0.0, embed} + a0.1 -> 0.3, + a1.0 -> 0.1 -> a0.1
    assert [t.nodes for t in greedy] == [("a0.0",), ("embed", "a0.0"), ("embed", "a0.0", "a0.1")]
    assert [t.incompleteness for t in greedy] == [pytest.approx(0.4), pytest.approx(0.4), pytest.approx(0.3)]
    assert c.worst.incompleteness == pytest.approx(0.4) and c.worst.nodes == ("a0.0",)


def test_greedy_grows_from_the_best_k_not_the_worst():
    wc = {"embed": 0.0, "a0.0": 0.0, "a0.1": 0.0, "a1.0": 0.0}
    wm = {"embed": 0.05, "a0.0": 0.9, "a0.1": 0.01, "a1.0": 0.2}
    h = hyp(EDGES, budget=SearchBudget(sizes=(1,), samples=0, greedy_steps=2))
    c = completeness(h, FakeScorer(h, additive(wc, wm)), seed=0)
    greedy = [t.nodes for t in c.trials if t.how == "greedy"]
    assert greedy == [("a0.0",), ("a0.0", "a1.0")]
    assert c.worst.nodes == ("a0.0", "a1.0") and c.worst.incompleteness == pytest.approx(1.1)


def test_random_samples_sizes_and_worst():
    h = hyp(EDGES, budget=SearchBudget(sizes=(1, 2), samples=3, greedy_steps=0))
    scorer = FakeScorer(h, additive(WC, WM))
    c = completeness(h, scorer, seed=0)
    rand = [t for t in c.trials if t.how == "random"]
    assert {len(t.nodes) for t in rand} == {1, 2}
    assert sum(len(t.nodes) == 1 for t in rand) <= 3 and sum(len(t.nodes) == 2 for t in rand) <= 3
    for t in c.trials:  # every trial's numbers are the table's
        assert t.incompleteness == pytest.approx(_inc(t.nodes))
        assert t.f_c_minus_k == pytest.approx(1.0 - sum(WC[v] for v in t.nodes))
        assert t.f_m_minus_k == pytest.approx(1.0 - sum(WM[v] for v in t.nodes))
    assert c.worst.incompleteness == max(t.incompleteness for t in c.trials)
    assert "out" not in {v for t in c.trials for v in t.nodes}
    # each distinct K scrubbed twice (C \ K and M \ K), never twice for the same K
    ks = {frozenset(t.nodes) for t in c.trials}
    assert c.scrubs == 2 * len(ks) == len(scorer.calls)
    assert c.searched_sizes == (1, 2) and c.sizes == (1, 2)
    # deterministic for a seed; another seed draws other sets
    again = completeness(h, FakeScorer(h, additive(WC, WM)), seed=0)
    assert again.trials == c.trials


def test_a_size_with_fewer_subsets_than_samples_is_searched_exhaustively():
    h = hyp(EDGES, budget=SearchBudget(sizes=(3,), samples=10, greedy_steps=0))
    c = completeness(h, FakeScorer(h, additive(WC, WM)), seed=0)
    got = {frozenset(t.nodes) for t in c.trials if t.nodes}
    assert got == {frozenset(x) for x in itertools.combinations(["embed", "a0.0", "a0.1", "a1.0"], 3)}
    assert c.worst.incompleteness == pytest.approx(max(_inc(x) for x in got))


def test_sizes_beyond_the_removable_nodes_are_clamped_and_said(tmp_path):
    # issue 11, point 5: sizes = [5] with 2 removable nodes searched only the empty K and reported [5]
    edges = [EdgeId(EMBED, A00, Port.V), EdgeId(A00, OUT, Port.IN)]
    h = hyp(edges, budget=SearchBudget(sizes=(5,), samples=4, greedy_steps=0))
    wc, wm = {"embed": 0.1, "a0.0": 0.2}, {"embed": 0.3, "a0.0": 0.6}
    c = completeness(h, FakeScorer(h, additive(wc, wm)), seed=0)
    assert c.sizes == (5,) and c.searched_sizes == (2,)
    assert any("5" in n and "2 removable" in n for n in c.notes)
    assert [t.nodes for t in c.trials if t.nodes] == [("embed", "a0.0")]
    assert c.worst.incompleteness == pytest.approx(0.6) and c.evaluated_nonempty


def test_only_the_empty_k_leaves_incompleteness_undefined():
    h = hyp(EDGES, budget=SearchBudget(sizes=(1,), samples=0, greedy_steps=0))
    c = completeness(h, FakeScorer(h, additive(WC, WM, c0=1.0, m0=1.0)), seed=0)
    assert not c.evaluated_nonempty and c.worst.nodes == ()
    assert any("only the empty K" in n for n in c.notes)
    h0 = hyp([EdgeId(EMBED, OUT, Port.IN)], budget=SearchBudget(sizes=(1,), samples=0, greedy_steps=0))
    assert not completeness(h0, FakeScorer(h0, additive({}, {})), seed=0).evaluated_nonempty


def test_progress_is_called_per_new_k():
    h = hyp(EDGES, budget=SearchBudget(sizes=(1,), samples=2, greedy_steps=1))
    ticks = []
    c = completeness(h, FakeScorer(h, additive(WC, WM)), seed=0, progress=lambda: ticks.append(1))
    assert len(ticks) == c.scrubs // 2


# ---- minimality -------------------------------------------------------------------------------------------


def test_minimality_sign_raw_and_fraction_by_hand():
    h = hyp(EDGES)
    m_c = np.array([0.5, 1.5])  # F(C) = 1
    drops = {"embed": 0.0, "a0.0": 0.6, "a0.1": -0.2, "a1.0": 0.3}

    def table(which, k):
        return [1.0 - sum(drops[v] for v in k) - 0.5, 1.0 - sum(drops[v] for v in k) + 0.5]

    mini = minimality(h, FakeScorer(h, table), m_c, gap=2.0)
    got = {r.node: r for r in mini.removals}
    # raw = F(C) - F(C \ {v}): positive when removing v hurts
    assert got["a0.0"].raw == pytest.approx(0.6) and got["a0.0"].f_without == pytest.approx(0.4)
    assert got["a0.1"].raw == pytest.approx(-0.2)
    assert got["a0.0"].fraction == pytest.approx(0.3) and got["a0.1"].fraction == pytest.approx(-0.1)
    assert mini.score == pytest.approx(-0.1)  # the smallest fraction
    assert got["embed"].changed_nothing and not got["a0.0"].changed_nothing
    # heads removed together: 0.6 - 0.2 + 0.3 = 0.7 = the sum of single removals -> no redundancy note
    assert mini.joint_raw == pytest.approx(0.7) and mini.sum_single_raw == pytest.approx(0.7)
    assert mini.redundancy_note is None


def test_minimality_fraction_undefined_without_a_gap():
    h = hyp(EDGES)
    mini = minimality(h, FakeScorer(h, lambda w, k: [0.0, 0.0]), np.array([1.0, 1.0]), gap=None)
    assert all(r.fraction is None for r in mini.removals) and mini.score is None
    assert all(r.raw == pytest.approx(1.0) for r in mini.removals)


def test_minimality_redundancy_note_for_backups():
    h = hyp(EDGES)

    # two backup heads: each alone costs nothing, together they cost 1
    def table(which, k):
        both = {"a0.0", "a0.1"} <= k
        return [0.0, 0.0] if both else [1.0, 1.0]

    mini = minimality(h, FakeScorer(h, table), np.array([1.0, 1.0]), gap=1.0)
    assert mini.joint_raw == pytest.approx(1.0) and mini.sum_single_raw == pytest.approx(0.0)
    assert mini.redundancy_note is not None and "back each other up" in mini.redundancy_note


# ---- the search's bookkeeping ---------------------------------------------------------------------------------


def test_searched_sizes_clamps_and_deduplicates():
    from circuitdsl.engine.search import searched_sizes

    assert searched_sizes((1, 2), 4) == ((1, 2), ())
    sizes, notes = searched_sizes((5, 3, 1, 2), 2)
    assert sizes == (2, 1) and len(notes) == 2 and "size 5" in notes[0] and "size 3" in notes[1]
    assert searched_sizes((1, 2), 0)[0] == ()
    assert "1 removable node " in searched_sizes((2,), 1)[1][0]


def test_exhaustive_when_subsets_do_not_outnumber_samples_then_the_next_size():
    # 4 removable nodes: 4 subsets of size 3 and 4 of size 1, samples = 4: every one of them, labelled `all`
    h = hyp(EDGES, budget=SearchBudget(sizes=(3, 1), samples=4, greedy_steps=0))
    c = completeness(h, FakeScorer(h, additive(WC, WM)), seed=0)
    got = [(len(t.nodes), t.how) for t in c.trials if t.nodes]
    assert got == [(3, "all")] * 4 + [(1, "all")] * 4
    assert c.notes == ()


def test_random_draws_are_the_seeded_ones():
    # 6 subsets of size 2, 5 samples drawn at random (with repeats): the K drawn
    # are exactly those of numpy's generator seeded with (seed, 0xC0DE), repeats skipped and sampling going on
    h = hyp(EDGES, budget=SearchBudget(sizes=(2,), samples=5, greedy_steps=0))
    c = completeness(h, FakeScorer(h, additive(WC, WM)), seed=5)
    names = ["embed", "a0.0", "a0.1", "a1.0"]
    rng = np.random.default_rng([5, 0xC0DE])
    want = []
    for _ in range(7):
        pick = tuple(sorted(rng.choice(4, size=2, replace=False)))
        if pick not in want:
            want.append(pick)
    assert [t.nodes for t in c.trials if t.how == "random"] == [tuple(names[i] for i in p) for p in want]
    assert len(want) < 5  # a repeat was drawn and skipped, and the sampling went on after it
    assert c.notes == ()


def test_why_only_the_empty_k():
    h = hyp(EDGES, budget=SearchBudget(sizes=(1,), samples=0, greedy_steps=0))
    c = completeness(h, FakeScorer(h, additive(WC, WM)), seed=0)
    assert any("completeness.samples and completeness.greedy are both 0" in n for n in c.notes)
    h0 = hyp([], budget=SearchBudget(sizes=(1,), samples=3, greedy_steps=2), extra_claims=[OUT])
    c0 = completeness(h0, FakeScorer(h0, additive({}, {})), seed=0)
    assert any("no removable node" in n for n in c0.notes) and not c0.evaluated_nonempty


def test_greedy_stops_when_every_node_is_in_k():
    h = hyp(
        [EdgeId(EMBED, A00, Port.V), EdgeId(A00, OUT, Port.IN)],
        budget=SearchBudget(sizes=(1,), samples=0, greedy_steps=5),
    )
    c = completeness(h, FakeScorer(h, additive({"embed": 0.1, "a0.0": 0.2}, {})), seed=0)
    assert [t.nodes for t in c.trials if t.how == "greedy"] == [("a0.0",), ("embed", "a0.0")]


def _mini(c_joint_single, gap, inner_edges=EDGES):
    """minimality with F(C) = 1 and F(C \\ K) = 1 - cost(K) for the given cost function."""
    h = hyp(inner_edges)
    return minimality(h, FakeScorer(h, lambda which, k: [1.0 - c_joint_single(k)] * 2), np.array([1.0, 1.0]), gap=gap)


def test_joint_removal_needs_two_heads_or_mlps():
    two = [EdgeId(EMBED, A00, Port.V), EdgeId(A00, A10, Port.V), EdgeId(A10, OUT, Port.IN)]
    m = _mini(lambda k: 0.5 * len(k), 1.0, two)
    assert m.joint_raw == pytest.approx(1.0)  # {a0.0, a1.0} removed together
    one = [EdgeId(EMBED, A00, Port.V), EdgeId(A00, OUT, Port.IN)]
    assert _mini(lambda k: 0.5 * len(k), 1.0, one).joint_raw is None


def test_redundancy_note_thresholds():
    heads = {"a0.0", "a0.1", "a1.0"}

    def cost(joint, single):
        # single removals of a0.0 cost `single` (others 0), removing the three heads together `joint`
        return lambda k: joint if heads <= k else (single if k == {"a0.0"} else 0.0)

    # over 25% apart but under 5% of a large gap: no note; with a negative gap (a loss) just the same
    assert _mini(cost(0.1, 0.07), 10.0).redundancy_note is None
    assert _mini(cost(0.1, 0.07), -10.0).redundancy_note is None
    # exactly 25% apart: not over it; 15% of 2: within it
    assert _mini(cost(1.0, 0.75), 1.0).redundancy_note is None
    assert _mini(cost(2.0, 1.7), 1.0).redundancy_note is None
    # over 25% apart, exactly 5% of the gap: not over it; a little more: the note
    assert _mini(cost(1.0, 0.5), 10.0).redundancy_note is None
    assert _mini(cost(1.0, 0.5), 9.0).redundancy_note is not None
    # within 25% (though over 5% of the gap): no note
    assert _mini(cost(1.0, 0.9), 1.0).redundancy_note is None
    # no gap (recovered undefined): the relative test alone
    assert _mini(cost(1.0, 0.5), None).redundancy_note is not None
    # overlapping single removals (they add up to more than the joint removal)
    note = _mini(cost(0.5, 1.0), 1.0).redundancy_note
    assert note is not None and "overlap" in note
    # removals that help (negative costs, e.g. some removals under a loss): sizes compare in magnitude
    assert _mini(cost(-1.0, -0.78), 1.0).redundancy_note is None  # 0.22 apart, within 25% of 1
    assert _mini(cost(-0.78, -1.0), 1.0).redundancy_note is None
    assert "back each other up" in _mini(cost(-1.0, -0.5), 1.0).redundancy_note
    assert "overlap" in _mini(cost(0.5, -1.0), 1.0).redundancy_note
    assert "overlap" in _mini(cost(1.0, -1.0), 1.0).redundancy_note  # |joint| = |sum|: not larger


def test_sum_of_single_removals_counts_heads_and_mlps_only():
    def cost(k):
        return {frozenset({"embed"}): 0.3, frozenset({"a0.0"}): 0.2, frozenset({"a0.1"}): 0.1}.get(frozenset(k), 0.0)

    m = _mini(cost, 1.0)
    assert {r.node: r.raw for r in m.removals} == {
        "embed": pytest.approx(0.3),
        "a0.0": pytest.approx(0.2),
        "a0.1": pytest.approx(0.1),
        "a1.0": 0.0,
    }
    assert m.sum_single_raw == pytest.approx(0.3)  # embed is not a head or an MLP


def test_claimed_nodes_that_send_nothing_are_not_removable():
    h = hyp([EdgeId(EMBED, A00, Port.V), EdgeId(A00, OUT, Port.IN)], extra_claims=[A10])
    assert A10 in h.claimed_nodes and removable_nodes(h) == (EMBED, A00)


def test_changed_nothing_up_to_float_tolerance():
    h = hyp([EdgeId(EMBED, A00, Port.V), EdgeId(A00, OUT, Port.IN)])
    # m(C \ {v}) - m(C) at exactly 1e-6 x (1 + |m(C)|) still counts as unchanged; twice that does not
    m_c = np.array([0.0, 0.0])
    mini = minimality(h, FakeScorer(h, lambda w, k: [1e-6, 0.0] if k == {"embed"} else [2e-6, 0.0]), m_c, gap=1.0)
    got = {r.node: r.changed_nothing for r in mini.removals}
    assert got == {"embed": True, "a0.0": False}
    # the tolerance grows with |m(C)|: at m(C) = 3 it is 4e-6
    m_c = np.array([3.0, 3.0])
    mini = minimality(
        h, FakeScorer(h, lambda w, k: [3.0 + 3e-6, 3.0] if k == {"embed"} else [3.0 + 6e-6, 3.0]), m_c, gap=1.0
    )
    assert {r.node: r.changed_nothing for r in mini.removals} == {"embed": True, "a0.0": False}
