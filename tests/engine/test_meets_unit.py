"""Edges between positions that never meet (issue 11, point 4; SEMANTICS v3 section 6 and the appendix's
position masks), found per example once the dataset's positions are known. No torch."""

from __future__ import annotations

import pytest

from circuitdsl.datasets.core import Example
from circuitdsl.diagnostics import CircuitError
from circuitdsl.engine.meets import check_edges, dead_edges
from circuitdsl.ir import (
    Ablation,
    Claim,
    EdgeId,
    Hypothesis,
    Metric,
    ModelRef,
    ModelShape,
    NodeId,
    NodeKind,
    Port,
    Span,
    make_graph,
)

EMBED, OUT = NodeId(NodeKind.EMBED), NodeId(NodeKind.OUT)
A00, A10, M0 = NodeId(NodeKind.HEAD, 0, 0), NodeId(NodeKind.HEAD, 1, 0), NodeId(NodeKind.MLP, 0)
SHAPE = ModelShape(n_layers=2, n_heads=1, n_kv_heads=1, d_model=8, pos_embed="learned", has_mlp=True)
SP = Span("h.circuit", 7, 6, 7, 20)


def hyp(edges, positions: dict, origins=None) -> Hypothesis:
    nodes = sorted({v for e in edges for v in (e.sender, e.receiver)})
    claims = tuple(Claim(v, positions=positions.get(v)) for v in nodes)
    edges = tuple(sorted(edges))
    origins = tuple((e, SP, (origins or {}).get(e, "edge")) for e in edges)
    return Hypothesis(
        name="h",
        source_path=None,
        source_text="",
        model=ModelRef("m", "m", SHAPE),
        datasets=(),
        main_dataset="D",
        metric=Metric(),
        ablation=Ablation(),
        claims=claims,
        edges=edges,
        groups=(),
        expects=(),
        edge_origins=origins,
        graph=make_graph(claims, edges),
    )


def ex(a1=2, length=8, scored=()):
    return Example.make(list(range(length)), 0, scored=scored, positions={"A1": a1, "end": length - 1, "mid": [3, 4]})


def _dead(h, examples, causal=True):
    return {(str(d.edge), d.n_dead) for d in dead_edges(h, examples, causal=causal)}


def test_q_edge_between_disjoint_positions_never_meets():
    e = EdgeId(A00, A10, Port.Q)
    h = hyp([e, EdgeId(EMBED, A00, Port.V), EdgeId(A10, OUT, Port.IN)], {A00: ("A1",), A10: ("end",)})
    assert _dead(h, [ex(), ex(a1=3)]) == {("a0.0 -> a1.0.q", 2)}


def test_q_edge_meets_where_positions_overlap_in_some_layouts():
    e = EdgeId(A00, A10, Port.Q)
    h = hyp([e], {A00: ("A1",), A10: ("mid",)})
    # A1 = 3 lies in mid = {3, 4}; A1 = 2 does not
    assert _dead(h, [ex(a1=2), ex(a1=3), ex(a1=2)]) == {("a0.0 -> a1.0.q", 2)}


def test_in_edge_into_an_mlp_is_positionwise():
    h = hyp([EdgeId(EMBED, M0, Port.IN)], {EMBED: ("A1",), M0: ("end",)})
    assert _dead(h, [ex()]) == {("embed -> m0", 1)}


def test_k_and_v_edges_carry_the_sender_at_its_positions_to_later_queries():
    k, v = EdgeId(A00, A10, Port.K), EdgeId(A00, A10, Port.V)
    # key at A1 = 2, queries at end = 7: read (2 <= 7)
    assert _dead(hyp([k, v], {A00: ("A1",), A10: ("end",)}), [ex()]) == set()
    # key at end = 7, queries at A1 = 2: never read under causal attention (7 > 2) ...
    assert _dead(hyp([k, v], {A00: ("end",), A10: ("A1",)}), [ex()]) == {("a0.0 -> a1.0.k", 1), ("a0.0 -> a1.0.v", 1)}
    # ... but read by bidirectional attention
    assert _dead(hyp([k, v], {A00: ("end",), A10: ("A1",)}), [ex()], causal=False) == set()
    # a key at the query's own position is read
    assert _dead(hyp([k], {A00: ("A1",), A10: ("A1",)}), [ex()]) == set()


def test_unrestricted_nodes_always_meet():
    h = hyp([EdgeId(A00, A10, Port.Q), EdgeId(A00, A10, Port.K)], {A10: ("A1",)})
    assert _dead(h, [ex()]) == set()
    h = hyp([EdgeId(A00, A10, Port.K)], {A00: ("end",)})
    assert _dead(h, [ex()]) == set()


def test_edge_into_out_needs_a_scored_position():
    h = hyp([EdgeId(A00, OUT, Port.IN)], {A00: ("A1",)})
    assert _dead(h, [ex()]) == {("a0.0 -> out", 1)}  # scored: the last position only
    assert _dead(h, [ex(scored=(2, 7))]) == set()  # A1 = 2 is scored
    assert _dead(hyp([EdgeId(A00, OUT, Port.IN)], {A00: ("end",)}), [ex()]) == set()


def test_check_edges_errors_for_an_edge_statement_and_notes_for_wire_and_some_layouts():
    q = EdgeId(A00, A10, Port.Q)
    with pytest.raises(CircuitError) as err:
        check_edges(hyp([q], {A00: ("A1",), A10: ("end",)}), [ex(), ex(a1=3)], causal=True)
    (d,) = err.value.diagnostics
    assert d.code == "E242" and d.span == SP and "a0.0 -> a1.0.q" in d.message and d.hint
    assert "A1" in d.message and "end" in d.message
    # claimed only through `wire`: a note, the check goes on
    notes = check_edges(hyp([q], {A00: ("A1",), A10: ("end",)}, {q: "wire"}), [ex()], causal=True)
    assert len(notes) == 1 and "a0.0 -> a1.0.q" in notes[0] and "wire" in notes[0]
    # dead in some examples only: a note
    notes = check_edges(hyp([q], {A00: ("A1",), A10: ("mid",)}), [ex(a1=2), ex(a1=3)], causal=True)
    assert len(notes) == 1 and "1 of 2 examples" in notes[0]
    assert check_edges(hyp([q], {A10: ("end",)}), [ex()], causal=True) == ()


def test_unknown_position_names_are_left_to_e240():
    h = hyp([EdgeId(A00, A10, Port.Q)], {A00: ("nosuch",), A10: ("end",)})
    assert _dead(h, [ex()]) == set()


def test_attention_is_causal_unless_told_otherwise():
    h = hyp([EdgeId(A00, A10, Port.K)], {A00: ("end",), A10: ("A1",)})
    assert [str(d.edge) for d in dead_edges(h, [ex()])] == ["a0.0 -> a1.0.k"]
    with pytest.raises(CircuitError):
        check_edges(h, [ex()])


def test_every_edge_is_looked_at_after_an_unrestricted_one():
    h = hyp([EdgeId(EMBED, M0, Port.IN), EdgeId(A00, A10, Port.Q)], {A00: ("A1",), A10: ("end",)})
    assert _dead(h, [ex()]) == {("a0.0 -> a1.0.q", 1)}


def test_dead_edge_records_are_frozen():
    import dataclasses

    (d,) = dead_edges(hyp([EdgeId(A00, A10, Port.Q)], {A00: ("A1",), A10: ("end",)}), [ex()])
    assert (d.n_dead, d.n, d.example) == (1, 1, ex().id) and "A1 (2)" in d.why and "end (7)" in d.why
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.n = 3
