"""Circuits cut from a ranking (circuitdsl.attribute.graph.select), on the tiny model's shape, against
hand-worked cases. No torch."""

from __future__ import annotations

import pytest

from circuitdsl.attribute.graph import AttrGraph, backbone_edges, rank, select
from circuitdsl.ir import EdgeId, NodeId, NodeKind, Port
from circuitdsl.models.shapes import resolve_shape

E, POS, OUT = NodeId(NodeKind.EMBED), NodeId(NodeKind.POS), NodeId(NodeKind.OUT)


def head(L, H):
    return NodeId(NodeKind.HEAD, L, H)


@pytest.fixture(scope="module")
def shape():
    return resolve_shape("tiny")[1]


def test_the_tiny_graph_has_106_edges_each_its_own_port(shape):
    g = AttrGraph(shape)
    assert len(g.edges) == 106 and len(set(g.cells)) == 106
    assert len(g.senders) == 10 and len(g.slots) == 2 * (4 + 4 + 4) + 1


def test_edges_off_every_embedding_to_out_path_are_pruned(shape):
    g = AttrGraph(shape)
    a = EdgeId(E, head(0, 0), Port.V)
    b = EdgeId(head(0, 0), head(1, 1), Port.K)
    c = EdgeId(head(1, 1), OUT, Port.IN)
    dangling = EdgeId(E, head(0, 2), Port.V)  # a0.2 reaches nothing
    scores = {e: 0.0 for e in g.edges} | {dangling: 9.0, a: 5.0, b: 4.0, c: 3.0}
    ranked = rank(scores, g.edges)
    assert ranked[:4] == [dangling, a, b, c]
    sel = select(scores, ranked, n=3)
    assert sel.edges == (a, b, c) and sel.taken == 4 and sel.pruned == 1
    sel = select(scores, ranked, threshold=4.0)  # a0.0 -> a1.1 reaches no out yet
    assert sel.edges == () and sel.taken == 3
    sel = select(scores, ranked, threshold=3.0)
    assert sel.edges == (a, b, c)


def test_the_backbone_connects_but_is_not_counted(shape):
    bb = backbone_edges(shape)
    assert set(bb) == {EdgeId(E, OUT, Port.IN), EdgeId(POS, OUT, Port.IN)}  # attention-only: no MLP
    g = AttrGraph(shape)
    c = EdgeId(head(1, 1), OUT, Port.IN)
    q = EdgeId(E, head(1, 1), Port.Q)
    scores = {e: 0.0 for e in g.edges} | {c: 1.0, q: 0.5}
    ranked = rank(scores, g.edges)
    assert select(scores, ranked, threshold=1.0).edges == ()  # a1.1 reads nothing claimed
    assert select(scores, ranked, threshold=0.5).edges == (c, q)
    sel = select(scores, ranked, threshold=0.5, backbone=bb)
    assert sel.edges == (c, q) and sel.backbone
    assert not set(sel.edges) & set(bb)


def test_exactly_one_of_n_and_threshold():
    with pytest.raises(ValueError):
        select({}, [], n=1, threshold=1.0)
    with pytest.raises(ValueError):
        select({}, [])
