"""The treeified scrub, computed layer by layer from a clean cache (SEMANTICS.md section 3, docs/ENGINE.md).

For a treeified node t of model node v and a root example x, each port of t receives

    port_input = base(t) + sum over claimed edges e = (s -> t.port) of mask_e * (scrub(s', x_s) - ablated_s(t))

where base(t) is the residual the port reads when every sender is ablated and ablated_s(t) is the
sender's contribution under the ablation. Both are gathered from clean activations (the clean cache of
the dataset, the ablation dataset, their means, or zero); only the claimed nodes are recomputed, by
running one block on a batch of rows (treeified node x example). Rows are deduplicated by their
signature (node, edges, input example, other-inputs example, children's rows), also across scrubs of one
Engine, so the many scrubs of the completeness search reuse each other's work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from circuitdsl.backends.base import Backend, CleanCache
from circuitdsl.datasets.core import Dataset, Layout
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.engine.draws import CLASS, OTHER, FeatureIndex, pick
from circuitdsl.engine.treeify import TNode, Tree, treeify
from circuitdsl.ir import Ablation, AblationKind, FeatureKind, Hypothesis, NodeId, NodeKind, Port

__all__ = ["Engine", "ScrubOutput", "LayoutData", "AblSource", "DEFAULT_CACHE_BYTES"]

DEFAULT_CACHE_BYTES = 1 << 30
"""Default budget (bytes) of the cross-scrub row memo."""


@dataclass(frozen=True)
class ScrubOutput:
    """Scrubbed logits at each example's scored positions, in dataset order."""

    logits: tuple[torch.Tensor, ...]
    """[S_i, V] per example."""
    reused: int
    """Class draws whose equivalence class held only x itself (x reused)."""
    rows_computed: int
    """Rows (treeified node x example) newly computed by this scrub."""
    class_draws: int = 0
    """Class draws made (one per root example and non-identity treeified context)."""


@dataclass
class AblSource:
    """Where unclaimed senders' contributions and base residuals come from, for one layout."""

    cache: CleanCache
    kind: AblationKind
    pool: tuple[int, ...] = ()
    """Local indices into `cache` that x_r is drawn from (resample kinds), ordered by id."""
    paired: dict[int, int] = field(default_factory=dict)
    """D local index -> cache index (paired)."""


@dataclass
class LayoutData:
    layout: Layout
    pool: tuple[int, ...]
    """Dataset indices of the layout, ordered by example id."""
    cache: CleanCache
    abl: AblSource
    positions: dict[str, tuple[int, ...]]
    clean_logits: tuple[torch.Tensor, ...]
    """Clean logits at scored positions, per pool entry."""
    # memo: (node, struct) -> (sig bytes -> global row); outputs: node -> _Store of computed rows
    memo: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    # draws do not depend on the hypothesis beyond (path, features on it): cached across scrubs
    class_draws: dict = field(default_factory=dict)
    """(ctx, features of ctx) -> (local index per root, reused, draws)"""
    other_draws: dict = field(default_factory=dict)
    """draw path -> local index per root (resample kinds)"""
    masks: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Pending:
    """New rows of one model node in one phase: their signatures and where they go in its store."""

    node: NodeId
    struct: tuple
    sig: np.ndarray
    t: TNode
    g0: int


class _Store:
    """The computed rows of one model node in one layout: a tensor [capacity, P, D] that grows by
    doubling (no re-concatenation per phase), and the number of rows in use."""

    __slots__ = ("data", "n")

    def __init__(self) -> None:
        self.data: torch.Tensor | None = None
        self.n = 0

    def reserve(self, k: int, shape: tuple[int, ...], dtype: torch.dtype) -> int:
        """Room for k more rows; returns the index of the first."""
        need = self.n + k
        if self.data is None:
            self.data = torch.empty((need, *shape), dtype=dtype)
        elif need > self.data.shape[0]:
            grown = torch.empty((max(need, 2 * self.data.shape[0]), *shape), dtype=dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        start, self.n = self.n, need
        return start

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else self.data.element_size() * self.data.nelement()


def _mean_cache(c: CleanCache) -> CleanCache:
    return c.map(lambda t: t.mean(dim=0, keepdim=True))


def _zero_cache(c: CleanCache, backend: Backend) -> CleanCache:
    """Senders contribute 0; each port's base residual is the biases only: the clean residual minus
    the sum of every upstream sender's output (averaged over the layout; it is the same on every row)."""
    n_layers = backend.shape.n_layers
    up = c.embed.clone()
    if c.pos is not None:
        up = up + c.pos
    resid_pre, resid_mid = [], []
    for L in range(n_layers):
        resid_pre.append(c.resid_pre[L] - up)
        up = up + c.result[L].sum(dim=2)
        if c.mlp_out:
            resid_mid.append(c.resid_mid[L] - up)
            up = up + c.mlp_out[L]
    final = c.resid_final - up
    z = CleanCache(
        embed=torch.zeros_like(c.embed),
        pos=None if c.pos is None else torch.zeros_like(c.pos),
        resid_pre=tuple(resid_pre),
        result=tuple(torch.zeros_like(t) for t in c.result),
        resid_mid=tuple(resid_mid),
        mlp_out=tuple(torch.zeros_like(t) for t in c.mlp_out),
        resid_final=final,
        logits=c.logits,
    )
    return _mean_cache(z)


class Engine:
    """Scrubs hypotheses of one model on one dataset under one ablation and seed.

    Clean activations are computed once per dataset (and per layout); every scrub reuses them and
    the rows earlier scrubs computed."""

    def __init__(
        self,
        backend: Backend,
        datasets: dict[str, Dataset],
        main: str,
        ablation: Ablation,
        *,
        seed: int = 0,
        batch_size: int | None = None,
        memo: bool = True,
        cache_bytes: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ):
        self.backend = backend
        self.ds = datasets[main]
        self.datasets = datasets
        self.ablation = ablation
        self.seed = int(seed)
        self.batch_size = int(batch_size) if batch_size else 64
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.use_memo = memo
        self.cache_bytes = DEFAULT_CACHE_BYTES if cache_bytes is None else int(cache_bytes)
        """Budget for the cross-scrub row memo: when the computed rows held exceed it at the start of a
        scrub, the memo is emptied (`memo_flushes`); a scrub's own rows are always held while it runs."""
        self.memo_flushes = 0
        self.memo_peak_bytes = 0
        self.progress = progress
        self.fidx = FeatureIndex(self.ds)
        self._layouts: dict[Layout, LayoutData] = {}
        self._clean_cache: dict[tuple[str, Layout], tuple[tuple[int, ...], CleanCache]] = {}
        self.forward_passes = 0
        self.block_runs = 0
        if backend.shape.parallel_attn_mlp:
            raise CircuitError([Diagnostic("E520", "models whose MLP reads the attention input (parallel blocks) are not supported by the engine yet")])
        for layout in self.ds.layouts():
            self._layout(layout)

    # ---- clean activations ------------------------------------------------------------------
    def _clean(self, ds: Dataset, layout: Layout) -> tuple[tuple[int, ...], CleanCache]:
        key = (ds.name, layout)
        if key not in self._clean_cache:
            pool = ds.layouts()[layout]
            parts = []
            for i in range(0, len(pool), self.batch_size):
                toks = self.backend.tokens([ds.examples[j].tokens for j in pool[i : i + self.batch_size]])
                parts.append(self.backend.clean_run(toks))
                self.forward_passes += 1
            cache = parts[0] if len(parts) == 1 else _concat(parts)
            self._clean_cache[key] = (pool, cache)
        return self._clean_cache[key]

    def _layout(self, layout: Layout) -> LayoutData:
        if layout in self._layouts:
            return self._layouts[layout]
        pool, cache = self._clean(self.ds, layout)
        kind = self.ablation.kind
        other = self._other_dataset()
        if kind is AblationKind.RESAMPLE:
            abl = AblSource(cache, kind, pool=tuple(range(len(pool))))
        elif kind is AblationKind.RESAMPLE_FROM:
            if layout not in other.layouts():
                raise self._layout_error(other, layout)
            opool, ocache = self._clean(other, layout)
            abl = AblSource(ocache, kind, pool=tuple(range(len(opool))))
        elif kind is AblationKind.PAIRED:
            if len(other) < len(self.ds):
                raise CircuitError(
                    [Diagnostic("E417", f"`paired {other.name}` needs a row for each of the {len(self.ds)} examples of `{self.ds.name}`; it has {len(other)}")]
                )
            paired = {}
            needed = {}
            for j, i in enumerate(pool):
                if other.examples[i].layout != layout:
                    raise CircuitError(
                        [Diagnostic("E417", f"row {i} of `{other.name}` does not have the layout (length and named positions) of row {i} of `{self.ds.name}`",
                                    hint="paired datasets must match token length and named positions row by row")]
                    )
                needed[j] = i
            opool, ocache = self._clean(other, layout)
            where = {d: k for k, d in enumerate(opool)}
            paired = {j: where[i] for j, i in needed.items()}
            abl = AblSource(ocache, kind, paired=paired)
        elif kind is AblationKind.MEAN:
            src = cache
            if self.ablation.dataset:
                if layout not in other.layouts():
                    raise self._layout_error(other, layout)
                src = self._clean(other, layout)[1]
            abl = AblSource(_mean_cache(src), kind)
        else:
            abl = AblSource(_zero_cache(cache, self.backend), kind)
        ex = self.ds.examples[pool[0]]
        clean_logits = tuple(cache.logits[j, list(self.ds.examples[i].scored_positions)] for j, i in enumerate(pool))
        data = LayoutData(layout, pool, cache, abl, dict(ex.positions), clean_logits)
        self._layouts[layout] = data
        return data

    def _other_dataset(self) -> Dataset:
        name = self.ablation.dataset
        if self.ablation.kind in (AblationKind.RESAMPLE_FROM, AblationKind.PAIRED) and not name:
            raise CircuitError([Diagnostic("E418", f"`{self.ablation.kind.value}` needs a dataset name")])
        if not name:
            return self.ds
        if name not in self.datasets:
            raise CircuitError([Diagnostic("E418", f"ablation dataset `{name}` is not declared")])
        return self.datasets[name]

    def _layout_error(self, other: Dataset, layout: Layout) -> CircuitError:
        return CircuitError(
            [Diagnostic("E417", f"dataset `{other.name}` has no example with the layout of `{self.ds.name}`'s examples of length {layout[0]}",
                        hint="draws are made within a layout: the ablation dataset needs matching lengths and named positions")]
        )

    def clean_logits(self) -> tuple[torch.Tensor, ...]:
        """Clean logits at scored positions, in dataset order."""
        out: list[torch.Tensor | None] = [None] * len(self.ds)
        for data in self._layouts.values():
            for j, i in enumerate(data.pool):
                out[i] = data.clean_logits[j]
        return tuple(out)  # type: ignore[arg-type]

    # ---- scrub ----------------------------------------------------------------------------------
    def memo_bytes(self) -> int:
        """Bytes held by computed rows (the cross-scrub memo)."""
        return sum(st.nbytes for d in self._layouts.values() for st in d.outputs.values())

    def _bound_memo(self) -> None:
        held = self.memo_bytes()
        self.memo_peak_bytes = max(self.memo_peak_bytes, held)
        if held > self.cache_bytes or not self.use_memo:
            if held:
                self.memo_flushes += int(self.use_memo)
            for d in self._layouts.values():
                d.memo.clear()
                d.outputs.clear()

    def scrub(self, h: Hypothesis) -> ScrubOutput:
        self._bound_memo()
        tree = treeify(h)
        out: list[torch.Tensor | None] = [None] * len(self.ds)
        reused = computed = draws = 0
        for data in self._layouts.values():
            logits, r, c, d = self._scrub_layout(tree, data)
            reused += r
            computed += c
            draws += d
            for j, i in enumerate(data.pool):
                out[i] = logits[j]
        return ScrubOutput(tuple(out), reused, computed, draws)  # type: ignore[arg-type]

    def _inputs(self, tree: Tree, data: LayoutData) -> tuple[dict[tuple, np.ndarray], int, int]:
        """x_t (local index) of every treeified node, for every root."""
        n = len(data.pool)
        ids = [self.ds.examples[i].id for i in data.pool]
        local = {d: j for j, d in enumerate(data.pool)}
        features = {k[0]: t.feature for k, t in tree.nodes.items()}
        cache = data.class_draws
        counted: set = set()
        reused = draws = 0

        def x_of(ctx: tuple[NodeId, ...]) -> np.ndarray:
            nonlocal reused, draws
            if not ctx:
                return np.arange(n)
            ck = (ctx, tuple(features[u] for u in ctx))
            if ck not in cache:
                parent = x_of(ctx[:-1])
                u = ctx[-1]
                path = "/".join(v.name for v in ctx)
                res = np.empty(n, dtype=np.int64)
                r = 0
                for j in range(n):
                    cls = self.fidx.cls(features[u], data.pool[parent[j]])
                    r += len(cls) == 1
                    res[j] = local[pick(cls, self.seed, ids[j], path, CLASS)]
                cache[ck] = (res, r, n)
            res, r, d = cache[ck]
            if ck not in counted:  # counts per scrub, as if drawn afresh (ancestors included)
                counted.add(ck)
                x_of(ctx[:-1])
                reused += r
                draws += d
            return res

        per_node = {key: x_of(t.input_ctx) for key, t in tree.nodes.items()}
        return per_node, reused, draws

    def _abl_index(self, t: TNode, data: LayoutData, x_t: np.ndarray) -> np.ndarray:
        a = data.abl
        n = len(data.pool)
        if a.kind in (AblationKind.RESAMPLE, AblationKind.RESAMPLE_FROM):
            got = data.other_draws.get(t.path)
            if got is None:
                ids = [self.ds.examples[i].id for i in data.pool]
                got = np.array([pick(a.pool, self.seed, ids[j], t.path, OTHER) for j in range(n)], dtype=np.int64)
                data.other_draws[t.path] = got
            return got
        if a.kind is AblationKind.PAIRED:
            return np.array([a.paired[int(x)] for x in x_t], dtype=np.int64)
        return np.zeros(n, dtype=np.int64)

    def _scrub_layout(self, tree: Tree, data: LayoutData) -> tuple[list[torch.Tensor], int, int, int]:
        n = len(data.pool)
        x_in, reused, draws = self._inputs(tree, data)
        P = data.layout[0]
        rows: dict[tuple, np.ndarray] = {}  # tnode key -> global row (or x index for embeddings) per root
        by_node: dict[NodeId, list[TNode]] = {}
        for key in tree.order:
            by_node.setdefault(key[0], []).append(tree.nodes[key])
        computed = 0
        phases: list[list[NodeId]] = []
        for v in sorted(by_node):
            if v.kind in (NodeKind.EMBED, NodeKind.POS):
                for t in by_node[v]:
                    rows[t.key] = x_in[t.key]
                continue
            tag = (v.layer, v.kind)
            if phases and (phases[-1][0].layer, phases[-1][0].kind) == tag:
                phases[-1].append(v)
            else:
                phases.append([v])
        for phase in phases:
            pending: list[tuple[NodeId, tuple, np.ndarray]] = []  # (node, struct, unique sig rows)
            for v in phase:
                tns = by_node[v]
                struct = self._struct(tns[0], tree)
                sigs = []
                for t in tns:
                    cols = [x_in[t.key], self._abl_index(t, data, x_in[t.key])] + [rows[e.child] for e in t.edges]
                    sigs.append(np.stack(cols, axis=1))
                sig = np.concatenate(sigs, axis=0)
                uniq, inv = np.unique(sig, axis=0, return_inverse=True)
                inv = inv.reshape(-1)
                memo = data.memo.setdefault((v, struct), {}) if self.use_memo else {}
                store = data.outputs.setdefault(v, _Store())
                new_rows = []
                gid = np.empty(len(uniq), dtype=np.int64)
                for u in range(len(uniq)):
                    k = uniq[u].tobytes()
                    g = memo.get(k)
                    if g is None:
                        g = store.n + len(new_rows)
                        memo[k] = g
                        new_rows.append(u)
                    gid[u] = g
                if new_rows:
                    g0 = store.reserve(len(new_rows), (P, self.backend.shape.d_model), self._dtype(data))
                    pending.append(_Pending(v, struct, uniq[new_rows], tns[0], g0))
                for i, t in enumerate(tns):
                    rows[t.key] = gid[inv[i * n : (i + 1) * n]]
            if pending:
                computed += sum(len(p.sig) for p in pending)
                self._compute_phase(pending, data, P)
        root = tree.nodes[tree.root]
        logits = self._out_logits(root, rows[root.key], data)
        return logits, reused, computed, draws

    def _struct(self, t: TNode, tree: Tree) -> tuple:
        """What the rows of a node share: its edges and the position masks they carry."""
        return tuple((e.edge, tree.nodes[e.child].positions) for e in t.edges) + (("positions", t.positions),)

    # ---- computing rows -------------------------------------------------------------------------
    def _mask(self, data: LayoutData, names: tuple[str, ...] | None) -> torch.Tensor | None:
        if names is None:
            return None
        if names in data.masks:
            return data.masks[names]
        m = torch.zeros(data.layout[0], dtype=torch.float32)
        for nm in names:
            if nm not in data.positions:
                raise CircuitError([Diagnostic("E240", f"position `{nm}` is not a named position of dataset `{self.ds.name}`")])
            m[list(data.positions[nm])] = 1.0
        data.masks[names] = m
        return m

    def _edge_mask(self, data: LayoutData, t: TNode, sender_pos, port: Port) -> torch.Tensor | None:
        ms = self._mask(data, sender_pos)
        if port in (Port.K, Port.V) or t.node.kind is NodeKind.OUT:
            return ms
        mt = self._mask(data, t.positions)
        if ms is None:
            return mt
        return ms if mt is None else ms * mt

    def _sender_out(self, s: NodeId, data: LayoutData, idx: torch.Tensor) -> torch.Tensor:
        c = data.cache
        if s.kind is NodeKind.EMBED:
            return c.embed[idx]
        if s.kind is NodeKind.POS:
            if c.pos is None:
                raise CircuitError([Diagnostic("E241", "`pos` names the learned position embedding, which this model lacks")])
            return c.pos[idx]
        return data.outputs[s].data[idx]

    def _ablated(self, s: NodeId, data: LayoutData, a: torch.Tensor) -> torch.Tensor:
        c = data.abl.cache
        if s.kind is NodeKind.EMBED:
            return c.embed[a]
        if s.kind is NodeKind.POS:
            return c.pos[a]
        if s.kind is NodeKind.HEAD:
            return c.result[s.layer][a, :, s.head]
        return c.mlp_out[s.layer][a]

    def _base(self, v: NodeId, data: LayoutData, a: torch.Tensor) -> torch.Tensor:
        c = data.abl.cache
        if v.kind is NodeKind.HEAD:
            return c.resid_pre[v.layer][a]
        if v.kind is NodeKind.MLP:
            return c.resid_mid[v.layer][a]
        return c.resid_final[a]

    def _port_inputs(self, t: TNode, struct: tuple, sig: np.ndarray, data: LayoutData) -> dict[Port, torch.Tensor]:
        a = torch.from_numpy(sig[:, 1])
        base = self._base(t.node, data, a)
        ports = (Port.Q, Port.K, Port.V) if t.node.kind is NodeKind.HEAD else (Port.IN,)
        out = {p: base.clone() for p in ports}
        for col, (edge, sender_pos) in enumerate(struct[:-1]):
            idx = torch.from_numpy(sig[:, 2 + col])
            delta = self._sender_out(edge.sender, data, idx) - self._ablated(edge.sender, data, a)
            m = self._edge_mask(data, t, sender_pos, edge.port)
            if m is not None:
                delta = delta * m[None, :, None]
            out[edge.port] += delta
        return out

    def _dtype(self, data: LayoutData) -> torch.dtype:
        return data.cache.resid_pre[0].dtype if data.cache.resid_pre else data.cache.embed.dtype

    def _compute_phase(self, pending: list["_Pending"], data: LayoutData, P: int) -> None:
        """Compute the new rows of one phase (the heads of a layer, its MLP, or `out`).

        Head rows are packed: one block row carries a row of several heads at once (head H's output
        depends only on its own q input and its key/value group's k/v inputs), so a block row holds one
        row per head (per key/value group in GQA models, whose k/v inputs the group's heads share)."""
        b = self.backend
        v0 = pending[0].node
        layer, kind = v0.layer, v0.kind
        bs = self.batch_size
        if kind is NodeKind.OUT:  # out computes nothing: its row is the final residual it reads
            for pd in pending:
                store = data.outputs[pd.node]
                for i in range(0, len(pd.sig), bs):
                    part = self._port_inputs(pd.t, pd.struct, pd.sig[i : i + bs], data)[Port.IN]
                    store.data[pd.g0 + i : pd.g0 + i + len(part)] = part
            return
        shape = b.shape
        H, G = shape.n_heads, shape.n_kv_heads
        # pack: each pending item gets a slot (a head, or a key/value group) and a run of block rows
        fill: dict[int, int] = {}
        starts = []
        for pd in pending:
            slot = (pd.node.head if G == H else shape.kv_group(pd.node.head)) if kind is NodeKind.HEAD else 0
            starts.append(fill.get(slot, 0))
            fill[slot] = starts[-1] + len(pd.sig)
        R = max(fill.values())
        dtype = self._dtype(data)
        D = shape.d_model
        for c0 in range(0, R, bs):
            c1 = min(R, c0 + bs)
            r = c1 - c0
            if kind is NodeKind.HEAD:
                q = torch.zeros(r, P, H, D, dtype=dtype)
                k = torch.zeros(r, P, G, D, dtype=dtype)
                vv = torch.zeros(r, P, G, D, dtype=dtype)
                mi = None
            else:
                mi = torch.zeros(r, P, D, dtype=dtype)
            users = []
            for pd, st in zip(pending, starts):
                lo, hi = max(st, c0), min(st + len(pd.sig), c1)
                if lo >= hi:
                    continue
                ports = self._port_inputs(pd.t, pd.struct, pd.sig[lo - st : hi - st], data)
                if kind is NodeKind.HEAD:
                    h = pd.node.head
                    g = shape.kv_group(h)
                    q[lo - c0 : hi - c0, :, h] = ports[Port.Q]
                    k[lo - c0 : hi - c0, :, g] = ports[Port.K]
                    vv[lo - c0 : hi - c0, :, g] = ports[Port.V]
                else:
                    mi[lo - c0 : hi - c0] = ports[Port.IN]
                users.append((pd, lo - st, hi - st, lo - c0))
            if kind is NodeKind.HEAD:
                result, _ = b.run_layer(layer, q, k, vv, None)
            else:
                x = mi.unsqueeze(2)
                result, mlp = b.run_layer(layer, x.expand(-1, -1, H, -1), x.expand(-1, -1, G, -1), x.expand(-1, -1, G, -1), mi)
            self.block_runs += 1
            for pd, a, z, at in users:
                out = result[at : at + z - a, :, pd.node.head] if kind is NodeKind.HEAD else mlp[at : at + z - a]
                data.outputs[pd.node].data[pd.g0 + a : pd.g0 + z] = out
            if self.progress:
                self.progress("rows", r, 0)

    def _out_logits(self, root: TNode, grows: np.ndarray, data: LayoutData) -> list[torch.Tensor]:
        """The out rows: final residuals -> logits at each root's scored positions."""
        resid = data.outputs[root.node].data[torch.from_numpy(grows)]
        sel, sizes = [], []
        for j, i in enumerate(data.pool):
            sp = list(self.ds.examples[i].scored_positions)
            sel.append(resid[j, sp])
            sizes.append(len(sp))
        flat = torch.cat(sel)
        logits = []
        for s in range(0, flat.shape[0], max(1, self.batch_size)):
            logits.append(self.backend.unembed(flat[s : s + self.batch_size].unsqueeze(1))[:, 0])
        allv = torch.cat(logits)
        return list(torch.split(allv, sizes))


def _concat(parts: list[CleanCache]) -> CleanCache:
    def cat(get):
        return torch.cat([get(p) for p in parts])

    return CleanCache(
        embed=cat(lambda p: p.embed),
        pos=None if parts[0].pos is None else cat(lambda p: p.pos),
        resid_pre=tuple(torch.cat([p.resid_pre[L] for p in parts]) for L in range(len(parts[0].resid_pre))),
        result=tuple(torch.cat([p.result[L] for p in parts]) for L in range(len(parts[0].result))),
        resid_mid=tuple(torch.cat([p.resid_mid[L] for p in parts]) for L in range(len(parts[0].resid_mid))),
        mlp_out=tuple(torch.cat([p.mlp_out[L] for p in parts]) for L in range(len(parts[0].mlp_out))),
        resid_final=cat(lambda p: p.resid_final),
        logits=cat(lambda p: p.logits),
    )
