"""Treeify a hypothesis from `out` (SEMANTICS.md section 3 and the appendix of docs/SEMANTICS.md).

Exact rule (the default). Every claimed path from `out` down to a node is its own treeified node. Its
path is the sequence of claimed edges with their ports (`out/a1.0>in/a0.0>k`), and its class draw and
other-inputs draw are keyed by that path. The only sharing is of copies that are identical in content:
a node with the identity feature that uses no other-inputs draw, and under which no node draws, computes
the same thing on every path that hands it the same input example, so its copies are one treeified
node per input draw. (Under `paired`, `mean` and `zero` no node uses an other-inputs draw, which is what
keeps wide identity backbones at one copy per draw.) The number of distinct treeified nodes is counted
before the tree is built (`count`), and a tree past the hypothesis' `treeify.max_nodes` is refused
(E601) with the nodes that multiply it.

Shared-draw approximation (`set treeify.shared_draws = true`, opt-in). The path of a copy keeps only the
non-identity nodes on it, names only (`a1.0/a0.0`): copies reached through identity nodes or through
different ports of one receiver share one treeified node and its draws. Exact when no draw lies below
the shared copies; an approximation otherwise. Reports say when it was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import (
    IDENTITY,
    AblationKind,
    EdgeId,
    Feature,
    FeatureKind,
    Hypothesis,
    NodeId,
    NodeKind,
    Port,
    SplitKind,
)

__all__ = ["TNode", "TEdge", "Draw", "Tree", "treeify", "count", "OUT", "TreeTooLarge"]

OUT = NodeId(NodeKind.OUT)

_PORTS = (Port.Q, Port.K, Port.V, Port.IN)
_RESAMPLING = (AblationKind.RESAMPLE, AblationKind.RESAMPLE_FROM)


class TEdge(NamedTuple):
    """A claimed edge of a treeified node (a tuple: trees hold tens of thousands of them)."""

    edge: EdgeId
    child: object
    """The child's key in `Tree.nodes`."""


@dataclass(frozen=True)
class TNode:
    node: NodeId
    path: str
    """The path that keys this copy's draws (for a copy shared by several paths: the first one found)."""
    feature: Feature
    positions: tuple[str, ...] | None
    edges: tuple[TEdge, ...]
    other: str | None
    """The path keying its other-inputs draw x_r; None when its port inputs do not depend on one."""


class Draw(NamedTuple):
    """A class draw: an example drawn from the class, under `feature`, of the example of draw `parent`."""

    parent: int
    feature: Feature
    path: str


@dataclass(frozen=True)
class Tree:
    nodes: dict
    """key -> TNode"""
    order: tuple
    """Keys, children before parents (model order)."""
    root: object
    draws: tuple[Draw | None, ...]
    """Class draws, parents before children; `draws[0]` is None: the root example x itself."""
    input_draw_of: tuple[int, ...]
    """Per key of `order`: the draw giving its input example."""
    children: tuple[tuple[int, ...], ...]
    """Per key of `order`: the positions in `order` of its edges' children (in `TNode.edges` order)."""
    shared_draws: bool
    """Whether the shared-draw approximation built it (every report then says so)."""


class TreeTooLarge(CircuitError):
    """E601: the treeified hypothesis needs more distinct computations than its budget allows."""


class _Graph:
    """What treeification needs to know about each claimed model node, computed once per hypothesis.

    Model nodes are numbered in model order (`nodes[i]`; senders before receivers, `out` last), so that
    the walks below hash ints, not NodeIds: the full hypothesis of a 30-layer model has ~10^5 edges."""

    def __init__(self, h: Hypothesis):
        from circuitdsl.engine.derive import upstream

        shape = h.model.shape
        edges = list(h.edges)
        if shape.n_kv_heads < shape.n_heads:
            # GQA: an edge into L.H.k (or .v) is an edge into the k port of H's key/value group, so every
            # claimed query head of the group reads it (SEMANTICS.md section 1)
            have = {(e.sender, e.receiver, e.port) for e in edges}
            groups: dict[tuple[int, int, Port], dict[NodeId, None]] = {}
            for e in h.edges:
                r = e.receiver
                if (
                    e.port in (Port.K, Port.V)
                    and r.kind is NodeKind.HEAD
                    and r.layer is not None
                    and r.head is not None
                ):
                    groups.setdefault((r.layer, shape.kv_group(r.head), e.port), {})[e.sender] = None
            for (layer, g, port), ss in groups.items():
                for m in shape.group_members(g * (shape.n_heads // shape.n_kv_heads)):
                    r = NodeId(NodeKind.HEAD, layer, m)
                    edges += [EdgeId(s, r, port) for s in ss if (s, r, port) not in have]
        present = {OUT: None}
        for e in edges:
            present[e.sender] = present[e.receiver] = None
        self.nodes: list[NodeId] = sorted(present, key=NodeId.sort_key)
        self.index = {v: i for i, v in enumerate(self.nodes)}
        self.out = self.index[OUT]
        n = len(self.nodes)
        into: list[list[tuple[int, int, EdgeId]]] = [[] for _ in range(n)]
        for e in edges:
            s = self.index[e.sender]
            into[self.index[e.receiver]].append((s, _PORTS.index(e.port), e))
        self.edges: list[tuple[EdgeId, ...]] = []
        self.senders: list[tuple[int, ...]] = []
        for lst in into:
            lst.sort(key=lambda x: (x[0], x[1]))
            self.edges.append(tuple(x[2] for x in lst))
            self.senders.append(tuple(x[0] for x in lst))
        claims = {c.node: c for c in h.claims}
        self.feature: list[Feature] = []
        self.positions: list[tuple[str, ...] | None] = []
        for v in self.nodes:
            c = claims.get(v)
            f, p = (IDENTITY, None) if c is None or v.kind is NodeKind.OUT else (c.feature, c.positions)
            self.feature.append(f)
            self.positions.append(p)
        self.identity = [
            v.kind is NodeKind.OUT or f.kind is FeatureKind.IDENTITY for v, f in zip(self.nodes, self.feature)
        ]
        resampling = h.ablation.kind in _RESAMPLING
        self.resampling = resampling
        self.uses_other = [
            resampling and self._uses_other(i, len(upstream(v, shape, h.splits))) for i, v in enumerate(self.nodes)
        ]
        self.draws = [not a or b for a, b in zip(self.identity, self.uses_other)]
        """Whether a copy makes a draw of its own (a class draw, or an other-inputs draw)."""
        below: list[bool] = []  # whether some node under it draws
        for i in range(n):  # senders first
            below.append(any(self.draws[s] or below[s] for s in self.senders[i]))
        self.pathful = [d or b for d, b in zip(self.draws, below)]
        """Whether each path to the node is its own computation: it, or a node under it, draws (else copies
        handed one input example are identical in content)."""

    def _uses_other(self, i: int, n_up: int) -> bool:
        """Under a resampling ablation: some port of node i has an upstream sender not claimed into it, or
        a claimed edge that is masked somewhere (its port inputs then depend on x_r)."""
        v = self.nodes[i]
        if v.kind in (NodeKind.EMBED, NodeKind.POS):
            return False  # embeddings read no other node: their output is that of their input example
        own = self.positions[i]
        ports = (Port.Q, Port.K, Port.V) if v.kind is NodeKind.HEAD else (Port.IN,)
        claimed = dict.fromkeys(ports, 0)
        for e, s in zip(self.edges[i], self.senders[i]):
            if self.positions[s] is not None or (
                own is not None and e.port in (Port.Q, Port.IN) and v.kind is not NodeKind.OUT
            ):
                return True
            claimed[e.port] += 1
        return any(k != n_up for k in claimed.values())  # the compiler admits only upstream senders


def count(h: Hypothesis) -> tuple[int, dict[NodeId, int]]:
    """(the number of distinct treeified nodes of h under the exact rule, per model node the number of
    claimed paths from `out` that reach it), without building the tree."""
    return _count(_Graph(h))


def _count(g: _Graph) -> tuple[int, dict[NodeId, int]]:
    n = len(g.nodes)
    paths = [0] * n
    paths[g.out] = 1
    # the draws that may hand a node its input example, as the nodes making them: `out` (the root
    # example) and non-identity parents; an identity parent passes on what it was handed
    sources: list[set[int]] = [set() for _ in range(n)]
    passes: list[set[int]] = [set() for _ in range(n)]
    sources[g.out] = passes[g.out] = {g.out}
    total = 0
    for i in range(n - 1, -1, -1):  # receivers before senders
        if i != g.out:
            if not paths[i]:
                continue  # not reachable from out
            passes[i] = {i} if not g.identity[i] else sources[i]
        total += paths[i] if g.pathful[i] else sum(paths[u] for u in sources[i])
        for s in g.senders[i]:
            paths[s] += paths[i]
            sources[s] |= passes[i]
    return total, {g.nodes[i]: paths[i] for i in range(n) if paths[i]}


def refuse_splits(h: Hypothesis, tests: tuple[str, ...] = ()) -> None:
    """E602: what the engine does not scrub exactly with split components (docs/FEATURES.md), refused before
    any work: `mean` ablation of SAE parts (the mean of a latent's part is not the part of the mean output,
    and the engine keeps only means of whole components), and the statistical tests that draw random
    circuits from the model graph (their null does not draw parts yet)."""
    if not h.splits:
        return
    sae = [s for s in h.splits if s.kind is SplitKind.SAE]
    problem = ""
    if sae and h.ablation.kind is AblationKind.MEAN:
        problem = (
            f"`mean` ablation of SAE parts (`{sae[0].node.name}`): the engine keeps the mean of whole components "
            "only, and the mean of a latent's part is not the part of the mean"
        )
        hint = "use `resample`, `paired` or `zero` with an SAE split, or split by a subspace (linear: its means agree)"
    nulls = [t for t in tests if t in ("sufficiency", "necessity", "minimality")]
    if not problem and nulls:
        problem = f"the {', '.join(nulls)} test with split components: random circuits are not drawn over parts yet"
        hint = "run the check with `--no-tests` (or without `set tests.*` / `expect *.p` on these tests)"
    if problem:
        raise CircuitError(
            [
                Diagnostic(
                    "E602",
                    f"`{h.name}`: not scrubbed exactly yet: {problem}",
                    span=h.splits[0].span,
                    label="split here",
                    hint=hint,
                )
            ]  # fmt: skip
        )


def treeify(h: Hypothesis) -> Tree:
    """The treeified hypothesis under its rule (`h.treeify`); E601 past its `max_nodes`; E602 (splits) for
    what the engine does not scrub exactly."""
    refuse_splits(h)
    g = _Graph(h)
    if h.treeify.shared_draws:
        return _shared(g)
    n, paths = _count(g)
    if n > h.treeify.max_nodes:
        raise _too_large(h, n, paths)
    return _exact(g, n)


def _too_large(h: Hypothesis, n: int, paths: dict[NodeId, int]) -> TreeTooLarge:
    worst = sorted((v for v in paths if v != OUT), key=lambda v: (-paths[v], v.sort_key()))[:5]
    many = ", ".join(f"{v.name} ({_big(paths[v])} paths)" for v in worst)
    return TreeTooLarge(
        [
            Diagnostic(
                "E601",
                f"`{h.name}` treeifies to {_big(n)} distinct computations per example, more than treeify.max_nodes = "
                f"{h.treeify.max_nodes:,}; the nodes reached along the most claimed paths: {many}",
                hint="each claimed path is scrubbed with its own draws (SEMANTICS.md section 3). Options: raise the budget "
                "(`set treeify.max_nodes = N`; cost grows with it); `set treeify.shared_draws = true` (an approximation "
                "that every report names); `ablate unclaimed by paired D` / `mean` / `zero`, under which identity copies "
                "share; claim fewer edges through identity nodes; or, for the completeness search's M \\ K, `--no-completeness`",
            )
        ]
    )


def _big(n: int) -> str:
    return f"{n:,}" if n < 10**9 else f"{n:.3g}"


def _exact(g: _Graph, expect: int) -> Tree:
    built: dict = {}  # key -> (TNode, input draw, child keys)
    found: list = []
    draws: list[Draw | None] = [None]
    names = [v.name for v in g.nodes]

    def visit(i: int, path: str, x_parent: int):
        pathful = g.pathful[i]
        key = path if pathful else (i, x_parent)
        if not pathful and key in built:
            return key
        if g.identity[i]:
            x = x_parent
        else:
            draws.append(Draw(x_parent, g.feature[i], path))
            x = len(draws) - 1
        es = g.edges[i]
        kids = tuple(visit(s, f"{path}/{names[s]}>{e.port.value}", x) for e, s in zip(es, g.senders[i]))
        other = path if g.uses_other[i] else None
        built[key] = (
            TNode(g.nodes[i], path, g.feature[i], g.positions[i], tuple(map(TEdge, es, kids)), other),
            x,
            kids,
        )
        found.append(key)
        return key

    root = visit(g.out, "out", 0)
    if len(built) != expect:  # count() and the walk are two readings of one rule
        raise AssertionError(f"treeify: counted {expect} treeified nodes, built {len(built)}")
    return _tree(built, found, root, draws, shared=False)


def _shared(g: _Graph) -> Tree:
    """The shared-draw approximation: a copy is (v, ctx), ctx the non-identity nodes above it."""
    built: dict = {}
    found: list = []
    draws: list[Draw | None] = [None]
    ctx_draw: dict[tuple, int] = {(): 0}

    def visit(i: int, ctx: tuple[int, ...]):
        key = (i, ctx)
        if key in built:
            return key
        built[key] = None  # a DAG: set before the children
        path = "/".join(g.nodes[u].name for u in ctx + (i,))
        if g.identity[i]:
            cctx = ctx
        else:
            cctx = ctx + (i,)
            if cctx not in ctx_draw:
                draws.append(Draw(ctx_draw[ctx], g.feature[i], path))
                ctx_draw[cctx] = len(draws) - 1
        es = g.edges[i]
        kids = tuple(visit(s, cctx) for s in g.senders[i])
        # as before SEMANTICS v3, every copy draws its x_r (keyed by its draw path) whether or not it uses it
        other = path if g.resampling else None
        built[key] = (
            TNode(g.nodes[i], path, g.feature[i], g.positions[i], tuple(map(TEdge, es, kids)), other),
            ctx_draw[cctx],
            kids,
        )
        found.append(key)
        return key

    root = visit(g.out, ())
    return _tree(built, found, root, draws, shared=True)


def _tree(built: dict, found: list, root, draws: list, *, shared: bool) -> Tree:
    rank = {k: i for i, k in enumerate(found)}
    order = sorted(found, key=lambda k: (built[k][0].node.sort_key(), rank[k]))
    pos = {k: i for i, k in enumerate(order)}
    return Tree(
        nodes={k: built[k][0] for k in order},
        order=tuple(order),
        root=root,
        draws=tuple(draws),
        input_draw_of=tuple(built[k][1] for k in order),
        children=tuple(tuple(pos[c] for c in built[k][2]) for k in order),
        shared_draws=shared,
    )
