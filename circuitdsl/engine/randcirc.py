"""Random circuits and random node sets of a hypothesis's size (SEMANTICS.md section 5), built on
`circuitdsl.engine.derive`. No torch.

* **Nodes.** Per node kind, as many nodes as C claims, drawn uniformly without replacement from the
  model graph's nodes of that kind (heads, MLPs); `embed` and `pos`, of which the model has one each,
  are in the random circuit exactly when C claims them; `out` always.
* **Edges.** C is *wired* when its edges are every forward edge among its claimed nodes (what
  `wire` claims; detected from the edges, so it holds for derived hypotheses too). A random circuit of
  a wired C gets every forward edge among its nodes. Otherwise it gets as many edges as C has in each
  stratum (sender kind, receiver kind, port), drawn uniformly among the forward edges of that stratum
  among its nodes; where a stratum has fewer candidates than C has edges in it, the shortfall is drawn
  from the remaining forward edges into the same port kind, then from any remaining forward edge.
* **Claims.** Every node has the identity feature and every position; the ablation is C's.

Draws are keyed (circuitdsl.engine.stats.keyed_rng): the r-th random circuit of seed s uses the stream
keyed `(s, "circuit", r)`, so it does not depend on R or on which other tests run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from circuitdsl.engine import derive
from circuitdsl.ir import IDENTITY, Claim, EdgeId, Hypothesis, ModelShape, NodeId, NodeKind, Port

__all__ = [
    "COUNTED_KINDS",
    "node_counts",
    "forward_edges",
    "is_wired",
    "random_nodes",
    "random_circuit",
    "describe",
    "stratum",
]

COUNTED_KINDS = (NodeKind.EMBED, NodeKind.POS, NodeKind.HEAD, NodeKind.MLP)


def node_counts(h: Hypothesis, kinds: Iterable[NodeKind] = COUNTED_KINDS) -> dict[NodeKind, int]:
    """How many nodes of each kind C claims (`out` is not counted)."""
    kinds = tuple(kinds)
    c = Counter(v.kind for v in h.claimed_nodes if v.kind in kinds)
    return {k: c.get(k, 0) for k in kinds}


def _ports(v: NodeId) -> tuple[Port, ...]:
    return (Port.Q, Port.K, Port.V) if v.kind is NodeKind.HEAD else (Port.IN,)


def forward_edges(nodes: Iterable[NodeId], shape: ModelShape) -> tuple[EdgeId, ...]:
    """Every edge of the model graph between the given nodes and `out` (SEMANTICS.md section 1), in
    sorted order: each node that a receiver reads, into each of the receiver's ports."""
    have = set(nodes) | {derive.OUT}
    edges = []
    for r in sorted(have):
        if r.kind in (NodeKind.EMBED, NodeKind.POS):
            continue
        for s in derive.upstream(r, shape):
            if s in have:
                edges += [EdgeId(s, r, p) for p in _ports(r)]
    return tuple(sorted(edges, key=derive.edge_key))


def is_wired(h: Hypothesis) -> bool:
    """Whether C claims every forward edge among its claimed nodes (and nothing else), as `wire` does."""
    return bool(h.edges) and set(h.edges) == set(forward_edges(h.claimed_nodes, h.model.shape))


def stratum(e: EdgeId) -> tuple[str, str, str]:
    """The stratum an edge is counted in: (sender kind, receiver kind, port)."""
    return (e.sender.kind.value, e.receiver.kind.value, e.port.value)


def random_nodes(
    h: Hypothesis, rng: np.random.Generator, kinds: Iterable[NodeKind] = COUNTED_KINDS
) -> tuple[NodeId, ...]:
    """As many nodes of each kind as C claims, drawn uniformly without replacement from the model graph."""
    counts = node_counts(h, kinds)
    graph = derive.model_nodes(h.model.shape)
    out: list[NodeId] = []
    for kind in kinds:
        k = counts[kind]
        if not k:
            continue
        pool = [v for v in graph if v.kind is kind]
        if k > len(pool):  # pragma: no cover - C cannot claim more nodes of a kind than the model has
            raise ValueError(f"C claims {k} nodes of kind {kind.value}, the model has {len(pool)}")
        out += [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))]
    return tuple(sorted(out))


def _draw_edges(h: Hypothesis, pool: tuple[EdgeId, ...], rng: np.random.Generator) -> tuple[EdgeId, ...]:
    want = Counter(stratum(e) for e in h.edges)
    remaining = list(pool)
    chosen: list[EdgeId] = []
    short: Counter = Counter()  # port -> edges still owed

    def take(cands: list[EdgeId], k: int) -> list[EdgeId]:
        if k >= len(cands):
            return list(cands)
        return [cands[i] for i in sorted(rng.choice(len(cands), size=k, replace=False))]

    for key in sorted(want):
        cands = [e for e in remaining if stratum(e) == key]
        got = take(cands, want[key])
        chosen += got
        short[key[2]] += want[key] - len(got)
        picked = set(got)
        remaining = [e for e in remaining if e not in picked]
    for port in sorted(short):
        if short[port] <= 0:
            continue
        got = take([e for e in remaining if e.port.value == port], short[port])
        chosen += got
        short[port] -= len(got)
        picked = set(got)
        remaining = [e for e in remaining if e not in picked]
    owed = sum(short.values())
    if owed > 0:
        chosen += take(remaining, owed)
    return tuple(sorted(chosen, key=derive.edge_key))


def random_circuit(h: Hypothesis, rng: np.random.Generator, label: str = "random") -> Hypothesis:
    """A random circuit of C's size (module docstring), with identity features, under C's ablation."""
    nodes = random_nodes(h, rng)
    pool = forward_edges(nodes, h.model.shape)
    edges = pool if is_wired(h) else _draw_edges(h, pool, rng)
    claims = tuple(Claim(v, IDENTITY) for v in nodes) + (Claim(derive.OUT),)
    return derive._rebuild(h, f"{h.name} [{label}]", claims, edges)


def describe(h: Hypothesis) -> str:
    """The rule used for h's random circuits, in words (for reports)."""
    counts = node_counts(h)
    parts = [
        f"{n} {k.value}{'s' if n != 1 and k in (NodeKind.HEAD, NodeKind.MLP) else ''}" for k, n in counts.items() if n
    ]
    what = ", ".join(parts) or "no nodes"
    if is_wired(h):
        wiring = "every forward edge among them (C is wired)"
    else:
        wiring = (
            f"{len(h.edges)} edges drawn uniformly among their forward edges, as many as C has per "
            "(sender kind, receiver kind, port)"
        )
    return f"{what} drawn uniformly from the model graph; {wiring}; identity features, C's ablation"
