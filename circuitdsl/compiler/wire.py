"""The `wire` pass: `wire A, B, ...` claims every edge that runs forward among the listed nodes.

Each listed sender goes into every port of each listed receiver that reads it by SEMANTICS.md
section 1 (`upstream_ok`): q, k, v of a head, `in` of an MLP or `out`. Pairs that do not run
forward (a head into an earlier layer, anything into an embedding, `out` into anything) are not
edges of the model's forward DAG, so they are simply not part of what `wire` claims: no error.
Listed nodes are claimed (feature `input` unless a `node` statement gave one). The edges merge with
those of `edge` statements (duplicates are fine).
"""

from __future__ import annotations

from dataclasses import replace

from circuitdsl import ast
from circuitdsl.compiler.claims import edge_key, upstream_ok
from circuitdsl.compiler.codes import diag
from circuitdsl.compiler.names import ref_group_name, resolve_ref
from circuitdsl.compiler.unit import Unit
from circuitdsl.diagnostics import Diagnostic
from circuitdsl.ir import IDENTITY, Claim, EdgeId, NodeId, NodeKind, Port, Span

__all__ = ["resolve_wires", "wire_edges", "ports_of"]


def ports_of(node: NodeId) -> tuple[Port, ...]:
    """Every port of a receiver: q, k, v of a head; `in` of an MLP or `out`; none for embeddings."""
    if node.kind is NodeKind.HEAD:
        return (Port.Q, Port.K, Port.V)
    if node.kind in (NodeKind.MLP, NodeKind.OUT):
        return (Port.IN,)
    return ()


def wire_edges(nodes, parallel: bool) -> tuple[EdgeId, ...]:
    """Every forward edge among `nodes` (each sender into every port of each reader), in model order."""
    uniq = sorted(set(nodes))
    edges = [EdgeId(s, r, p) for s in uniq for r in uniq if s != r and upstream_ok(s, r, parallel) for p in ports_of(r)]
    return tuple(sorted(edges, key=edge_key))


def _gqa_note(s: ast.Wire, edges, u: Unit) -> Diagnostic | None:
    """One N301 per `wire` statement (not one per k/v edge): the heads whose shared k/v input it claims."""
    shape = u.model.shape if u.model else None
    if shape is None or shape.n_kv_heads >= shape.n_heads:
        return None
    heads = sorted({e.receiver for e in edges if e.port in (Port.K, Port.V) and e.receiver.kind is NodeKind.HEAD})
    if not heads:
        return None
    shown = ", ".join(h.name for h in heads[:6]) + (f" and {len(heads) - 6} more" if len(heads) > 6 else "")
    return diag(
        "N301",
        f"`wire` claims edges into the shared k/v inputs of {len(heads)} heads (grouped-query attention): {shown}",
        s.span,
        label=f"{shape.n_heads // shape.n_kv_heads} query heads share each key/value head",
        hint="an edge into a k or v port reaches the whole key/value group's input: "
        "the engine patches it once, for all the group's query heads",
    )


def resolve_wires(u: Unit) -> Unit:
    """`wire` statements -> claimed nodes and forward edges, merged with those of `edge` statements."""
    wires = u.of(ast.Wire)
    if not wires:
        return u
    diags: list[Diagnostic] = []
    groups = u.group_map()
    group_names = tuple(n for n, _ in u.group_spans)
    parallel = u.model.shape.parallel_attn_mlp if u.model else False
    claims = {c.node: c for c in u.claims}
    edges = set(u.edges)
    spans: dict[EdgeId, Span] = dict(u.edge_spans)
    wired: list[EdgeId] = []
    for s in wires:
        listed: list[NodeId] = []
        for ref in s.nodes:
            nodes, via, ds = resolve_ref(ref, u.model, groups, group_names)
            diags.extend(ds)
            for n in nodes:
                listed.append(n)
                if n not in claims:
                    claims[n] = Claim(n, IDENTITY, None, via, ref.span)
                gname = ref_group_name(ref)
                if gname is not None and gname in groups and gname not in claims[n].groups:
                    claims[n] = replace(claims[n], groups=claims[n].groups + (gname,))
        new = wire_edges(listed, parallel)
        for e in new:
            if e not in edges:
                wired.append(e)
            edges.add(e)
            spans.setdefault(e, s.span)
        note = _gqa_note(s, new, u)
        if note is not None:
            diags.append(note)
    return u.add(
        *diags,
        claims=tuple(sorted(claims.values(), key=lambda c: c.node.sort_key())),
        edges=tuple(sorted(edges, key=edge_key)),
        edge_spans=tuple(spans.items()),
        wired_only=tuple(wired),
    )
