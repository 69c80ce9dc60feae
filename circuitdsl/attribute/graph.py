"""The model graph as attribution sees it (SEMANTICS.md section 1), and circuits cut from a ranking.
No torch.

**Senders** are the nodes that write to the residual stream, in model order: `embed`, `pos` (learned
positions only), then per layer its heads and its MLP. Every receiver reads a *prefix* of that order
(`circuitdsl.engine.derive.upstream`): a head of layer L the senders before layer L; the MLP of layer L
also the heads of layer L in sequential blocks, not in parallel ones; `out` every sender.

**Slots** are the receiving ports as the model computes them: per layer, the query port of each head,
the key and the value port of each key/value group (in grouped-query attention one port shared by the
group's query heads, SEMANTICS.md section 1), the MLP's `in`; then `out`. An edge of the model graph
(`circuitdsl.mib.model_edges`: per query head, q, k and v) maps to (sender, slot); the k and v edges
of the heads of one group map to one slot, so they have one score.

**Circuits from a ranking** (`select`): edges are taken by decreasing |score| (ties in model order),
and only edges on a path from an embedding to `out` among the taken edges are kept (MIB's pruning;
the rest would be claims that constrain nothing, W301/W302). With `n`, edges are taken until the kept
circuit has at least n edges (the kept set only grows as edges are taken: a binary search); with a
threshold, every edge with |score| >= threshold is taken. With a backbone, the embeddings, every MLP
and `out` are wired among themselves (as the README's IOI recipe keeps them) and count as connected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from circuitdsl.ir import EdgeId, ModelShape, NodeId, NodeKind, Port

__all__ = ["Slot", "AttrGraph", "Selection", "select", "rank", "backbone_nodes", "backbone_edges"]


@dataclass(frozen=True, order=True)
class Slot:
    """A receiving port as computed: (layer, port, index). index is the head for q, the key/value
    group for k and v, None for an MLP's or out's `in`. out has layer None."""

    layer: int | None
    port: Port
    index: int | None = None

    def label(self, shape: ModelShape) -> str:
        if self.layer is None:
            return "out"
        if self.port is Port.IN:
            return f"m{self.layer}"
        if self.port is Port.Q:
            return f"a{self.layer}.{self.index}.q"
        assert self.index is not None  # (a k/v slot names its group)
        heads = shape.group_members(self.index * (shape.n_heads // shape.n_kv_heads))
        if len(heads) == 1:
            return f"a{self.layer}.{heads[0]}.{self.port.value}"
        return f"a{self.layer}.{heads[0]}-{heads[-1]}.{self.port.value}"


class AttrGraph:
    """Senders, slots and edges of one model shape (module docstring)."""

    def __init__(self, shape: ModelShape):
        from circuitdsl.mib import model_edges

        self.shape = shape
        senders = [NodeId(NodeKind.EMBED)] + ([NodeId(NodeKind.POS)] if shape.pos_embed == "learned" else [])
        self.n_emb = len(senders)
        for L in range(shape.n_layers):
            senders += [NodeId(NodeKind.HEAD, L, H) for H in range(shape.n_heads)]
            if shape.has_mlp:
                senders.append(NodeId(NodeKind.MLP, L))
        self.senders: tuple[NodeId, ...] = tuple(senders)
        self.sender_index = {s: i for i, s in enumerate(self.senders)}
        slots: list[Slot] = []
        self.layer_slots: list[tuple[int, int]] = []
        """Per layer, the range [start, stop) of its slots (q heads, k groups, v groups, MLP)."""
        for L in range(shape.n_layers):
            start = len(slots)
            slots += [Slot(L, Port.Q, H) for H in range(shape.n_heads)]
            slots += [Slot(L, Port.K, G) for G in range(shape.n_kv_heads)]
            slots += [Slot(L, Port.V, G) for G in range(shape.n_kv_heads)]
            if shape.has_mlp:
                slots.append(Slot(L, Port.IN, None))
            self.layer_slots.append((start, len(slots)))
        slots.append(Slot(None, Port.IN, None))
        self.slots: tuple[Slot, ...] = tuple(slots)
        self.slot_index = {s: i for i, s in enumerate(self.slots)}
        self.edges: tuple[EdgeId, ...] = model_edges(shape)

    # ---- structure --------------------------------------------------------------------------------
    def per_layer(self) -> int:
        return self.shape.n_heads + (1 if self.shape.has_mlp else 0)

    def n_upstream(self, slot: Slot) -> int:
        """How many senders (a prefix of `senders`) the slot's receiver reads."""
        if slot.layer is None:
            return len(self.senders)
        base = self.n_emb + slot.layer * self.per_layer()
        if slot.port is Port.IN and not self.shape.parallel_attn_mlp:
            return base + self.shape.n_heads
        return base

    def slot_of(self, e: EdgeId) -> Slot:
        r = e.receiver
        if r.kind is NodeKind.OUT:
            return Slot(None, Port.IN, None)
        if r.kind is NodeKind.MLP:
            return Slot(r.layer, Port.IN, None)
        if e.port is Port.Q:
            return Slot(r.layer, Port.Q, r.head)
        assert r.head is not None  # (only heads read through k and v)
        return Slot(r.layer, e.port, self.shape.kv_group(r.head))

    def cell(self, e: EdgeId) -> tuple[int, int]:
        """(sender index, slot index) of an edge of the model graph."""
        return self.sender_index[e.sender], self.slot_index[self.slot_of(e)]

    @cached_property
    def cells(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.cell(e) for e in self.edges)

    def receivers(self, slot: Slot) -> tuple[NodeId, ...]:
        """The model nodes that read through the slot (a whole group for a shared k/v port)."""
        if slot.layer is None:
            return (NodeId(NodeKind.OUT),)
        if slot.port is Port.IN:
            return (NodeId(NodeKind.MLP, slot.layer),)
        if slot.port is Port.Q:
            return (NodeId(NodeKind.HEAD, slot.layer, slot.index),)
        assert slot.index is not None  # (a k/v slot names its group)
        first = slot.index * (self.shape.n_heads // self.shape.n_kv_heads)
        return tuple(NodeId(NodeKind.HEAD, slot.layer, h) for h in self.shape.group_members(first))

    def edge_scores(self, matrix) -> dict[EdgeId, float]:
        """{edge: score} for every edge of the model graph from a [senders, slots] matrix."""
        return {e: float(matrix[i][j]) for e, (i, j) in zip(self.edges, self.cells)}

    def node_scores(self, matrix) -> dict[NodeId, float]:
        """Per sender, the sum of its edges' scores over the slots it reaches (a shared k/v slot once):
        to first order, the effect of ablating its whole output (the gradient with respect to a
        sender's output is the sum of the gradients at every port that reads it)."""
        out = {}
        for i, s in enumerate(self.senders):
            out[s] = float(sum(matrix[i][j] for j, sl in enumerate(self.slots) if i < self.n_upstream(sl)))
        return out


# ---- circuits cut from a ranking ------------------------------------------------------------------------


def backbone_nodes(shape: ModelShape) -> tuple[NodeId, ...]:
    nodes = [NodeId(NodeKind.EMBED)] + ([NodeId(NodeKind.POS)] if shape.pos_embed == "learned" else [])
    nodes += [NodeId(NodeKind.MLP, L) for L in range(shape.n_layers)] if shape.has_mlp else []
    return tuple(nodes)


def backbone_edges(shape: ModelShape) -> tuple[EdgeId, ...]:
    """Every forward edge among the embeddings, the MLPs and out (what `wire embed, m0..mN, out` claims)."""
    from circuitdsl.engine.randcirc import forward_edges

    return forward_edges(backbone_nodes(shape), shape)


@dataclass(frozen=True)
class Selection:
    edges: tuple[EdgeId, ...]
    """The kept edges (on a path from an embedding to out), in rank order; backbone edges excluded."""
    taken: int
    """How many edges were taken from the top of the ranking before pruning."""
    pruned: int
    """Taken edges dropped because no path from an embedding to out runs through them."""
    backbone: bool


def _prune(edges: Sequence[EdgeId], backbone: tuple[EdgeId, ...]) -> list[EdgeId]:
    """The edges of `edges` on a path from an embedding to out in the graph of `edges` + `backbone`."""
    from collections import defaultdict

    allowed = list(edges) + list(backbone)
    fwd, bwd = defaultdict(list), defaultdict(list)
    for e in allowed:
        fwd[e.sender].append(e.receiver)
        bwd[e.receiver].append(e.sender)

    def reach(starts, nbrs):
        seen = set(starts)
        stack = list(starts)
        while stack:
            v = stack.pop()
            for w in nbrs[v]:
                if w not in seen:
                    seen.add(w)
                    stack.append(w)
        return seen

    from_emb = reach([v for v in fwd if v.kind in (NodeKind.EMBED, NodeKind.POS)], fwd)
    to_out = reach([NodeId(NodeKind.OUT)], bwd)
    return [e for e in edges if e.sender in from_emb and e.receiver in to_out]


def select(
    scores: Mapping[EdgeId, float],
    ranked: Sequence[EdgeId],
    *,
    n: int | None = None,
    threshold: float | None = None,
    backbone: tuple[EdgeId, ...] = (),
) -> Selection:
    """A circuit from a ranking (module docstring): exactly one of `n` (kept edges wanted) and `threshold`."""
    if (n is None) == (threshold is None):
        raise ValueError("give exactly one of n and threshold")
    bb = set(backbone)
    ranked = [e for e in ranked if e not in bb]
    if threshold is not None:
        k = sum(1 for e in ranked if abs(scores[e]) >= threshold)
        kept = _prune(ranked[:k], backbone)
        return Selection(tuple(kept), k, k - len(kept), bool(backbone))
    assert n is not None  # (exactly one of n and threshold)
    want = max(0, int(n))

    def size(k: int) -> int:
        return len(_prune(ranked[:k], backbone))

    # smallest k whose pruned circuit has >= want edges (size is non-decreasing in k)
    lo, hi = 0, len(ranked)
    if size(hi) < want:
        k = hi
    else:
        while lo < hi:
            mid = (lo + hi) // 2
            if size(mid) >= want:
                hi = mid
            else:
                lo = mid + 1
        k = lo
    kept = _prune(ranked[:k], backbone)
    return Selection(tuple(kept), k, k - len(kept), bool(backbone))


def rank(scores: Mapping[EdgeId, float], edges: Iterable[EdgeId]) -> list[EdgeId]:
    """Edges by decreasing |score|, ties in model order (as circuitdsl.mib.Ranking.ranked)."""
    from circuitdsl.engine import derive

    return sorted(edges, key=lambda e: (-abs(scores.get(e, 0.0)), derive.edge_key(e)))
