"""Treeify a hypothesis from `out` (SEMANTICS.md section 3), with the draw-path rule of docs/ENGINE.md.

A treeified node is (model node v, ctx) where ctx is the sequence of non-identity-feature nodes on its
path from `out` (exclusive of v). Copies of a node reached along the same sequence of non-identity
class draws receive identical inputs, so they are one treeified node: the full hypothesis M (every
edge, identity features) treeifies to one treeified node per model node.
"""

from __future__ import annotations

from dataclasses import dataclass

from circuitdsl.ir import IDENTITY, EdgeId, Feature, FeatureKind, Hypothesis, NodeId, NodeKind, Port

__all__ = ["TNode", "TEdge", "Tree", "treeify", "OUT"]

OUT = NodeId(NodeKind.OUT)


@dataclass(frozen=True)
class TEdge:
    edge: EdgeId
    child: tuple  # TNode key


@dataclass(frozen=True)
class TNode:
    node: NodeId
    ctx: tuple[NodeId, ...]
    feature: Feature
    positions: tuple[str, ...] | None
    edges: tuple[TEdge, ...]

    @property
    def key(self) -> tuple:
        return (self.node, self.ctx)

    @property
    def identity(self) -> bool:
        return self.node.kind is NodeKind.OUT or self.feature.kind is FeatureKind.IDENTITY

    @property
    def input_ctx(self) -> tuple[NodeId, ...]:
        """The ctx that determines this node's input example (and its children's ctx)."""
        return self.ctx if self.identity else self.ctx + (self.node,)

    @property
    def path(self) -> str:
        """The draw path: non-identity ancestors from out, then the node itself."""
        return "/".join(n.name for n in self.ctx + (self.node,))


@dataclass(frozen=True)
class Tree:
    nodes: dict
    """key -> TNode"""
    order: tuple[tuple, ...]
    """Keys, children before parents (model order)."""
    root: tuple


def treeify(h: Hypothesis) -> Tree:
    into: dict[NodeId, list[EdgeId]] = {}
    shape = h.model.shape
    gqa = shape.n_kv_heads < shape.n_heads
    for e in h.edges:
        into.setdefault(e.receiver, []).append(e)
    if gqa:
        # GQA: an edge into L.H.k (or .v) is an edge into the k port of H's key/value group, so every
        # query head of the group reads it (SEMANTICS.md section 1).
        extra: dict[NodeId, list[EdgeId]] = {}
        for e in h.edges:
            if e.port in (Port.K, Port.V) and e.receiver.kind is NodeKind.HEAD:
                for m in shape.group_members(e.receiver.head):
                    r = NodeId(NodeKind.HEAD, e.receiver.layer, m)
                    if r != e.receiver:
                        extra.setdefault(r, []).append(EdgeId(e.sender, r, e.port))
        for r, es in extra.items():
            have = {(x.sender, x.port) for x in into.get(r, ())}
            for x in es:
                if (x.sender, x.port) not in have:
                    into.setdefault(r, []).append(x)
                    have.add((x.sender, x.port))
    nodes: dict[tuple, TNode] = {}

    def feature_of(v: NodeId) -> tuple[Feature, tuple[str, ...] | None]:
        c = h.claim(v)
        if c is None or v.kind is NodeKind.OUT:
            return IDENTITY, None
        return c.feature, c.positions

    def visit(v: NodeId, ctx: tuple[NodeId, ...]) -> tuple:
        key = (v, ctx)
        if key in nodes:
            return key
        feature, positions = feature_of(v)
        ident = v.kind is NodeKind.OUT or feature.kind is FeatureKind.IDENTITY
        child_ctx = ctx if ident else ctx + (v,)
        edges = tuple(
            TEdge(e, visit(e.sender, child_ctx))
            for e in sorted(into.get(v, ()), key=lambda e: (e.sender.sort_key(), _PORTS.index(e.port)))
        )
        nodes[key] = TNode(v, ctx, feature, positions, edges)
        return key

    root = visit(OUT, ())
    order = tuple(sorted(nodes, key=lambda k: (k[0].sort_key(), tuple(n.sort_key() for n in k[1]))))
    return Tree(nodes=nodes, order=order, root=root)


_PORTS = (Port.Q, Port.K, Port.V, Port.IN)
