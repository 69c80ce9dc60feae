"""Treeify a hypothesis from `out` (SEMANTICS.md section 3), with the draw-path rule of docs/ENGINE.md.

A treeified node is (model node v, ctx) where ctx is the sequence of non-identity-feature nodes on its
path from `out` (exclusive of v). Copies of a node reached along the same sequence of non-identity
class draws receive identical inputs, so they are one treeified node: the full hypothesis M (every
edge, identity features) treeifies to one treeified node per model node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from circuitdsl.ir import IDENTITY, EdgeId, Feature, FeatureKind, Hypothesis, NodeId, NodeKind, Port

__all__ = ["TNode", "TEdge", "Tree", "treeify", "OUT"]

OUT = NodeId(NodeKind.OUT)


class TEdge(NamedTuple):
    """A claimed edge of a treeified node (a tuple: trees hold tens of thousands of them)."""

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
    ctxs: tuple[tuple[NodeId, ...], ...] = ()
    """Every input ctx (`TNode.input_ctx`) of the tree, numbered; `ctxs[0]` is ()."""
    input_ctx_of: tuple[int, ...] = ()
    """Per key of `order`: the number of its input ctx in `ctxs`."""
    children: tuple[tuple[int, ...], ...] = ()
    """Per key of `order`: the positions in `order` of its edges' children (in `TNode.edges` order)."""


def treeify(h: Hypothesis) -> Tree:
    into: dict[NodeId, list[EdgeId]] = {}
    shape = h.model.shape
    gqa = shape.n_kv_heads < shape.n_heads
    for e in h.edges:
        into.setdefault(e.receiver, []).append(e)
    if gqa:
        # GQA: an edge into L.H.k (or .v) is an edge into the k port of H's key/value group, so every
        # query head of the group reads it (SEMANTICS.md section 1).
        senders: dict[tuple[int, int, Port], dict[NodeId, None]] = {}
        for e in h.edges:
            if e.port in (Port.K, Port.V) and e.receiver.kind is NodeKind.HEAD:
                g = shape.kv_group(e.receiver.head)
                senders.setdefault((e.receiver.layer, g, e.port), {})[e.sender] = None
        for (layer, g, port), ss in senders.items():
            for m in shape.group_members(g * (shape.n_heads // shape.n_kv_heads)):
                r = NodeId(NodeKind.HEAD, layer, m)
                have = {x.sender for x in into.get(r, ()) if x.port is port}
                for s in ss:
                    if s not in have:
                        into.setdefault(r, []).append(EdgeId(s, r, port))
    claims = {c.node: c for c in h.claims}
    # model nodes as small ints, so that the walk below hashes pairs of ints, not NodeIds
    vs: list[NodeId] = [OUT]
    vidx: dict[NodeId, int] = {OUT: 0}
    info: list = []

    def index(v: NodeId) -> int:
        i = vidx.get(v)
        if i is None:
            i = vidx[v] = len(vs)
            vs.append(v)
        return i

    def info_of(i: int) -> tuple:
        while len(info) <= i:
            info.append(None)
        got = info[i]
        if got is None:
            v = vs[i]
            c = claims.get(v)
            feature, positions = (IDENTITY, None) if c is None or v.kind is NodeKind.OUT else (c.feature, c.positions)
            ident = v.kind is NodeKind.OUT or feature.kind is FeatureKind.IDENTITY
            es = tuple(sorted(into.get(v, ()), key=lambda e: (e.sender.sort_key(), _PORTS.index(e.port))))
            got = info[i] = (feature, positions, ident, es, tuple(index(e.sender) for e in es))
        return got

    ctxs: list[tuple[NodeId, ...]] = [()]
    ctx_child: dict[tuple[int, int], int] = {}
    built: dict[tuple[int, int], tuple] = {}  # (node int, ctx id) -> (key, input ctx id, child pairs)

    def visit(i: int, cid: int) -> tuple[int, int]:
        pair = (i, cid)
        if pair in built:
            return pair
        feature, positions, ident, es, senders = info_of(i)
        if ident:
            ccid = cid
        else:
            ccid = ctx_child.get(pair)
            if ccid is None:
                ccid = ctx_child[pair] = len(ctxs)
                ctxs.append(ctxs[cid] + (vs[i],))
        built[pair] = None  # type: ignore[assignment]  (a DAG: no cycles, set before the children)
        kids = tuple(visit(j, ccid) for j in senders)
        built[pair] = ((vs[i], ctxs[cid]), ccid, kids)
        return pair

    root_pair = visit(0, 0)
    ctx_key = [tuple(n.sort_key() for n in c) for c in ctxs]
    pairs = sorted(built, key=lambda p: (vs[p[0]].sort_key(), ctx_key[p[1]]))
    pos = {p: k for k, p in enumerate(pairs)}
    nodes: dict[tuple, TNode] = {}
    order, in_ctx, children = [], [], []
    for p in pairs:
        key, ccid, kids = built[p]
        feature, positions, _, es, _ = info[p[0]]
        nodes[key] = TNode(key[0], key[1], feature, positions, tuple(TEdge(e, built[k][0]) for e, k in zip(es, kids)))
        order.append(key)
        in_ctx.append(ccid)
        children.append(tuple(pos[k] for k in kids))
    return Tree(nodes=nodes, order=tuple(order), root=built[root_pair][0], ctxs=tuple(ctxs), input_ctx_of=tuple(in_ctx),
                children=tuple(children))


_PORTS = (Port.Q, Port.K, Port.V, Port.IN)
