"""Passes that check the claimed graph as a whole: cycles, paths embedding -> out, GQA notes."""

from __future__ import annotations

import networkx as nx

from circuitdsl import ast
from circuitdsl.compiler.codes import diag
from circuitdsl.compiler.unit import Unit
from circuitdsl.diagnostics import Diagnostic, Label, has_errors
from circuitdsl.ir import NodeId, NodeKind, Port, Span

__all__ = ["check_cycles", "check_paths", "note_gqa"]

_EMBEDDINGS = (NodeKind.EMBED, NodeKind.POS)


def check_cycles(u: Unit) -> Unit:
    """E305: the claimed edges, including the rejected backwards ones, must form a DAG."""
    g = nx.DiGraph()
    spans = dict(u.edge_spans) | dict(u.rejected_edges)
    for e, sp in spans.items():
        g.add_edge(e.sender, e.receiver, span=sp)
    diags: list[Diagnostic] = []
    seen: set[frozenset] = set()
    for comp in nx.strongly_connected_components(g):
        if len(comp) < 2 and not any(g.has_edge(n, n) for n in comp):
            continue
        key = frozenset(comp)
        if key in seen:
            continue
        seen.add(key)
        cycle = nx.find_cycle(g.subgraph(comp))
        names = " -> ".join([cycle[0][0].name] + [v.name for _, v in cycle])
        spans_c = [g.edges[a, b]["span"] for a, b in cycle]
        first = min(spans_c)
        diags.append(
            diag(
                "E305",
                f"the claimed edges form a cycle: {names}",
                first,
                label="this edge is on the cycle",
                hint="claimed edges run from embeddings towards `out`; remove the backwards edge",
                related=tuple(Label(sp, "also on the cycle") for sp in sorted(set(spans_c)) if sp != first),
            )  # fmt: skip
        )
    return u.add(*diags)


def check_paths(u: Unit) -> Unit:
    """W301/W302/W303 (SEMANTICS.md section 2): every claimed node on a path embedding -> out."""
    if has_errors(u.diagnostics):
        return u  # the graph is incomplete: its warnings would mislead
    g = nx.DiGraph()
    g.add_nodes_from(c.node for c in u.claims)
    g.add_edges_from((e.sender, e.receiver) for e in u.edges)
    diags: list[Diagnostic] = []
    out = NodeId(NodeKind.OUT)
    has_out = out in g and g.in_degree(out) > 0
    if u.edges and not has_out:
        last_edge = u.of(ast.Edge, ast.Wire)[-1]
        diags.append(diag("W303", "no claimed edge into `out`", last_edge.span, label="no edge of the hypothesis reaches `out`",
                          hint="claim the edges that carry the answer to the output, e.g. `edge a9.6 -> out`"))  # fmt: skip
    from_emb: set[NodeId] = set()
    for n in g.nodes:
        if n.kind in _EMBEDDINGS:
            from_emb |= {n} | nx.descendants(g, n)
    to_out = ({out} | nx.ancestors(g, out)) if out in g else set()
    for c in u.claims:
        n = c.node
        if n.kind not in _EMBEDDINGS and n != out and n not in from_emb:
            diags.append(diag("W301", f"`{n.name}` has no claimed path from an embedding", c.span,
                              label="claimed, but nothing claimed feeds it",
                              hint=f"its feature constrains nothing (it computes only on random draws); add e.g. `edge embed -> {n.name}`"))  # fmt: skip
        if has_out and n != out and n not in to_out:
            diags.append(diag("W302", f"`{n.name}` has no claimed path to `out`", c.span,
                              label="nothing claimed carries its output to `out`",
                              hint="add the edges that carry its output onwards, or remove the claim"))  # fmt: skip
    return u.add(*diags)


def note_gqa(u: Unit) -> Unit:
    """N301: in a GQA model an edge into `L.H.k`/`.v` is an edge into the group's shared k/v input.
    One note per head, at the first edge that reaches its k or v port."""
    if u.model is None or u.model.shape.n_kv_heads >= u.model.shape.n_heads:
        return u
    shape = u.model.shape
    first: dict[NodeId, Span] = {}
    for e, at in sorted(u.receiver_spans, key=lambda es: es[1]):
        if e.port in (Port.K, Port.V) and e.receiver.kind is NodeKind.HEAD and e.receiver not in first:
            first[e.receiver] = at
    diags = []
    for h, sp in sorted(first.items(), key=lambda hs: (hs[1], hs[0].sort_key())):
        assert h.head is not None  # (a head)
        others = [f"a{h.layer}.{m}" for m in shape.group_members(h.head) if m != h.head]
        diags.append(diag("N301", f"`{h.name}` shares its k/v input with {', '.join(others)} (grouped-query attention)", sp,
                          label=f"key/value group {shape.kv_group(h.head)} of layer {h.layer}",
                          hint="an edge into this k or v port reaches the whole group's k/v input: "
                          "the engine patches it once, for all the group's query heads"))  # fmt: skip
    return u.add(*diags)
