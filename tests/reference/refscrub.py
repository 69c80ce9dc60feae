"""An independent reference scrub, written from docs/SEMANTICS.md (version 3 and its appendix) alone.

It shares no code with circuitdsl's engine: not its treeification, draws, port sums, backends, metrics
or scores. Its inputs are the compiled `circuitdsl.ir.Hypothesis` (claims, edges, ablation, seed), the
plain `Example`/`Dataset` records (tokens, named positions, fields, ids, scored positions) and a
transformer-lens model, which it runs only through the model's own hook points (compatibility-mode
names) with `model.run_with_hooks`, one whole forward pass at a time:

    hook_embed, hook_pos_embed            what `embed` and `pos` write
    blocks.L.attn.hook_result[:, :, H]    what head L.H writes
    blocks.L.hook_mlp_out                 what MLP L writes
    blocks.L.hook_resid_pre               the residual a head of layer L reads (every port)
    blocks.L.hook_q_input / k / v         a head's ports, set to the scrubbed port inputs
                                          (k and v per key/value group in GQA models)
    blocks.L.hook_resid_mid               an MLP's port (read for the clean residual, set to scrub)
    blocks.{last}.hook_resid_post         `out`'s port; the logits are the model's own output

The scrub is the recursion of SEMANTICS section 3, literally: `_Scrub.output(v, path, x_t)` is
scrub(t, x_t) of the treeified node t reached along `path`, for every root example of one layout at
once (the rows of a batch are independent forward passes; nothing is mixed between them). A port's
input is

    base + sum over claimed edges s -> t.port of mask * (scrub(s', x_s) - ablated(s))

where base is the residual the port reads on the ablation source (which is the bias plus every
upstream sender's contribution there) and ablated(s) is s's output on it, so unclaimed senders keep
their ablated contribution and each claimed edge swaps its sender's in, at the positions it covers.

The only sharing is of computations identical in content (SEMANTICS section 3, "Sharing"): a model
node whose whole subtree makes no keyed draw (every claimed edge below it has an identity-feature
sender, and, under `resample`, no node in it reads an unclaimed sender) computes a function of
(model node, input examples) only, so its copies are computed once per input vector. `share=False`
turns even that off.

Usage:

    from refscrub import reference_scrub
    logits = reference_scrub(backend.model, datasets, "D", hypothesis)   # ablation, seed: the hypothesis'
    # logits[i]: [scored positions of example i, vocabulary], in dataset order
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from circuitdsl.datasets.core import Dataset, Example
from circuitdsl.ir import Ablation, AblationKind, Feature, FeatureKind, Hypothesis, ModelShape, NodeId, NodeKind, Port

__all__ = [
    "reference_scrub",
    "ReferenceScrub",
    "ReferenceError",
    "draw_hash",
    "draw_from",
    "upstream",
    "claimed_edges_into",
    "count_treeified",
    "feature_value",
    "layout_of",
    "scored_positions",
    "model_logits",
    "metric",
    "recovered",
    "OUT",
    "EMBED",
    "POS",
]

OUT = NodeId(NodeKind.OUT)
EMBED = NodeId(NodeKind.EMBED)
POS = NodeId(NodeKind.POS)

CLASS = "class"
OTHER = "other"


class ReferenceError(Exception):
    """A hypothesis, dataset or model the reference cannot scrub (the message says why)."""


# ---- draws (appendix: Draws) --------------------------------------------------------------------------
def draw_hash(seed: int, example_id: str, path: str, kind: str) -> int:
    """H(seed, id, path, kind): the first 8 bytes of blake2b of the joined key, big-endian."""
    key = f"{seed}\x1f{example_id}\x1f{path}\x1f{kind}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def draw_from(pool: Sequence[Any], seed: int, example_id: str, path: str, kind: str) -> Any:
    """pool[H(...) % len(pool)]; the pool must already be ordered by example id."""
    if not pool:
        raise ReferenceError(f"empty pool for the {kind} draw at {path}")
    return pool[draw_hash(seed, example_id, path, kind) % len(pool)]


# ---- examples ---------------------------------------------------------------------------------------
def layout_of(e: Example) -> tuple:
    """Token length and the indices of every named position (SEMANTICS section 1, Positions)."""
    return (len(e.tokens), tuple(sorted((name, tuple(idx)) for name, idx in e.positions)))


def scored_positions(e: Example) -> tuple[int, ...]:
    """The example's scored positions; none given means the last position."""
    return tuple(e.scored) if e.scored else (len(e.tokens) - 1,)


def _positions(e: Example) -> dict[str, tuple[int, ...]]:
    return {name: tuple(idx) for name, idx in e.positions}


def _canonical(v: Any) -> Any:
    """Feature values compare exactly, floats after rounding to 1e-9 (SEMANTICS section 3)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return round(float(v), 9)
    if isinstance(v, (list, tuple)):
        return tuple(_canonical(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _canonical(x)) for k, x in v.items()))
    if hasattr(v, "tolist") and callable(v.tolist):  # numpy scalars and arrays
        return _canonical(v.tolist())
    return v


_FUNCTIONS: dict[tuple, Callable[[Example], Any]] = {}


def _load_file(path: Path):
    name = "_refscrub_feature_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _function(args: tuple[str, ...], base_dir: str | None) -> Callable[[Example], Any]:
    """The function of a `module.path:function` feature: from the file the compiler recorded (`args[1]`,
    an absolute path; "" means an importable module), else a file `module/path.py` beside the
    hypothesis, else the module imported by name."""
    key = (tuple(args), base_dir)
    if key in _FUNCTIONS:
        return _FUNCTIONS[key]
    mod_name, _, fn_name = args[0].partition(":")
    module = None
    if len(args) > 1 and args[1]:
        module = _load_file(Path(args[1]))
    elif len(args) < 2 and base_dir:
        parts = mod_name.split(".")
        for cand in (Path(base_dir, *parts[:-1], parts[-1] + ".py"), Path(base_dir, *parts, "__init__.py")):
            if cand.is_file():
                module = _load_file(cand)
                break
    if module is None:
        module = importlib.import_module(mod_name)
    fn = getattr(module, fn_name)
    _FUNCTIONS[key] = fn
    return fn


def feature_value(feature: Feature, e: Example, *, base_dir: str | None = None) -> Any:
    """The value of a (non-identity) feature on an example; identity inside a tuple is the example id."""
    k = feature.kind
    if k is FeatureKind.IDENTITY:
        return ("\x00the example", e.id)
    if k is FeatureKind.CONSTANT:
        return ()
    if k is FeatureKind.FIELD:
        fields = dict(e.fields)
        if feature.args[0] not in fields:
            raise ReferenceError(f"example {e.id} has no field {feature.args[0]!r}")
        return _canonical(fields[feature.args[0]])
    if k is FeatureKind.TOKEN_AT:
        pos = _positions(e)
        if feature.args[0] not in pos:
            raise ReferenceError(f"example {e.id} has no named position {feature.args[0]!r}")
        idx = pos[feature.args[0]]
        return e.tokens[idx[0]] if len(idx) == 1 else tuple(e.tokens[i] for i in idx)
    if k is FeatureKind.FUNCTION:
        return _canonical(_function(feature.args, base_dir)(e))
    if k is FeatureKind.TUPLE:
        return tuple(feature_value(p, e, base_dir=base_dir) for p in feature.parts)
    raise ReferenceError(f"unknown feature kind {k}")


# ---- the model graph (SEMANTICS section 1) -----------------------------------------------------------
def _nodes(shape: ModelShape) -> list[NodeId]:
    out = [EMBED] + ([POS] if shape.pos_embed == "learned" else [])
    for L in range(shape.n_layers):
        out += [NodeId(NodeKind.HEAD, L, H) for H in range(shape.n_heads)]
        if shape.has_mlp:
            out.append(NodeId(NodeKind.MLP, L))
    return out


def upstream(v: NodeId, shape: ModelShape) -> list[NodeId]:
    """The senders whose outputs sum into v's ports: a head of layer L reads the embeddings and every
    node of layers < L; MLP L also reads the heads of layer L in sequential blocks (only layers < L in
    parallel ones); `out` reads everything."""
    senders = []
    for s in _nodes(shape):
        if v.kind is NodeKind.OUT or s.kind in (NodeKind.EMBED, NodeKind.POS):
            senders.append(s)
        elif v.kind is NodeKind.HEAD:
            if s.layer < v.layer:
                senders.append(s)
        elif v.kind is NodeKind.MLP:
            if s.layer < v.layer or (s.layer == v.layer and s.kind is NodeKind.HEAD and not shape.parallel_attn_mlp):
                senders.append(s)
    return senders


def _ports(v: NodeId) -> tuple[Port, ...]:
    return (Port.Q, Port.K, Port.V) if v.kind is NodeKind.HEAD else (Port.IN,)


def claimed_edges_into(h: Hypothesis, v: NodeId, shape: ModelShape) -> list[tuple[NodeId, Port]]:
    """(sender, port) of every claimed edge into v, with GQA's k/v edges of any query head of v's
    key/value group added to every claimed query head of the group (appendix: Paths). Sorted by
    sender (model order), then port."""
    claimed = {c.node for c in h.claims}
    got: set[tuple[NodeId, Port]] = set()
    size = shape.n_heads // shape.n_kv_heads
    for e in h.edges:
        if e.receiver == v:
            got.add((e.sender, e.port))
        elif (
            shape.n_kv_heads < shape.n_heads
            and v.kind is NodeKind.HEAD
            and e.receiver.kind is NodeKind.HEAD
            and e.port in (Port.K, Port.V)
            and e.receiver.layer == v.layer
            and e.receiver.head // size == v.head // size
            and v in claimed
        ):
            got.add((e.sender, e.port))
    order = {Port.Q: 0, Port.K: 1, Port.V: 2, Port.IN: 3}
    return sorted(got, key=lambda sp: (sp[0].sort_key(), order[sp[1]]))


def count_treeified(h: Hypothesis, shape: ModelShape | None = None) -> int:
    """The number of treeified nodes (claimed paths from `out`, `out` included), before any sharing."""
    shape = shape or h.model.shape
    memo: dict[NodeId, int] = {}

    def count(v: NodeId) -> int:
        if v not in memo:
            memo[v] = 1 + sum(count(s) for s, _ in claimed_edges_into(h, v, shape))
        return memo[v]

    return count(OUT)


# ---- running the model through its hook points ---------------------------------------------------------
def _hook_sender(s: NodeId) -> str:
    if s.kind is NodeKind.EMBED:
        return "hook_embed"
    if s.kind is NodeKind.POS:
        return "hook_pos_embed"
    if s.kind is NodeKind.HEAD:
        return f"blocks.{s.layer}.attn.hook_result"
    return f"blocks.{s.layer}.hook_mlp_out"


def _hook_resid(v: NodeId, shape: ModelShape) -> str:
    if v.kind is NodeKind.HEAD:
        return f"blocks.{v.layer}.hook_resid_pre"
    if v.kind is NodeKind.MLP:
        return f"blocks.{v.layer}.hook_resid_mid"
    return f"blocks.{shape.n_layers - 1}.hook_resid_post"


def _select(s: NodeId, t: torch.Tensor) -> torch.Tensor:
    return t[:, :, s.head] if s.kind is NodeKind.HEAD else t


def _device(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _tokens(model: Any, examples: Sequence[Example]) -> torch.Tensor:
    return torch.tensor([list(e.tokens) for e in examples], dtype=torch.long, device=_device(model))


def _clean(model: Any, examples: Sequence[Example], names: Sequence[str]) -> dict[str, torch.Tensor]:
    """One unmodified forward pass; the named hooks' values."""
    got: dict[str, torch.Tensor] = {}

    def keep(name):
        def fn(x, hook):
            got[name] = x.detach().clone()

        return fn

    with torch.no_grad():
        model.run_with_hooks(_tokens(model, examples), fwd_hooks=[(n, keep(n)) for n in dict.fromkeys(names)])
    missing = [n for n in names if n not in got]
    if missing:
        raise ReferenceError(f"the model did not run hooks {missing}")
    return got


def model_logits(model: Any, dataset: Dataset) -> list[torch.Tensor]:
    """The unmodified model's logits at each example's scored positions, one forward pass per example."""
    out = []
    with torch.no_grad():
        for e in dataset.examples:
            out.append(model(_tokens(model, [e]))[0, list(scored_positions(e))].detach())
    return out


# ---- the scrub ---------------------------------------------------------------------------------------
@dataclass
class _Layout:
    """Root examples of one layout (indices into D, ordered by id), their ids, the layout's named positions."""

    layout: tuple
    roots: list[int]
    ids: list[str]
    positions: dict[str, tuple[int, ...]]
    length: int


@dataclass
class ReferenceScrub:
    """Scrubs hypotheses of one model on one dataset (SEMANTICS section 3). Counters (class draws made,
    classes holding only the parent's input, forward passes) accumulate over calls."""

    model: Any
    datasets: Mapping[str, Dataset]
    main: str
    shape: ModelShape | None = None
    share: bool = True
    chunk: int | None = None
    """Root examples scrubbed per batch (None: a whole layout). Rows never interact, so this changes nothing."""
    shared_draws: bool | None = None
    """The opt-in shared-draw approximation (appendix); None: as the hypothesis' `treeify.shared_draws` says."""
    trace: list | None = None
    """When a list: every draw is appended as (kind, path, ids drawn per root, ids of the roots)."""
    forward_passes: int = 0
    class_draws: int = 0
    reused: int = 0

    def scrub(self, h: Hypothesis, *, ablation: Ablation | None = None, seed: int | None = None) -> list[torch.Tensor]:
        """Scrubbed logits at each example's scored positions, in dataset order ([S_i, V] each)."""
        shape = self.shape or h.model.shape
        ablation = h.ablation if ablation is None else ablation
        seed = h.seed if seed is None else int(seed)
        D = self.datasets[self.main]
        if shape.parallel_attn_mlp:
            raise ReferenceError("parallel attention/MLP blocks: the reference reads the MLP port at hook_resid_mid")
        n_blocks = len(getattr(self.model, "blocks", ()))
        if n_blocks and n_blocks != shape.n_layers:
            raise ReferenceError(f"the model has {n_blocks} blocks, the hypothesis' shape says {shape.n_layers}")
        other = D
        if ablation.kind in (AblationKind.RESAMPLE_FROM, AblationKind.PAIRED) or (
            ablation.kind is AblationKind.MEAN and ablation.dataset
        ):
            if not ablation.dataset or ablation.dataset not in self.datasets:
                raise ReferenceError(f"ablation `{ablation}` names no dataset given to the reference")
            other = self.datasets[ablation.dataset]
        groups: dict[tuple, list[int]] = {}
        for i, e in enumerate(D.examples):
            groups.setdefault(layout_of(e), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(D)
        for layout, members in groups.items():
            roots = sorted(members, key=lambda i: D.examples[i].id)
            step = self.chunk or len(roots)
            for a in range(0, len(roots), step):
                part = roots[a : a + step]
                first = D.examples[part[0]]
                lay = _Layout(layout, part, [D.examples[i].id for i in part], _positions(first), len(first.tokens))
                run = _Scrub(self, h, shape, ablation, seed, D, other, lay)
                logits = run.root()
                for j, i in enumerate(part):
                    out[i] = logits[j, list(scored_positions(D.examples[i]))].detach()
        return out  # type: ignore[return-value]


class _Scrub:
    """One layout's roots (a batch) under one hypothesis, ablation and seed."""

    def __init__(
        self,
        owner: ReferenceScrub,
        h: Hypothesis,
        shape: ModelShape,
        ablation: Ablation,
        seed: int,
        D: Dataset,
        other: Dataset,
        lay: _Layout,
    ):
        self.o = owner
        self.model = owner.model
        self.h = h
        self.shape = shape
        self.ablation = ablation
        self.seed = seed
        self.D = D
        self.other = other
        self.lay = lay
        self.claims = {c.node: c for c in h.claims}
        self.base_dir = str(Path(h.source_path).resolve().parent) if h.source_path else None
        self.memo: dict[tuple, torch.Tensor] = {}
        self._edges: dict[NodeId, list[tuple[NodeId, Port]]] = {}
        self._indep: dict[NodeId, bool] = {}
        self._uses: dict[NodeId, bool] = {}
        # every example of D with this layout, ordered by id: the pool of class draws and of x_r
        self.pool = sorted(
            (i for i, e in enumerate(D.examples) if layout_of(e) == lay.layout), key=lambda i: D.examples[i].id
        )
        self.other_pool = sorted(
            (i for i, e in enumerate(other.examples) if layout_of(e) == lay.layout), key=lambda i: other.examples[i].id
        )
        if ablation.kind in (AblationKind.RESAMPLE_FROM, AblationKind.MEAN) and not self.other_pool:
            raise ReferenceError(f"dataset {other.name} has no example with the layout of length {lay.length}")
        self._classes: dict[Feature, dict[Any, list[int]]] = {}
        self._mean: dict[str, torch.Tensor] | None = None
        rule = getattr(h, "treeify", None)
        self.shared = bool(getattr(rule, "shared_draws", False)) if owner.shared_draws is None else owner.shared_draws

    # -- claims ----------------------------------------------------------------------------------------
    def feature(self, v: NodeId) -> Feature:
        c = self.claims.get(v)
        if c is None:
            raise ReferenceError(f"{v.name} has claimed edges but no claim")
        return c.feature

    def claimed_positions(self, v: NodeId) -> tuple[str, ...] | None:
        if v.kind is NodeKind.OUT:
            return None
        c = self.claims.get(v)
        return None if c is None else c.positions

    def edges(self, v: NodeId) -> list[tuple[NodeId, Port]]:
        if v not in self._edges:
            es = claimed_edges_into(self.h, v, self.shape)
            up = set(upstream(v, self.shape))
            for s, p in es:
                if s not in up or p not in _ports(v):
                    raise ReferenceError(f"claimed edge {s.name} -> {v.name}.{p.value}: not a port of the model graph")
            self._edges[v] = es
        return self._edges[v]

    # -- position masks (appendix: Position masks) ------------------------------------------------------------
    def mask(self, names: tuple[str, ...] | None) -> torch.Tensor:
        m = torch.zeros(self.lay.length)
        if names is None:
            m[:] = 1
            return m
        for nm in names:
            if nm not in self.lay.positions:
                raise ReferenceError(f"no named position {nm!r} in this layout")
            m[list(self.lay.positions[nm])] = 1
        return m

    def edge_mask(self, s: NodeId, t: NodeId, p: Port) -> torch.Tensor:
        m = self.mask(self.claimed_positions(s))
        if p in (Port.Q, Port.IN) and t.kind is not NodeKind.OUT:
            m = m * self.mask(self.claimed_positions(t))
        return m

    def uses_other(self, v: NodeId) -> bool:
        """Some port of v has an upstream sender not claimed into it, or a claimed edge whose mask does not
        cover every position (appendix: a node *uses* x_r(t))."""
        if v not in self._uses:
            es = self.edges(v)
            self._uses[v] = False
            for p in _ports(v):
                into = [s for s, q in es if q is p]
                if set(upstream(v, self.shape)) - set(into) or any(
                    bool((self.edge_mask(s, v, p) == 0).any()) for s in into
                ):
                    self._uses[v] = True
        return self._uses[v]

    def independent(self, v: NodeId) -> bool:
        """No keyed draw anywhere in v's subtree: its copies are identical in content given their input."""
        if v not in self._indep:
            if v.kind in (NodeKind.EMBED, NodeKind.POS):
                ok = True
            else:
                ok = not (
                    self.ablation.kind in (AblationKind.RESAMPLE, AblationKind.RESAMPLE_FROM) and self.uses_other(v)
                )
                ok = ok and all(
                    self.feature(s).kind is FeatureKind.IDENTITY and self.independent(s) for s, _ in self.edges(v)
                )
            self._indep[v] = ok
        return self._indep[v]

    # -- draws -------------------------------------------------------------------------------------------
    def cls(self, feature: Feature, i: int) -> list[int]:
        """The class of D's example i under the feature, within i's layout, ordered by id."""
        table = self._classes.get(feature)
        if table is None:
            table = self._classes[feature] = {}
            for j in self.pool:
                v = feature_value(feature, self.D.examples[j], base_dir=self.base_dir)
                try:
                    hash(v)
                except TypeError:
                    v = repr(v)
                table.setdefault(v, []).append(j)
        v = feature_value(feature, self.D.examples[i], base_dir=self.base_dir)
        try:
            hash(v)
        except TypeError:
            v = repr(v)
        return table[v]

    def class_draw(self, s: NodeId, path: str, x_t: list[int]) -> list[int]:
        """x_s for each root: the parent's input if s's feature is `input`, else a draw (kind `class`,
        keyed by the child's path and the root's id) from the class of the parent's input."""
        f = self.feature(s)
        if f.kind is FeatureKind.IDENTITY:
            return list(x_t)
        out = []
        for j, x in enumerate(x_t):
            c = self.cls(f, x)
            self.o.class_draws += 1
            self.o.reused += len(c) == 1
            out.append(draw_from(c, self.seed, self.lay.ids[j], path, CLASS))
        self._log(CLASS, path, out)
        return out

    def _log(self, kind: str, path: str, drawn: list[int]) -> None:
        if self.o.trace is not None:
            ds = self.other if kind == OTHER and self.ablation.kind is AblationKind.RESAMPLE_FROM else self.D
            self.o.trace.append((kind, path, tuple(ds.examples[i].id for i in drawn), tuple(self.lay.ids)))

    def other_draw(self, path: str) -> list[int]:
        """x_r(t) for each root: kind `other`, keyed by t's path, from the examples of the root's layout
        (in D, or in the `resample from` dataset)."""
        pool = self.other_pool if self.ablation.kind is AblationKind.RESAMPLE_FROM else self.pool
        out = [draw_from(pool, self.seed, rid, path, OTHER) for rid in self.lay.ids]
        self._log(OTHER, path, out)
        return out

    # -- clean activations ---------------------------------------------------------------------------------
    def clean(self, ds: Dataset, idx: list[int], names: list[str]) -> dict[str, torch.Tensor]:
        self.o.forward_passes += 1
        return _clean(self.model, [ds.examples[i] for i in idx], names)

    def mean(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Per-position means over the examples of this layout in D (or the `mean over` dataset)."""
        if self._mean is None:
            ds = self.other if self.ablation.dataset else self.D
            pool = self.other_pool if self.ablation.dataset else self.pool
            every = [_hook_sender(s) for s in _nodes(self.shape)] + [
                _hook_resid(v, self.shape)
                for v in _nodes(self.shape) + [OUT]
                if v.kind not in (NodeKind.EMBED, NodeKind.POS)
            ]
            acts = self.clean(ds, pool, every)
            self._mean = {k: t.double().mean(0, keepdim=True).to(t.dtype) for k, t in acts.items()}
        n = len(self.lay.roots)
        return {k: self._mean[k].expand(n, *self._mean[k].shape[1:]) for k in names}

    # -- scrub(t, x) ---------------------------------------------------------------------------------------
    def root(self) -> torch.Tensor:
        """Logits [roots, P, V] of scrub(out, x): `out` sees x itself."""
        return self.output(OUT, "out", list(self.lay.roots), ())

    def output(self, v: NodeId, path: str, x_t: list[int], ctx: tuple[str, ...]) -> torch.Tensor:
        """scrub(t, x_t) for the treeified node t of model node v reached along `path` (the key of its
        draws): v's output [roots, P, ...] (logits for `out`). `ctx` (shared-draw rule only): the names of
        t's non-identity ancestors."""
        key = None
        if self.shared and v.kind is not NodeKind.OUT:
            key = ("shared", v, path)  # copies with one shared path are one treeified node
        elif self.o.share and v.kind is not NodeKind.OUT and self.independent(v):
            key = (v, tuple(x_t))
        if key is not None and key in self.memo:
            return self.memo[key]
        got = self._compute(v, path, x_t, ctx)
        if key is not None:
            self.memo[key] = got
        return got

    def child_path(self, v: NodeId, path: str, ctx: tuple[str, ...], s: NodeId, p: Port) -> tuple[str, tuple[str, ...]]:
        """The path keying the draws of the child reached along the claimed edge s -> v.p, and its ctx."""
        if not self.shared:
            return f"{path}/{s.name}>{p.value}", ()
        if v.kind is not NodeKind.OUT and self.feature(v).kind is not FeatureKind.IDENTITY:
            ctx = ctx + (v.name,)
        return "/".join(ctx + (s.name,)), ctx

    def _compute(self, v: NodeId, path: str, x_t: list[int], ctx: tuple[str, ...]) -> torch.Tensor:
        if v.kind in (NodeKind.EMBED, NodeKind.POS):
            if v.kind is NodeKind.POS and self.shape.pos_embed != "learned":
                raise ReferenceError("`pos` on a model without a learned position embedding")
            return self.clean(self.D, x_t, [_hook_sender(v)])[_hook_sender(v)]
        senders = upstream(v, self.shape)
        names = [_hook_resid(v, self.shape)] + [_hook_sender(s) for s in senders]
        kind = self.ablation.kind
        # the ablation source: base is the residual every port reads there, abl[s] each sender's output
        if kind in (AblationKind.RESAMPLE, AblationKind.RESAMPLE_FROM):
            if self.uses_other(v):
                src = self.clean(
                    self.other if kind is AblationKind.RESAMPLE_FROM else self.D, self.other_draw(path), names
                )
            else:  # every sender of every port is claimed at every position: only the biases are read
                src = self.clean(self.D, x_t, names)
            base = src[names[0]]
            abl = {s: _select(s, src[_hook_sender(s)]) for s in senders}
        elif kind is AblationKind.PAIRED:
            rows = list(x_t)  # the row of the paired dataset with the index of t's own input in D
            for i in rows:
                if i >= len(self.other) or layout_of(self.other.examples[i]) != self.lay.layout:
                    raise ReferenceError(f"row {i} of {self.other.name} is missing or has another layout")
            src = self.clean(self.other, rows, names)
            base = src[names[0]]
            abl = {s: _select(s, src[_hook_sender(s)]) for s in senders}
        elif kind is AblationKind.MEAN:
            src = self.mean(names)
            base = src[names[0]]
            abl = {s: _select(s, src[_hook_sender(s)]) for s in senders}
        elif kind is AblationKind.ZERO:
            src = self.clean(self.D, x_t, names)
            base = src[names[0]].clone()
            for s in senders:  # the residual minus every sender: the biases
                base = base - _select(s, src[_hook_sender(s)])
            abl = {s: torch.zeros_like(base) for s in senders}
        else:
            raise ReferenceError(f"unknown ablation {kind}")
        ports = {p: base.clone() for p in _ports(v)}
        for s, p in self.edges(v):
            child_path, child_ctx = self.child_path(v, path, ctx, s, p)
            x_s = self.class_draw(s, child_path, x_t)
            child = self.output(s, child_path, x_s, child_ctx)
            m = self.edge_mask(s, v, p).to(base.dtype)[None, :, None]
            ports[p] = ports[p] + m * (child - abl[s])
        return self._run(v, ports, x_t)

    def _run(self, v: NodeId, ports: dict[Port, torch.Tensor], x_t: list[int]) -> torch.Tensor:
        """One forward pass with v's ports set; v's output (logits for `out`)."""
        got: dict[str, torch.Tensor] = {}
        tokens = _tokens(self.model, [self.D.examples[i] for i in x_t])  # any tokens of the layout's length
        self.o.forward_passes += 1
        if v.kind is NodeKind.OUT:
            final = ports[Port.IN]
            with torch.no_grad():
                logits = self.model.run_with_hooks(
                    tokens, fwd_hooks=[(_hook_resid(OUT, self.shape), lambda x, hook: final.to(x.dtype))]
                )
            return logits.detach()
        L = v.layer
        if v.kind is NodeKind.HEAD:
            H = v.head
            G = H // (self.shape.n_heads // self.shape.n_kv_heads)

            def put(value, index):
                def fn(x, hook):
                    y = x.clone()
                    y[:, :, index] = value.to(x.dtype)
                    return y

                return fn

            def grab(x, hook):
                got["y"] = x[:, :, H].detach().clone()

            hooks = [
                (f"blocks.{L}.hook_q_input", put(ports[Port.Q], H)),
                (f"blocks.{L}.hook_k_input", put(ports[Port.K], G)),
                (f"blocks.{L}.hook_v_input", put(ports[Port.V], G)),
                (f"blocks.{L}.attn.hook_result", grab),
            ]
        else:
            value = ports[Port.IN]

            def grab(x, hook):
                got["y"] = x.detach().clone()

            hooks = [
                (f"blocks.{L}.hook_resid_mid", lambda x, hook: value.to(x.dtype)),
                (f"blocks.{L}.hook_mlp_out", grab),
            ]
        with torch.no_grad():
            self.model.run_with_hooks(tokens, fwd_hooks=hooks)
        if "y" not in got:
            raise ReferenceError(f"the model did not run the hooks of {v.name}")
        return got["y"]


def reference_scrub(
    model: Any,
    datasets: Mapping[str, Dataset],
    main: str,
    hypothesis: Hypothesis,
    *,
    ablation: Ablation | None = None,
    seed: int | None = None,
    shape: ModelShape | None = None,
    share: bool = True,
    chunk: int | None = None,
    shared_draws: bool | None = None,
) -> list[torch.Tensor]:
    """Scrubbed logits at each example's scored positions, per example of `datasets[main]` in dataset
    order. `model` is a transformer-lens model (a HookedRootModule or a TransformerBridge in
    compatibility mode, with attention results and split q/k/v inputs); the ablation and seed default
    to the hypothesis', the model graph to `hypothesis.model.shape`."""
    return ReferenceScrub(
        model, datasets, main, shape=shape, share=share, chunk=chunk, shared_draws=shared_draws
    ).scrub(hypothesis, ablation=ablation, seed=seed)


# ---- metrics and recovered, for measurements (SEMANTICS section 4) -----------------------------------------
def metric(kind: str, logits: Sequence[torch.Tensor], examples: Sequence[Example]) -> list[float]:
    """Per-example `loss`, `logprob` or `logit_diff` (mean over scored positions), in float64."""
    out = []
    for lg, e in zip(logits, examples, strict=True):
        lg = lg.double()
        lp = torch.log_softmax(lg, -1)
        vals = []
        for r, a in enumerate(e.answers):
            if kind == "loss":
                vals.append(-float(lp[r, a]))
            elif kind == "logprob":
                vals.append(float(lp[r, a]))
            elif kind == "logit_diff":
                vals.append(float(lg[r, a] - lg[r, e.wrongs[r]]))
            else:
                raise ReferenceError(f"metric {kind!r}: the reference computes loss, logprob and logit_diff")
        out.append(sum(vals) / len(vals))
    return out


def recovered(f_model: float, f_scrubbed: float, f_baseline: float) -> float:
    """(F(scrubbed) - F(baseline)) / (F(model) - F(baseline))."""
    return (f_scrubbed - f_baseline) / (f_model - f_baseline)
