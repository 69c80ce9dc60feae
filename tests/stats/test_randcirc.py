"""Random circuits of a hypothesis's size (circuitdsl.engine.randcirc): sizes per kind, wiring, keys. No torch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from circuitdsl.compiler import compile_file, compile_source
from circuitdsl.engine import derive, randcirc, stats
from circuitdsl.ir import IDENTITY, NodeKind

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def refined():
    return compile_file(ROOT / "hypotheses" / "induction_refined.circuit").hypothesis


@pytest.fixture(scope="module")
def ioi():
    r = compile_file(ROOT / "hypotheses" / "ioi_smollm2.circuit")
    if r.hypothesis is None:
        pytest.skip("ioi_smollm2.circuit does not compile here: " + r.render("concise"))
    return r.hypothesis


def _kinds(nodes):
    return Counter(v.kind for v in nodes if v.kind is not NodeKind.OUT)


def test_sizes_per_kind_and_per_stratum(refined):
    want_nodes = _kinds(refined.claimed_nodes)
    assert want_nodes == {NodeKind.EMBED: 1, NodeKind.POS: 1, NodeKind.HEAD: 7}
    want_edges = Counter(randcirc.stratum(e) for e in refined.edges)
    assert not randcirc.is_wired(refined)
    for r in range(30):
        rc = randcirc.random_circuit(refined, stats.keyed_rng(0, "circuit", r))
        assert _kinds(rc.claimed_nodes) == want_nodes
        assert Counter(randcirc.stratum(e) for e in rc.edges) == want_edges
        assert len(rc.edges) == len(refined.edges) == 33
        assert all(c.feature == IDENTITY and c.positions is None for c in rc.claims)
        fwd = set(randcirc.forward_edges(rc.claimed_nodes, rc.model.shape))
        assert set(rc.edges) <= fwd  # only edges the model graph has, among the random nodes
        assert rc.ablation == refined.ablation and rc.treeify == refined.treeify


def test_keyed_and_varied(refined):
    a = randcirc.random_circuit(refined, stats.keyed_rng(0, "circuit", 1))
    b = randcirc.random_circuit(refined, stats.keyed_rng(0, "circuit", 1))
    assert a.edges == b.edges and a.claims == b.claims
    others = {randcirc.random_circuit(refined, stats.keyed_rng(0, "circuit", r)).edges for r in range(10)}
    assert len(others) == 10


def test_nodes_are_uniform(refined):
    """Each of the 8 heads is in a random 7-head set with probability 7/8."""
    seen = Counter()
    n = 800
    for r in range(n):
        seen.update(v for v in randcirc.random_nodes(refined, stats.keyed_rng(5, "u", r)) if v.kind is NodeKind.HEAD)
    assert len(seen) == 8
    assert all(abs(c / n - 7 / 8) < 0.05 for c in seen.values())


def test_wired_hypothesis_gets_every_forward_edge(ioi):
    assert randcirc.is_wired(ioi)
    want = _kinds(ioi.claimed_nodes)
    assert want[NodeKind.MLP] == 30 and want[NodeKind.EMBED] == 1
    for r in range(3):
        rc = randcirc.random_circuit(ioi, stats.keyed_rng(0, "circuit", r))
        assert _kinds(rc.claimed_nodes) == want
        assert set(rc.edges) == set(randcirc.forward_edges(rc.claimed_nodes, rc.model.shape))
        assert randcirc.is_wired(rc)


def test_shortfall_is_drawn_from_the_same_port_first():
    # C: a0.0 and a0.1 into out; a1.0 reads both through q. A random circuit of 3 heads whose heads all fall
    # in one layer has no head -> head edge: the q edges it owes come from other q edges (embed -> head.q)
    # as far as there are any, then from any other forward edge.
    h = compile_source(
        "model tiny\ndataset d = induction(n = 8)\nedge embed -> a0.0 -> a1.0.q\nedge a0.1 -> a1.0.q\nedge a1.0 -> out\n"
        "edge embed -> a0.1\n",
        "<t>",
    ).hypothesis
    counts = Counter(randcirc.stratum(e) for e in h.edges)
    assert counts[("head", "head", "q")] == 2
    n_same_layer = 0
    for r in range(200):
        rc = randcirc.random_circuit(h, stats.keyed_rng(0, "circuit", r))
        assert len(rc.edges) == len(h.edges)
        layers = {v.layer for v in rc.claimed_nodes if v.kind is NodeKind.HEAD}
        got = Counter(randcirc.stratum(e) for e in rc.edges)
        if len(layers) == 1:
            n_same_layer += 1
            assert got[("head", "head", "q")] == 0
            q_pool = [e for e in randcirc.forward_edges(rc.claimed_nodes, rc.model.shape) if e.port.value == "q"]
            want_q = sum(n for k, n in counts.items() if k[2] == "q")
            assert sum(n for k, n in got.items() if k[2] == "q") == min(want_q, len(q_pool))
    assert n_same_layer > 0


def test_describe(refined, ioi):
    assert "7 heads" in randcirc.describe(refined) and "per (sender kind, receiver kind, port)" in randcirc.describe(
        refined
    )
    assert "C is wired" in randcirc.describe(ioi)


def test_forward_edges_are_the_full_hypothesis(refined):
    nodes = derive.model_nodes(refined.model.shape)
    assert set(randcirc.forward_edges(nodes, refined.model.shape)) == set(derive.full(refined).edges)
    assert len(derive.full(refined).edges) == 106
