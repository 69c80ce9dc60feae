"""MIB circuit-track JSON and edge rankings (circuitdsl.mib): names, round trips, readers. No torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from circuitdsl.compiler import compile_file, compile_source
from circuitdsl.engine import derive
from circuitdsl.ir import EdgeId, ModelShape, NodeId, NodeKind, Port
from circuitdsl.mib import (
    Ranking,
    RankingError,
    circuit_text,
    load_mib,
    mib_edge_name,
    model_edges,
    parse_edge,
    parse_node,
    read_ranking,
    read_rankings,
    to_mib,
)

ROOT = Path(__file__).resolve().parents[2]
ROTARY = ModelShape(n_layers=3, n_heads=2, n_kv_heads=2, d_model=16, pos_embed="rotary", has_mlp=True)
TINY = compile_file(ROOT / "hypotheses" / "induction_refined.circuit").hypothesis


def H(L, h):
    return NodeId(NodeKind.HEAD, L, h)


def test_names_both_spellings():
    sh = TINY.model.shape
    assert parse_node("a1.2", sh) == parse_node("a1.h2", sh) == (H(1, 2),)
    assert parse_node("input", sh) == (NodeId(NodeKind.EMBED), NodeId(NodeKind.POS))  # learned positions
    assert parse_node("input", ROTARY) == (NodeId(NodeKind.EMBED),)
    assert parse_node("logits", sh) == parse_node("out", sh) == (derive.OUT,)
    assert parse_edge("a0.1 -> a1.2.k", sh) == parse_edge("a0.h1->a1.h2<k>", sh) == (EdgeId(H(0, 1), H(1, 2), Port.K),)
    assert len(parse_edge("a0.1 -> a1.2", sh)) == 3
    assert parse_edge("m0->logits", ROTARY) == (EdgeId(NodeId(NodeKind.MLP, 0), derive.OUT, Port.IN),)
    assert parse_edge("a0.h1->m0", ROTARY) == (EdgeId(H(0, 1), NodeId(NodeKind.MLP, 0), Port.IN),)
    for bad in (
        "a1.0 -> a0.1.q",
        "a0.0 -> a0.1.q",
        "a9.0 -> out",
        "m0 -> out",
        "a0.0 -> a1.0.in",
        "out -> a1.0",
        "a0.0 -> embed",
        "nonsense",
    ):
        with pytest.raises(RankingError):
            parse_edge(bad, sh)
    assert mib_edge_name(EdgeId(NodeId(NodeKind.POS), H(1, 0), Port.V)) == "input->a1.h0<v>"
    assert mib_edge_name(EdgeId(H(1, 0), derive.OUT, Port.IN)) == "a1.h0->logits"


def test_model_edges_count_like_mib():
    # MIB's GPT-2 small graph has 32491 edges; circuitdsl's GPT-2 graph splits MIB's `input` into embed and pos
    gpt2 = ModelShape(n_layers=12, n_heads=12, n_kv_heads=12, d_model=768, pos_embed="rotary", has_mlp=True)
    assert len(model_edges(gpt2)) == 32491
    assert len(to_mib(gpt2, [])["edges"]) == 32491


def _input_closure(edges):
    """embed and pos both stand for MIB's input: an edge from one implies the same edge from the other."""
    out = set(edges)
    for e in edges:
        if e.sender.kind in (NodeKind.EMBED, NodeKind.POS):
            for k in (NodeKind.EMBED, NodeKind.POS):
                out.add(EdgeId(NodeId(k), e.receiver, e.port))
    return out


def test_round_trip_mib_json_and_circuits():
    sh = TINY.model.shape
    d = to_mib(sh, TINY.edges)
    r = load_mib(json.loads(json.dumps(d)), sh)
    assert set(r.in_graph) == _input_closure(TINY.edges)
    assert to_mib(sh, r.in_graph) == d  # MIB -> circuitdsl -> MIB is exact
    assert (
        d["nodes"]["a0.h1"]["in_graph"] is False
        and d["nodes"]["a0.h0"]["in_graph"]
        and d["nodes"]["logits"]["in_graph"]
    )
    assert (
        sum(v["in_graph"] for v in d["edges"].values()) == 33 - 0
    )  # embed/pos edges of C go to distinct receivers ports
    # with scores: every score survives (merged input edges keep the larger magnitude)
    rng = np.random.default_rng(0)
    scores = {e: float(rng.normal()) for e in model_edges(ROTARY)}
    d2 = to_mib(ROTARY, [e for e, s in scores.items() if s > 1], scores)
    r2 = load_mib(d2, ROTARY)
    assert r2.edges == scores and r2.in_graph == {e for e, s in scores.items() if s > 1}
    assert to_mib(ROTARY, r2.in_graph, r2.edges) == d2


def test_round_trip_through_a_circuit_file(tmp_path):
    sh = TINY.model.shape
    d = to_mib(sh, TINY.edges)
    edges = load_mib(d, sh).in_graph
    text = circuit_text(edges, TINY.source_text, TINY.source_path, comment="imported\nfor a test")
    out = tmp_path / "back.circuit"
    out.write_text(text)
    back = compile_file(out)
    assert back.hypothesis is not None, back.render()
    assert set(back.hypothesis.edges) == set(edges)
    assert (
        back.hypothesis.model.resolved == TINY.model.resolved
        and back.hypothesis.datasets[0].args == TINY.datasets[0].args
    )
    assert to_mib(sh, back.hypothesis.edges) == d
    assert text.startswith("# imported\n# for a test\n") and "expect" not in text


def test_mib_cfg_and_unknown_edges_are_refused():
    sh = TINY.model.shape
    d = to_mib(sh, TINY.edges)
    with pytest.raises(RankingError, match="n_layers"):
        load_mib({**d, "cfg": {**d["cfg"], "n_layers": 3}}, sh)
    # MIB's graphs always hold MLP nodes: in an attention-only model their edges are skipped unless in the graph
    assert load_mib({"edges": {**d["edges"], "m0->logits": {"score": 0.3, "in_graph": False}}}, sh).in_graph == set(
        load_mib(d, sh).in_graph
    )
    with pytest.raises(RankingError, match="no MLPs"):
        load_mib({"edges": {"m0->logits": {"score": 0.3, "in_graph": True}}}, sh)


def test_readers(tmp_path):
    sh = TINY.model.shape
    (tmp_path / "e.csv").write_text("edge,score\na0.0 -> a1.0.k,2\nembed -> out,-3\n\n")
    r = read_ranking(tmp_path / "e.csv", sh)
    assert r.edges == {EdgeId(H(0, 0), H(1, 0), Port.K): 2.0, EdgeId(NodeId(NodeKind.EMBED), derive.OUT, Port.IN): -3.0}
    (tmp_path / "n.json").write_text(json.dumps({"a1.0": 0.5, "a0.0": -2}))
    rn = read_ranking(tmp_path / "n.json", sh)
    assert rn.nodes == {H(1, 0): 0.5, H(0, 0): -2.0}
    # node scores: min |score| over scored endpoints; unscored endpoints constrain nothing; none scored ranks first
    assert rn.edge_score(EdgeId(H(0, 0), H(1, 0), Port.Q)) == 0.5
    assert rn.edge_score(EdgeId(H(0, 0), derive.OUT, Port.IN)) == 2.0
    assert rn.edge_score(EdgeId(NodeId(NodeKind.EMBED), derive.OUT, Port.IN)) == float("inf")
    order = rn.ranked(model_edges(sh))
    sc = [rn.edge_score(e) for e in order]
    assert sc == sorted(sc, reverse=True) and sc[0] == float("inf") and sc[-1] == 0.5
    (tmp_path / "l.json").write_text(json.dumps([{"edge": "a1.h3->logits", "score": 4}, {"node": "a0.2", "score": 1}]))
    rl = read_ranking(tmp_path / "l.json", sh)
    assert rl.edges == {EdgeId(H(1, 3), derive.OUT, Port.IN): 4.0} and rl.nodes == {H(0, 2): 1.0}
    sweep = {
        "kind": "heads",
        "ranked": [{"node": "a1.2", "patched": 1.0, "effect": 0.7}, {"node": "a0.1", "effect": None}],
    }
    (tmp_path / "s.json").write_text(json.dumps(sweep))
    assert read_ranking(tmp_path / "s.json", sh).nodes == {H(1, 2): 0.7}
    path = {"kind": "path", "receivers": ["a1.0.q", "a1.0.k"], "ranked": [{"node": "a0.3", "effect": -0.2}]}
    (tmp_path / "p.json").write_text(json.dumps(path))
    assert read_ranking(tmp_path / "p.json", sh).edges == {
        EdgeId(H(0, 3), H(1, 0), Port.Q): -0.2,
        EdgeId(H(0, 3), H(1, 0), Port.K): -0.2,
    }
    merged = read_rankings([tmp_path / "e.csv", tmp_path / "n.json"], sh)
    assert merged.edges == r.edges and merged.nodes == rn.nodes and len(merged.sources) == 2
    for name, text in [
        ("bad.csv", "who,what\n"),
        ("bad2.csv", "edge,score\na0.0 -> a1.0.k,x\n"),
        ("bad.json", "{"),
        ("bad2.json", '{"a9.9": 1}'),
        ("bad3.json", '{"a0.0": "high"}'),
        ("bad4.json", "[1]"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(RankingError):
            read_ranking(tmp_path / name, sh)
    with pytest.raises(RankingError, match="cannot read"):
        read_ranking(tmp_path / "missing.json", sh)


def test_ranking_ties_in_model_order_and_signed():
    sh = TINY.model.shape
    a, b = EdgeId(H(0, 0), H(1, 0), Port.K), EdgeId(H(0, 1), H(1, 0), Port.K)
    r = Ranking({a: -5.0, b: 3.0})
    assert r.ranked(model_edges(sh))[:2] == [a, b]
    assert r.ranked(model_edges(sh), signed=True)[0] == b and r.ranked(model_edges(sh), signed=True)[-1] == a
    unscored = r.ranked(model_edges(sh))[2:]
    assert unscored == sorted(unscored, key=derive.edge_key)


def test_wired_hypothesis_text_compiles():
    h = compile_source("model tiny\ndataset d = induction(n = 8)\nwire embed, a0.0, a1.1, out\n", "<t>").hypothesis
    text = circuit_text(h.edges, h.source_text, "<t>")
    assert set(compile_source(text, "<t2>").hypothesis.edges) == set(h.edges)
