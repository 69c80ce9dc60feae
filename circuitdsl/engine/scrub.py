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

import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from circuitdsl.backends.base import Backend, CleanCache
from circuitdsl.datasets.core import Dataset, Layout
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.engine.diskcache import ActivationCache, clean_batch
from circuitdsl.engine.draws import CLASS, OTHER, FeatureIndex, pick
from circuitdsl.engine.spill import (
    SPILL_DIR_ENV,
    SpillDir,
    SpilledHeads,
    SpilledTensor,
    is_spilled,
    release_free_memory,
    rows_of,
)
from circuitdsl.engine.treeify import TNode, Tree, treeify
from circuitdsl.ir import Ablation, AblationKind, Hypothesis, NodeId, NodeKind, Port, Split

__all__ = ["Engine", "ScrubOutput", "LayoutData", "AblSource", "DEFAULT_CACHE_BYTES", "DEFAULT_CLEAN_BYTES"]

DEFAULT_CACHE_BYTES = 1 << 30
"""Default budget (bytes) of the cross-scrub row memo."""

DEFAULT_CLEAN_BYTES = 4 << 30
"""Default budget (bytes) of clean activations held in memory; beyond it they are spilled to disk."""


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
    """Class draws made (one per root example and treeified node with a non-identity feature)."""
    tree_nodes: int = 0
    """Distinct treeified nodes of the hypothesis (per example)."""
    shared_draws: bool = False
    """Whether the hypothesis was treeified with the shared-draw approximation."""


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
    # draws do not depend on the hypothesis beyond (path, features along it): cached across scrubs
    draw_keys: dict = field(default_factory=dict)
    """(key of the parent draw, feature, path) -> key of a class draw (the root example is key 0)"""
    class_draws: dict = field(default_factory=dict)
    """key of a class draw -> (local index per root, how many classes held only the parent's example)"""
    other_draws: dict = field(default_factory=dict)
    """other-inputs draw path -> local index per root (resample kinds)"""
    masks: dict = field(default_factory=dict)
    paired_index: np.ndarray | None = None
    """paired: local index -> row of the paired dataset's cache, as an array."""


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

    def reserve(self, k: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str = "cpu") -> int:
        """Room for k more rows (on the model's device); returns the index of the first."""
        need = self.n + k
        if self.data is None:
            self.data = torch.empty((need, *shape), dtype=dtype, device=device)
        elif need > self.data.shape[0]:
            grown = torch.empty((max(need, 2 * self.data.shape[0]), *shape), dtype=dtype, device=self.data.device)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        start, self.n = self.n, need
        return start

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else self.data.element_size() * self.data.nelement()


class _Struct(tuple):
    """A node's struct (see `Engine._struct`) as a tuple whose hash is computed once: it keys the memo
    and the port plans, and can hold hundreds of edges."""

    _h: int

    def __new__(cls, items: tuple) -> _Struct:
        self = super().__new__(cls, items)
        self._h = tuple.__hash__(self)
        return self

    def __hash__(self) -> int:
        return self._h

    def __eq__(self, other: object) -> bool:
        return self is other or tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)


def _unique_rows(sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique rows, inverse) of an int64 matrix: rows hashed to one uint64 each, then checked exactly
    (np.unique(axis=0) sorts whole rows, which costs more than everything else on a row)."""
    if len(sig) == 0:
        return sig, np.zeros(0, dtype=np.int64)
    w = _weights(sig.shape[1])
    h = (sig.astype(np.uint64) * w).sum(axis=1, dtype=np.uint64)
    _, first, inv = np.unique(h, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    uniq = sig[first]
    if not np.array_equal(uniq[inv], sig):  # a hash collision: sort the rows themselves
        uniq, inv = np.unique(sig, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
    return uniq, inv


def _weights(k: int) -> np.ndarray:
    w = _WEIGHTS.get(k)
    if w is None:
        w = _WEIGHTS[k] = np.random.default_rng(k).integers(1, 1 << 63, size=k, dtype=np.uint64) | np.uint64(1)
    return w


_WEIGHTS: dict[int, np.ndarray] = {}


def _fields(c: CleanCache) -> list:
    """The activation fields of a cache in a fixed order (the full logits excluded)."""
    return [
        c.embed,
        *([c.pos] if c.pos is not None else []),
        *c.resid_pre,
        *c.result,
        *c.resid_mid,
        *c.mlp_out,
        c.resid_final,
    ]


def _cache_nbytes(c: CleanCache) -> int:
    return sum(t.nbytes if is_spilled(t) else t.element_size() * t.nelement() for t in _fields(c))


def _spilled_like(part: CleanCache, n: int, d: SpillDir, tag: str) -> CleanCache:
    """Empty spill files for n examples shaped like `part`'s fields."""
    dev = part.embed.device

    def one(t: torch.Tensor, name: str):
        return SpilledTensor.create(d, f"{tag}-{name}", (n, *t.shape[1:]), t.dtype, dev)

    return CleanCache(
        embed=one(part.embed, "embed"),
        pos=None if part.pos is None else one(part.pos, "pos"),
        resid_pre=tuple(one(t, f"resid_pre{L}") for L, t in enumerate(part.resid_pre)),
        # (a spilled cache holds SpilledTensor / SpilledHeads where a CleanCache holds tensors: same row interface)
        result=tuple(
            SpilledHeads.create(d, f"{tag}-result{L}", (n, *t.shape[1:]), t.dtype, dev)  # type: ignore[misc]
            for L, t in enumerate(part.result)
        ),
        resid_mid=tuple(one(t, f"resid_mid{L}") for L, t in enumerate(part.resid_mid)),
        mlp_out=tuple(one(t, f"mlp_out{L}") for L, t in enumerate(part.mlp_out)),
        resid_final=one(part.resid_final, "resid_final"),
        logits=None,
    )


def _write_rows(spilled: CleanCache, start: int, part: CleanCache) -> None:
    for dst, src in zip(_fields(spilled), _fields(part), strict=True):
        dst.write(start, src)


def _stream_mean(t, n: int, chunk: int) -> torch.Tensor:
    """Mean over examples, accumulated in float64 chunk by chunk (the same numbers in memory or spilled)."""
    acc: torch.Tensor | None = None
    for lo in range(0, n, chunk):
        s = rows_of(t, lo, min(n, lo + chunk)).double().sum(dim=0, keepdim=True)
        acc = s if acc is None else acc + s
    assert acc is not None, "the mean of no examples"
    return (acc / n).to(t.dtype)


def _mean_cache(c: CleanCache, chunk: int) -> CleanCache:
    n = c.n
    return c.map(lambda t: _stream_mean(t, n, chunk))


def _zero_cache(c: CleanCache, backend: Backend, chunk: int) -> CleanCache:
    """Senders contribute 0; each port's base residual is the biases only: the clean residual minus
    the sum of every upstream sender's output (averaged over the layout; it is the same on every row)."""
    n_layers = backend.shape.n_layers
    n = c.n
    has_mlp = bool(c.mlp_out)
    parallel = bool(backend.shape.parallel_attn_mlp)
    sums: list[torch.Tensor] | None = None
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        up = rows_of(c.embed, lo, hi).clone()
        if c.pos is not None:
            up = up + rows_of(c.pos, lo, hi)
        vals = []
        for L in range(n_layers):
            vals.append(rows_of(c.resid_pre[L], lo, hi) - up)
            if has_mlp and parallel:  # the MLP reads the layer's input: layers < L only
                vals.append(rows_of(c.resid_mid[L], lo, hi) - up)
            up = up + rows_of(c.result[L], lo, hi).sum(dim=2)
            if has_mlp:
                if not parallel:
                    vals.append(rows_of(c.resid_mid[L], lo, hi) - up)
                up = up + rows_of(c.mlp_out[L], lo, hi)
        vals.append(rows_of(c.resid_final, lo, hi) - up)
        part = [v.double().sum(dim=0, keepdim=True) for v in vals]
        sums = part if sums is None else [x + y for x, y in zip(sums, part)]
    dtype = c.embed.dtype
    means = [(x / n).to(dtype) for x in sums or []]
    step = 2 if has_mlp else 1

    def zeros(t) -> torch.Tensor:
        return torch.zeros((1, *t.shape[1:]), dtype=t.dtype, device=t.device)

    return CleanCache(
        embed=zeros(c.embed),
        pos=None if c.pos is None else zeros(c.pos),
        resid_pre=tuple(means[L * step] for L in range(n_layers)),
        result=tuple(zeros(t) for t in c.result),
        resid_mid=tuple(means[L * step + 1] for L in range(n_layers)) if has_mlp else (),
        mlp_out=tuple(zeros(t) for t in c.mlp_out),
        resid_final=means[-1],
        logits=None,
    )


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
        clean_bytes: int | None = None,
        spill_dir: str | None = None,
        root_chunk: int | None = None,
        shortcuts: bool = True,
        progress: Callable[[str, int, int], None] | None = None,
        disk_cache: ActivationCache | None = None,
    ):
        self.backend = backend
        self.disk_cache = disk_cache
        """Clean batches read from / written to disk between runs (engine/diskcache.py); None: always run."""
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
        self._clean_cache: dict[tuple[str, Layout], tuple[tuple[int, ...], CleanCache, tuple[torch.Tensor, ...]]] = {}
        self.clean_bytes = DEFAULT_CLEAN_BYTES if clean_bytes is None else int(clean_bytes)
        """Budget for clean activations held in memory; layouts beyond it are spilled to disk."""
        self.clean_held = 0
        """Bytes of clean activations held in memory."""
        self.clean_spilled = 0
        """Bytes of clean activations in spill files."""
        self.spill_dir = spill_dir
        self._spill: SpillDir | None = None
        self._closed = False
        self.root_chunk = self.batch_size if root_chunk is None else int(root_chunk)
        """Root examples scrubbed at a time (0: all of a layout at once); bounds the rows one scrub holds."""
        self.forward_passes = 0
        self.block_runs = 0
        self.block_rows = 0.0
        """Work done, in rows through the whole model: a clean run's row counts 1, a row through one
        attention or one MLP 1 / (2 n_layers) (1 / n_layers in a model without MLPs). `forward_equiv`."""
        self.shortcuts = bool(shortcuts)
        """Use the clean-base ('x') form of port inputs and skip rows that are exactly clean (`_plan`);
        off: every port input is computed from its ablated base, as SEMANTICS.md section 3 writes it."""
        self._up: dict[NodeId, tuple[NodeId, ...]] = {}
        self._split_of: dict[NodeId, Split] = {}
        """The split components of the hypotheses scrubbed so far, by component (docs/FEATURES.md); rows of
        parts are memoised by part name, so one Engine accepts one split per component."""
        self._plans: dict[tuple, tuple] = {}
        self._structs: dict[tuple, _Struct] = {}
        verdict = getattr(backend, "contract", None)
        if verdict is None or not verdict.passed:
            # SEMANTICS.md section 1: nothing is scored on a model that has not passed the model contract
            from circuitdsl.backends.contract import require

            try:
                require(backend)
            except Exception as e:
                raise CircuitError(
                    [Diagnostic(getattr(e, "code", "E540"), str(e), hint=getattr(e, "hint", ""))]
                ) from None
        for layout in self.ds.layouts():
            self._layout(layout)

    # ---- clean activations ------------------------------------------------------------------
    def _clean(self, ds: Dataset, layout: Layout) -> tuple[tuple[int, ...], CleanCache, tuple[torch.Tensor, ...]]:
        """(pool, clean activations, clean logits at each pool entry's scored positions) of one layout of
        a dataset. The full logits are not kept. When the activations would take the in-memory total past
        `clean_bytes`, they are written to a spill file as they are computed (engine/spill.py)."""
        key = (ds.name, layout)
        if key not in self._clean_cache:
            pool = ds.layouts()[layout]
            parts: list[CleanCache] = []
            scored: list[torch.Tensor] = []
            spilled: CleanCache | None = None
            for i in range(0, len(pool), self.batch_size):
                rows = pool[i : i + self.batch_size]
                part, got, ran = clean_batch(self.backend, self.disk_cache, [ds.examples[j] for j in rows])
                if ran:  # not when the disk cache held the batch (engine/diskcache.py)
                    self.forward_passes += 1
                    self.block_rows += len(rows)
                scored += got
                need = _cache_nbytes(part) * len(pool) // max(1, part.n)
                if i == 0 and self.clean_held + need > self.clean_bytes:
                    try:
                        spilled = _spilled_like(
                            part, len(pool), self._spill_dir(), f"{ds.name}-{len(self._clean_cache)}"
                        )
                    except OSError as e:
                        raise self._spill_error(e, need) from None
                if spilled is not None:
                    try:
                        _write_rows(spilled, i, part)
                    except OSError as e:
                        raise self._spill_error(e, need) from None
                    del part
                    release_free_memory()
                else:
                    parts.append(part)
            if spilled is not None:
                cache = spilled
                self.clean_spilled += _cache_nbytes(cache)
            else:
                cache = parts[0] if len(parts) == 1 else _concat(parts)
                self.clean_held += _cache_nbytes(cache)
            self._clean_cache[key] = (pool, cache, tuple(scored))
        return self._clean_cache[key]

    def _spill_error(self, e: OSError, need: int) -> CircuitError:
        where = self.spill_dir or os.environ.get(SPILL_DIR_ENV) or tempfile.gettempdir()
        return CircuitError(
            [
                Diagnostic(
                    "E530",
                    f"cannot write clean activations to a spill file under `{where}`: {e.strerror or e}",
                    hint=f"this layout needs about {need / 2**30:.1f} GiB there: set {SPILL_DIR_ENV} to a directory with room, "
                    f"or keep more in memory with a larger --clean-cache (now {self.clean_bytes >> 20} MiB)",
                )
            ]
        )

    def _spill_dir(self) -> SpillDir:
        if self._spill is None or self._spill.closed:
            self._spill = SpillDir(self.spill_dir)
        return self._spill

    def close(self) -> None:
        """Drop the clean activations and remove the spill files (also done when the engine is
        collected); the engine cannot scrub afterwards."""
        self._closed = True
        self._layouts.clear()
        self._clean_cache.clear()
        if self._spill is not None:
            self._spill.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _layout(self, layout: Layout) -> LayoutData:
        if layout in self._layouts:
            return self._layouts[layout]
        pool, cache, scored = self._clean(self.ds, layout)
        kind = self.ablation.kind
        other = self._other_dataset()
        if kind is AblationKind.RESAMPLE:
            abl = AblSource(cache, kind, pool=tuple(range(len(pool))))
        elif kind is AblationKind.RESAMPLE_FROM:
            if layout not in other.layouts():
                raise self._layout_error(other, layout)
            opool, ocache, _ = self._clean(other, layout)
            abl = AblSource(ocache, kind, pool=tuple(range(len(opool))))
        elif kind is AblationKind.PAIRED:
            if len(other) < len(self.ds):
                raise CircuitError(
                    [
                        Diagnostic(
                            "E417",
                            f"`paired {other.name}` needs a row for each of the {len(self.ds)} examples of `{self.ds.name}`; it has {len(other)}",
                        )
                    ]
                )
            paired = {}
            needed = {}
            for j, i in enumerate(pool):
                if other.examples[i].layout != layout:
                    raise CircuitError(
                        [
                            Diagnostic(
                                "E417",
                                f"row {i} of `{other.name}` does not have the layout (length and named positions) of row {i} of `{self.ds.name}`",
                                hint="paired datasets must match token length and named positions row by row",
                            )
                        ]
                    )
                needed[j] = i
            opool, ocache, _ = self._clean(other, layout)
            where = {d: k for k, d in enumerate(opool)}
            paired = {j: where[i] for j, i in needed.items()}
            abl = AblSource(ocache, kind, paired=paired)
        elif kind is AblationKind.MEAN:
            src = cache
            if self.ablation.dataset:
                if layout not in other.layouts():
                    raise self._layout_error(other, layout)
                src = self._clean(other, layout)[1]
            abl = AblSource(_mean_cache(src, self.batch_size), kind)
        else:
            abl = AblSource(_zero_cache(cache, self.backend, self.batch_size), kind)
        ex = self.ds.examples[pool[0]]
        data = LayoutData(layout, pool, cache, abl, dict(ex.positions), scored)
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
            [
                Diagnostic(
                    "E417",
                    f"dataset `{other.name}` has no example with the layout of `{self.ds.name}`'s examples of length {layout[0]}",
                    hint="draws are made within a layout: the ablation dataset needs matching lengths and named positions",
                )
            ]
        )

    def clean_logits(self) -> tuple[torch.Tensor, ...]:
        """Clean logits at scored positions, in dataset order."""
        out: list[torch.Tensor | None] = [None] * len(self.ds)
        for data in self._layouts.values():
            for j, i in enumerate(data.pool):
                out[i] = data.clean_logits[j]
        return tuple(out)  # type: ignore[arg-type]

    # ---- scrub ----------------------------------------------------------------------------------
    def _half_block(self) -> float:
        sh = self.backend.shape
        return 1.0 / (sh.n_layers * (2 if sh.has_mlp else 1))

    def forward_equiv(self) -> float:
        """`block_rows` in forward passes over the main dataset (N rows): the clean runs of a paired
        check count 2 (the dataset and its pair)."""
        return self.block_rows / max(1, len(self.ds))

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
            if held > 64 << 20:
                release_free_memory()

    def scrub(self, h: Hypothesis) -> ScrubOutput:
        if self._closed:
            raise RuntimeError("this Engine was closed: its clean activations are gone")
        self._bound_memo()
        if h.ablation != self.ablation:  # the engine's ablation governs (it decides which copies draw x_r)
            h = dataclasses.replace(h, ablation=self.ablation)
        self._add_splits(h.splits)
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
        return ScrubOutput(tuple(out), reused, computed, draws, len(tree.nodes), tree.shared_draws)  # type: ignore[arg-type]

    def _add_splits(self, splits: tuple[Split, ...]) -> None:
        new = False
        for sp in splits:
            old = self._split_of.get(sp.node)
            if old is None:
                self._split_of[sp.node] = sp
                new = True
            elif (old.kind, old.source, old.digest, old.parts) != (sp.kind, sp.source, sp.digest, sp.parts):
                raise ValueError(f"this Engine scrubbed another split of {sp.node.name}; use one Engine per split")
        if new:
            self._up.clear()
            self._plans.clear()

    def _part(self, s: NodeId, whole_out: torch.Tensor) -> torch.Tensor:
        """Part s's output from its component's output (circuitdsl.splits.parts, the one implementation)."""
        from circuitdsl.splits.parts import part_outputs

        return part_outputs(self._split_of[s.whole], whole_out)[s]

    def _inputs(self, tree: Tree, data: LayoutData) -> tuple[np.ndarray, int, int]:
        """[number of draws, n]: the input example (local index) of every class draw of the tree
        (`Tree.draws`; row 0 is the root x), for every root; and (reused, draws) counts."""
        n = len(data.pool)
        ids = [self.ds.examples[i].id for i in data.pool]
        local = {d: j for j, d in enumerate(data.pool)}
        keys = data.draw_keys
        cache = data.class_draws
        xs = np.empty((len(tree.draws), n), dtype=np.int64)
        xs[0] = np.arange(n)
        kid = [0] * len(tree.draws)
        reused = draws = 0
        for d in range(1, len(tree.draws)):
            draw = tree.draws[d]
            assert draw is not None  # (only draw 0, x itself, has no parent)
            parent, feature, path = draw
            # draws do not depend on the hypothesis beyond (path, features along it): cached across scrubs
            k = keys.setdefault((kid[parent], feature, path), len(keys) + 1)
            kid[d] = k
            got = cache.get(k)
            if got is None:
                px = xs[parent]
                res = np.empty(n, dtype=np.int64)
                r = 0
                for j in range(n):
                    cls = self.fidx.cls(feature, data.pool[px[j]])
                    r += len(cls) == 1
                    res[j] = local[pick(cls, self.seed, ids[j], path, CLASS)]
                got = cache[k] = (res, r)
            xs[d] = got[0]
            reused += got[1]
            draws += n
        return xs, reused, draws

    def _other_rows(self, path: str, data: LayoutData) -> np.ndarray:
        """x_r for every root: the other-inputs draw keyed by `path` (resample kinds)."""
        got = data.other_draws.get(path)
        if got is None:
            ids = [self.ds.examples[i].id for i in data.pool]
            pool = data.abl.pool
            got = data.other_draws[path] = np.array(
                [pick(pool, self.seed, i, path, OTHER) for i in ids], dtype=np.int64
            )
        return got

    def _scrub_layout(self, tree: Tree, data: LayoutData) -> tuple[list[torch.Tensor], int, int, int]:
        """Scrubbed logits of one layout's roots. Roots are taken `root_chunk` at a time (draws for all
        of them first): a chunk's rows are computed phase by phase and its logits read off; between
        chunks the row memo is bounded like between scrubs, so the rows held do not grow with N."""
        n = len(data.pool)
        xs, reused, draws = self._inputs(tree, data)
        P = data.layout[0]
        in_ctx = np.asarray(tree.input_draw_of, dtype=np.int64)
        by_node: dict[NodeId, list[int]] = {}
        positions = []
        for i, key in enumerate(tree.order):
            t = tree.nodes[key]
            by_node.setdefault(t.node, []).append(i)
            positions.append(t.positions)
        embeds: list[np.ndarray] = []
        phases: list[list[NodeId]] = []
        for v in sorted(by_node):
            if v.kind in (NodeKind.EMBED, NodeKind.POS):
                embeds.append(np.asarray(by_node[v]))
                continue
            tag = (v.layer, v.kind)
            if phases and (phases[-1][0].layer, phases[-1][0].kind) == tag:
                phases[-1].append(v)
            else:
                phases.append([v])
        # per node, for all roots: its treeified copies, what their rows share, inputs and ablation rows
        nodes: dict[NodeId, tuple] = {}
        for phase in phases:
            for v in phase:
                idx = np.asarray(by_node[v])
                t0 = tree.nodes[tree.order[idx[0]]]
                struct = self._intern(self._struct(t0, tree, idx[0], positions))
                x_v = xs[in_ctx[idx]]  # [T, n]
                a_v = self._abl_rows(tree, idx, data, x_v)
                kids = np.array([tree.children[i] for i in idx], dtype=np.int64).reshape(len(idx), -1)  # [T, E]
                nodes[v] = (idx, t0, struct, x_v, a_v, kids)
        root_i = tree.order.index(tree.root)
        root = tree.nodes[tree.root]
        step = max(1, self.root_chunk) if self.root_chunk else max(1, n)
        logits: list[torch.Tensor] = []
        computed = 0
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            m = c1 - c0
            if c0:
                self._bound_memo()
            # rows[i] = the global row (or x index for embeddings, or -(x + 1) for a clean row) of order[i], per root
            rows = np.empty((len(tree.order), m), dtype=np.int64)
            for idx in embeds:
                rows[idx] = xs[in_ctx[idx], c0:c1]
            for phase in phases:
                pending: list[_Pending] = []
                for v in phase:
                    idx, t0, struct, x_v, a_v, kids = nodes[v]
                    sig = np.concatenate(
                        [x_v[:, None, c0:c1], a_v[:, None, c0:c1], rows[kids]], axis=1
                    )  # [T, 2 + E, m]
                    sig = np.ascontiguousarray(sig.transpose(0, 2, 1)).reshape(len(idx) * m, -1)
                    uniq, inv = _unique_rows(sig)
                    memo = data.memo.setdefault((v, struct), {}) if self.use_memo else {}
                    store = data.outputs.setdefault(v, _Store())
                    new_rows: list[int] = []
                    gid = np.empty(len(uniq), dtype=np.int64)
                    clean = self._clean_rows(t0, struct, uniq)
                    for u in range(len(uniq)):
                        if clean[u]:
                            gid[u] = -uniq[u, 0] - 1  # the clean activation of its input x: nothing to compute
                            continue
                        k = uniq[u].tobytes()
                        g = memo.get(k)
                        if g is None:
                            g = store.n + len(new_rows)
                            memo[k] = g
                            new_rows.append(u)
                        gid[u] = g
                    if new_rows:
                        g0 = store.reserve(
                            len(new_rows), (P, self.backend.shape.d_model), self._dtype(data), self.backend.device
                        )
                        pending.append(_Pending(v, struct, uniq[new_rows], t0, g0))
                    rows[idx] = gid[inv].reshape(len(idx), m)
                if pending:
                    computed += sum(len(p.sig) for p in pending)
                    self._compute_phase(pending, data, P)
            logits += self._out_logits(root, rows[root_i], data, data.pool[c0:c1])
        return logits, reused, computed, draws

    def _clean_rows(self, t: TNode, struct: tuple, uniq: np.ndarray) -> np.ndarray:
        """Rows (of a node whose every port reads every upstream sender, unmasked) whose children are
        all the clean rows of the row's input x: their port inputs are exactly the clean residual of x
        (the 'x' form of `_plan` with no term), so the node outputs its clean activation on x."""
        _, clean_cols = self._plan(t, struct)
        if clean_cols is None:
            return np.zeros(len(uniq), dtype=bool)
        x = uniq[:, 0]
        ok = np.ones(len(uniq), dtype=bool)
        for col, is_emb in clean_cols:
            ok &= uniq[:, col] == (x if is_emb else -x - 1)
        return ok

    def _struct(self, t: TNode, tree: Tree, i: int, positions: list) -> tuple:
        """What the rows of a node share: its edges and the position masks they carry (t = order[i])."""
        return tuple((e.edge, positions[c]) for e, c in zip(t.edges, tree.children[i])) + (("positions", t.positions),)

    def _intern(self, struct: tuple) -> tuple:
        """The one stored copy of an equal struct, with its hash cached in a small wrapper key."""
        got = self._structs.get(struct)
        if got is None:
            got = self._structs[struct] = _Struct(struct)
        return got

    def _abl_rows(self, tree: Tree, idx: np.ndarray, data: LayoutData, x_v: np.ndarray) -> np.ndarray:
        """[T, n]: the ablation row of each treeified node order[idx[r]] for each root. A copy that uses no
        other-inputs draw gets its own input example there: its port inputs do not depend on it."""
        kind = data.abl.kind
        if kind is AblationKind.PAIRED:
            if data.paired_index is None:
                data.paired_index = np.array([data.abl.paired[j] for j in range(len(data.pool))], dtype=np.int64)
            return data.paired_index[x_v]
        if kind in (AblationKind.MEAN, AblationKind.ZERO):
            return np.zeros_like(x_v)
        out = x_v.copy()
        for r, i in enumerate(idx):
            other = tree.nodes[tree.order[i]].other
            if other is not None:
                out[r] = self._other_rows(other, data)
        return out

    # ---- computing rows -------------------------------------------------------------------------
    def _mask(self, data: LayoutData, names: tuple[str, ...] | None) -> torch.Tensor | None:
        if names is None:
            return None
        if names in data.masks:
            return data.masks[names]
        m = torch.zeros(data.layout[0], dtype=self._dtype(data), device=self.backend.device)
        for nm in names:
            if nm not in data.positions:
                raise CircuitError(
                    [Diagnostic("E240", f"position `{nm}` is not a named position of dataset `{self.ds.name}`")]
                )
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

    def _sender_out(self, s: NodeId, data: LayoutData, idx: np.ndarray) -> torch.Tensor:
        """Outputs of sender s at rows `idx`: x indices for embeddings; for heads and MLPs, rows of its
        store, or -(x + 1) for the clean output of x (a row whose inputs were all clean)."""
        c = data.cache
        if s.kind is NodeKind.EMBED:
            e = c.embed[torch.from_numpy(idx)]
            return e if s.part is None else self._part(s, e)
        if s.kind is NodeKind.POS:
            if c.pos is None:
                raise CircuitError(
                    [Diagnostic("E241", "`pos` names the learned position embedding, which this model lacks")]
                )
            return c.pos[torch.from_numpy(idx)]
        clean = idx < 0
        if not clean.any():
            return data.outputs[s].data[torch.from_numpy(idx)]
        if clean.all():
            return self._clean_out(s, data, torch.from_numpy(-idx - 1))
        st = data.outputs.get(s)
        out = torch.empty(
            (len(idx), *self._clean_out(s, data, torch.zeros(1, dtype=torch.long)).shape[1:]),
            dtype=self._dtype(data),
            device=self.backend.device,
        )
        ci = np.nonzero(clean)[0]
        si = np.nonzero(~clean)[0]
        out[torch.from_numpy(ci)] = self._clean_out(s, data, torch.from_numpy(-idx[ci] - 1))
        assert st is not None and st.data is not None  # (rows not clean were computed and stored before)
        out[torch.from_numpy(si)] = st.data[torch.from_numpy(idx[si])]
        return out

    def _ablated(self, s: NodeId, data: LayoutData, a: torch.Tensor) -> torch.Tensor:
        if s.part is None:
            return _output(data.abl.cache, s, a)
        whole = _output(data.abl.cache, s.whole, a)
        if self.ablation.kind is AblationKind.ZERO:  # a zero-ablated part writes 0 (an SAE's parts of 0 are not 0)
            return torch.zeros_like(whole)
        return self._part(s, whole)  # resample / paired: the part of the drawn row; mean: subspace splits only

    def _base(self, v: NodeId, data: LayoutData, a: torch.Tensor) -> torch.Tensor:
        return _port_resid(data.abl.cache, v, a)

    # ---- port plans: what each port input is a function of ------------------------------------
    def _upstream(self, v: NodeId) -> tuple[NodeId, ...]:
        up = self._up.get(v)
        if up is None:
            from circuitdsl.engine.derive import upstream

            up = self._up[v] = upstream(v, self.backend.shape, tuple(self._split_of.values()))
        return up

    def _plan(self, t: TNode, struct: tuple) -> tuple[dict, tuple | None]:
        """For each port of t's node: (pkey, cols). The port input of a row is a function of pkey (the
        computation) and the row's signature columns `cols` only, so rows of different nodes (the heads of
        one layer) or ports with equal (pkey, values) share one port input.

        Two forms compute the same value (SEMANTICS.md section 3; they differ only in float rounding):
        * 'a' (ablated base): base(a) + sum over claimed edges of mask * (child - ablated_s(a));
        * 'x' (clean base), used when every edge into the port is unmasked and most of the port's
          senders are claimed (the full hypothesis M and M \\ K): clean_resid(x) + sum over unclaimed
          senders of (ablated_s(a) - clean_s(x)) + sum over claimed senders of (child - clean_s(x)),
          where a child that is the clean row of x contributes exactly 0 and is skipped.
        """
        key = (t.node, struct)
        got = self._plans.get(key)
        if got is not None:
            return got
        v = t.node
        ports = (Port.Q, Port.K, Port.V) if v.kind is NodeKind.HEAD else (Port.IN,)
        per: dict[Port, list] = {p: [] for p in ports}
        for col, (edge, sender_pos) in enumerate(struct[:-1]):
            mk: tuple
            if edge.port in (Port.K, Port.V) or v.kind is NodeKind.OUT:
                mk = (sender_pos, None)
            else:
                mk = (sender_pos, t.positions)
            per[edge.port].append((edge.sender, mk, 2 + col))
        up = self._upstream(v)
        base = (v.kind, v.layer)
        plan = {}
        full = True
        for p, es in per.items():
            claimed = {s: c for s, mk, c in es}
            unmasked = all(mk == (None, None) for _, mk, _ in es)
            if self.shortcuts and unmasked and 2 * len(claimed) > len(up) and set(claimed) <= set(up):
                desc = tuple((s, s in claimed) for s in up)
                cols = [0, 1] + [claimed[s] for s in up if s in claimed]
                plan[p] = (("x", base, desc), np.array(cols, dtype=np.int64))
                full = full and len(claimed) == len(up)
            else:
                plan[p] = (
                    ("a", base, tuple((s, mk) for s, mk, _ in es)),
                    np.array([1] + [c for _, _, c in es], dtype=np.int64),
                )
                full = False
        # a node whose every port reads every upstream sender, unmasked: rows whose children are all the
        # clean rows of their input x compute exactly the clean activation (no block run)
        clean_cols = None
        if full:
            clean_cols = tuple(
                (2 + col, edge.sender.kind in (NodeKind.EMBED, NodeKind.POS))
                for col, (edge, _) in enumerate(struct[:-1])
            )
        got = self._plans[key] = (plan, clean_cols)
        return got

    def _edge_mask_of(self, data: LayoutData, mk: tuple) -> torch.Tensor | None:
        sender_pos, receiver_pos = mk
        ms = self._mask(data, sender_pos)
        mt = self._mask(data, receiver_pos)
        if ms is None:
            return mt
        return ms if mt is None else ms * mt

    def _port_values(self, pkey: tuple, vals: np.ndarray, data: LayoutData) -> torch.Tensor:
        """Port inputs [m, P, D] of m rows of one port computation (see `_plan`)."""
        form, (kind, layer), desc = pkey
        v = NodeId(kind, layer) if kind is not NodeKind.HEAD else NodeId(kind, layer, 0)
        if form == "a":
            a = torch.from_numpy(vals[:, 0])
            out = self._base(v, data, a)  # a gather: a new tensor
            for j, (s, mk) in enumerate(desc):
                delta = self._sender_out(s, data, vals[:, 1 + j]) - self._ablated(s, data, a)
                m = self._edge_mask_of(data, mk)
                if m is not None:
                    delta = delta * m[None, :, None]
                out += delta
            return out
        x = vals[:, 0]
        xt = torch.from_numpy(x)
        a = torch.from_numpy(vals[:, 1])
        out = self._clean_resid(v, data, xt)
        j = 2
        for s, claimed in desc:
            if claimed:
                idx = vals[:, j]
                j += 1
                clean_idx = x if s.kind in (NodeKind.EMBED, NodeKind.POS) else -(x + 1)
                if np.array_equal(idx, clean_idx):
                    continue  # every row reads the clean output of its x here: the term is exactly 0
                out += self._sender_out(s, data, idx) - self._clean_out(s, data, xt)
            else:
                out += self._ablated(s, data, a) - self._clean_out(s, data, xt)
        return out

    def _clean_resid(self, v: NodeId, data: LayoutData, x: torch.Tensor) -> torch.Tensor:
        return _port_resid(data.cache, v, x)

    def _clean_out(self, s: NodeId, data: LayoutData, x: torch.Tensor) -> torch.Tensor:
        if s.part is None:
            return _output(data.cache, s, x)
        return self._part(s, _output(data.cache, s.whole, x))

    def _dtype(self, data: LayoutData) -> torch.dtype:
        return data.cache.resid_pre[0].dtype if data.cache.resid_pre else data.cache.embed.dtype

    def _compute_phase(self, pending: list[_Pending], data: LayoutData, P: int) -> None:
        """Compute the new rows of one phase (the heads of a layer, its MLP, or `out`).

        Port inputs are computed once per distinct (computation, signature values): the heads of a layer
        that read the same senders from the same rows share them. Head rows are packed: one block row
        carries a row of several heads at once (head H's output depends only on its own q input and its
        key/value group's k/v inputs); heads of one key/value group share a block row when their k and v
        inputs are the same, otherwise each takes its own."""
        b = self.backend
        shape = b.shape
        v0 = pending[0].node
        layer, kind = v0.layer, v0.kind
        bs = self.batch_size
        pid_of: dict[tuple, int] = {}
        pkeys: list[tuple] = []
        uid_of: dict[tuple, int] = {}
        uvals: list[np.ndarray] = []
        upid: list[int] = []
        ids = []  # per pending item: {port: uid per row}
        for pd in pending:
            plan, _ = self._plan(pd.t, pd.struct)
            per = {}
            for p, (pkey, cols) in plan.items():
                pid = pid_of.get(pkey)
                if pid is None:
                    pid = pid_of[pkey] = len(pkeys)
                    pkeys.append(pkey)
                sig_vals = np.ascontiguousarray(pd.sig[:, cols])
                u = np.empty(len(sig_vals), dtype=np.int64)
                for r in range(len(sig_vals)):
                    ukey = (pid, sig_vals[r].tobytes())
                    g = uid_of.get(ukey)
                    if g is None:
                        g = uid_of[ukey] = len(uvals)
                        uvals.append(sig_vals[r])
                        upid.append(pid)
                    u[r] = g
                per[p] = u
            ids.append(per)

        def values(need: list[int]) -> tuple[torch.Tensor, dict[int, int]]:
            """Port inputs of the uids in `need`, stacked; uid -> position."""
            by_pid: dict[int, list[int]] = {}
            for u in need:
                by_pid.setdefault(upid[u], []).append(u)
            parts: list[torch.Tensor] = []
            where: dict[int, int] = {}
            for pid, us in by_pid.items():
                parts.append(self._port_values(pkeys[pid], np.stack([uvals[u] for u in us]), data))
                for u in us:
                    where[u] = len(where)
            return (parts[0] if len(parts) == 1 else torch.cat(parts)), where

        D = shape.d_model
        if kind is not NodeKind.HEAD:
            # MLP or out: one block row (or final residual) per distinct input
            order: dict[int, int] = {}
            for per in ids:
                for uid in per[Port.IN]:
                    order.setdefault(int(uid), len(order))
            uniq = list(order)
            got: list[torch.Tensor] = []
            for c0 in range(0, len(uniq), bs):
                need = uniq[c0 : c0 + bs]
                vals, where = values(need)
                x = vals[torch.tensor([where[u] for u in need])]
                if kind is NodeKind.OUT:  # out computes nothing: its row is the final residual it reads
                    got.append(x)
                    continue
                assert layer is not None  # (an MLP)
                mlp = b.run_mlp(layer, x)
                self.block_runs += 1
                self.block_rows += len(need) * self._half_block()
                got.append(mlp)
                if self.progress:
                    self.progress("rows", len(need), 0)
            allv = got[0] if len(got) == 1 else torch.cat(got)
            for pd, per in zip(pending, ids):
                pos = torch.tensor([order[int(u)] for u in per[Port.IN]], dtype=torch.long)
                rows = allv[pos]
                data.outputs[pd.node].data[pd.g0 : pd.g0 + len(pd.sig)] = (
                    rows if pd.node.part is None else self._part(pd.node, rows)
                )
            return
        assert layer is not None  # (the heads of a layer)
        H, G = shape.n_heads, shape.n_kv_heads
        # pack: per key/value group, block rows keyed by (k input, v input); each carries at most one row
        # of each head of the group
        groups: dict[int, dict[tuple[int, int], dict[int, list]]] = {}
        for i, (pd, per) in enumerate(zip(pending, ids)):
            h = pd.node.head
            assert h is not None  # (a head, whole or a part)
            g = shape.kv_group(h)
            bucket = groups.setdefault(g, {})
            for r in range(len(pd.sig)):
                kv = (int(per[Port.K][r]), int(per[Port.V][r]))
                bucket.setdefault(kv, {}).setdefault(h, []).append((i, r, int(per[Port.Q][r])))
        lanes: dict[int, list] = {}
        for g, bucket in groups.items():
            lane = lanes[g] = []
            for (ku, vu), heads in bucket.items():
                for j in range(max(len(x) for x in heads.values())):
                    lane.append((ku, vu, [(h, x[j]) for h, x in heads.items() if j < len(x)]))
        R = max(len(x) for x in lanes.values())
        dtype = self._dtype(data)
        for c0 in range(0, R, bs):
            c1 = min(R, c0 + bs)
            r = c1 - c0
            need_uids: dict[int, None] = {}
            for lane in lanes.values():
                for ku, vu, hs in lane[c0:c1]:
                    need_uids[ku] = need_uids[vu] = None
                    for _, (_, _, qu) in hs:
                        need_uids[qu] = None
            vals, where = values(list(need_uids))
            dev = self.backend.device
            q = torch.zeros(r, P, H, D, dtype=dtype, device=dev)
            k = torch.zeros(r, P, G, D, dtype=dtype, device=dev)
            vv = torch.zeros(r, P, G, D, dtype=dtype, device=dev)
            qsel: dict[int, tuple[list[int], list[int]]] = {}
            reads = []
            for g, lane in lanes.items():
                part = lane[c0:c1]
                if not part:
                    continue
                k[: len(part), :, g] = vals[torch.tensor([where[x[0]] for x in part])]
                vv[: len(part), :, g] = vals[torch.tensor([where[x[1]] for x in part])]
                for j, (_, _, hs) in enumerate(part):
                    for h, (i, rr, qu) in hs:
                        sel = qsel.setdefault(h, ([], []))
                        sel[0].append(j)
                        sel[1].append(where[qu])
                        reads.append((h, j, i, rr))
            for h, (qrows, src) in qsel.items():
                q[torch.tensor(qrows), :, h] = vals[torch.tensor(src)]
            result, _ = b.run_layer(layer, q, k, vv, None)
            self.block_runs += 1
            self.block_rows += int(q.shape[0]) * self._half_block()
            # write each head's outputs to its store, grouped per pending item
            per_item: dict[int, tuple[list[int], list[int]]] = {}
            for _h, j, i, rr in reads:
                sel = per_item.setdefault(i, ([], []))
                sel[0].append(j)
                sel[1].append(rr)
            for i, (js, rrs) in per_item.items():
                pd = pending[i]
                rows = result[torch.tensor(js), :, pd.node.head]
                data.outputs[pd.node].data[pd.g0 + torch.tensor(rrs)] = (
                    rows if pd.node.part is None else self._part(pd.node, rows)
                )
            if self.progress:
                self.progress("rows", r, 0)

    def _out_logits(
        self, root: TNode, grows: np.ndarray, data: LayoutData, pool: tuple[int, ...]
    ) -> list[torch.Tensor]:
        """The out rows of the roots `pool` (dataset indices): final residuals -> logits at each root's
        scored positions."""
        resid = (
            self._sender_out(root.node, data, grows)
            if (grows < 0).any()
            else data.outputs[root.node].data[torch.from_numpy(grows)]
        )
        sel, sizes = [], []
        for j, i in enumerate(pool):
            sp = list(self.ds.examples[i].scored_positions)
            sel.append(resid[j, sp])
            sizes.append(len(sp))
        flat = torch.cat(sel)
        logits = []
        for s in range(0, flat.shape[0], max(1, self.batch_size)):
            logits.append(self.backend.unembed(flat[s : s + self.batch_size].unsqueeze(1))[:, 0])
        allv = torch.cat(logits)
        return list(torch.split(allv, sizes))


def _output(c: CleanCache, s: NodeId, idx: torch.Tensor) -> torch.Tensor:
    """Sender s's output on examples idx of cache c (the clean cache, or an ablation source); `out`'s
    output is the final residual."""
    if s.kind is NodeKind.EMBED:
        return c.embed[idx]
    if s.kind is NodeKind.POS:
        assert c.pos is not None  # (a model with learned positions)
        return c.pos[idx]
    if s.kind is NodeKind.OUT:
        return c.resid_final[idx]
    assert s.layer is not None  # (a head or an MLP)
    if s.kind is NodeKind.HEAD:
        return c.result[s.layer][idx, :, s.head]
    return c.mlp_out[s.layer][idx]


def _port_resid(c: CleanCache, v: NodeId, idx: torch.Tensor) -> torch.Tensor:
    """The residual node v's ports read, on examples idx of cache c."""
    if v.kind not in (NodeKind.HEAD, NodeKind.MLP):
        return c.resid_final[idx]
    assert v.layer is not None  # (a head or an MLP)
    if v.kind is NodeKind.HEAD:
        return c.resid_pre[v.layer][idx]
    return c.resid_mid[v.layer][idx]


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
        logits=None if parts[0].logits is None else cat(lambda p: p.logits),
    )
