"""Derived hypotheses (SEMANTICS.md sections 3-4): empty, the full hypothesis M, and removals C \\ K."""

from __future__ import annotations

import dataclasses

from circuitdsl.ir import IDENTITY, Claim, EdgeId, Hypothesis, ModelShape, NodeId, NodeKind, Port, Split, make_graph

__all__ = ["model_nodes", "empty", "full", "remove", "OUT", "edge_key"]


def edge_key(e: EdgeId) -> tuple:
    return (e.sender.sort_key(), e.receiver.sort_key(), e.port.value)


OUT = NodeId(NodeKind.OUT)


def model_nodes(shape: ModelShape, splits: tuple[Split, ...] = ()) -> tuple[NodeId, ...]:
    """The model graph's nodes in model order; a split component is replaced by its parts."""
    whole = _model_wholes(shape)
    if not splits:
        return whole
    parts = {s.node: s.parts for s in splits}
    return tuple(p for v in whole for p in parts.get(v, (v,)))


def _model_wholes(shape: ModelShape) -> tuple[NodeId, ...]:
    nodes = [NodeId(NodeKind.EMBED)]
    if shape.pos_embed == "learned":
        nodes.append(NodeId(NodeKind.POS))
    for L in range(shape.n_layers):
        nodes += [NodeId(NodeKind.HEAD, L, H) for H in range(shape.n_heads)]
        if shape.has_mlp:
            nodes.append(NodeId(NodeKind.MLP, L))
    nodes.append(OUT)
    return tuple(nodes)


def upstream(v: NodeId, shape: ModelShape, splits: tuple[Split, ...] = ()) -> tuple[NodeId, ...]:
    """Senders into v (SEMANTICS.md section 1): heads read layers < L; an MLP also its own layer's heads.
    A split component's parts read and are read as the component (docs/FEATURES.md)."""
    out = []
    for s in model_nodes(shape, splits):
        if s.kind is NodeKind.OUT:
            continue
        if s.kind in (NodeKind.EMBED, NodeKind.POS) or v.kind is NodeKind.OUT:
            out.append(s)
        elif s.layer is None or v.layer is None:
            continue  # (v is an embedding: it reads nothing)
        elif v.kind is NodeKind.HEAD and s.layer < v.layer:
            out.append(s)
        elif v.kind is NodeKind.MLP and (
            s.layer < v.layer or (s.layer == v.layer and s.kind is NodeKind.HEAD and not shape.parallel_attn_mlp)
        ):
            out.append(s)
    return tuple(out)


def _rebuild(h: Hypothesis, name: str, claims: tuple[Claim, ...], edges: tuple[EdgeId, ...]) -> Hypothesis:
    edges = tuple(sorted(set(edges), key=edge_key))
    return dataclasses.replace(h, name=name, claims=claims, edges=edges, graph=make_graph(claims, edges), expects=())


def empty(h: Hypothesis) -> Hypothesis:
    """Nothing matters: `out` receives every sender under the ablation."""
    return _rebuild(h, f"{h.name} [empty]", (Claim(OUT),), ())


def full(h: Hypothesis) -> Hypothesis:
    """M: every node of the model claimed with the identity feature, every edge claimed."""
    shape = h.model.shape
    nodes = model_nodes(shape, h.splits)
    claims = tuple(Claim(v, IDENTITY) for v in nodes)
    edges = []
    for v in nodes:
        ports = (Port.Q, Port.K, Port.V) if v.kind is NodeKind.HEAD else (Port.IN,)
        if v.kind in (NodeKind.EMBED, NodeKind.POS):
            continue
        for s in upstream(v, shape, h.splits):
            edges += [EdgeId(s, v, p) for p in ports]
    return _rebuild(h, f"{h.name} [full]", claims, tuple(edges))


def remove(h: Hypothesis, k: frozenset[NodeId] | set[NodeId], label: str = "") -> Hypothesis:
    """h \\ K: the outgoing claimed edges of K's nodes removed (claims kept; exempt from W301)."""
    edges = tuple(e for e in h.edges if e.sender not in k)
    names = ",".join(sorted(v.name for v in k))
    return _rebuild(h, f"{h.name} \\ {{{names}}}{label}", h.claims, edges)
