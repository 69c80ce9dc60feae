"""Edge attribution scores: EAP, EAP-IG and exact edge patching, through `ModelBackend` only.

**What a score is.** For an edge e = s -> r.port, `score(e)` estimates F(e ablated) - F(model): the
change of the file's metric F (the mean of m over the dataset, SEMANTICS.md section 4, raw units) when
the port receives the sender's *ablated* output instead of its clean one, everything else clean.
Exact edge patching computes exactly that (`exact_scores`): the port's input becomes
clean_resid - clean_s + ablated_s and everything downstream is recomputed, which is also F(M \\ {e})
of the engine under `paired` (the full hypothesis less one edge). `fraction(e)` = score / (F(baseline) -
F(model)): 1 means the edge alone moves F all the way to the baseline (every sender ablated).

* **EAP** (Syed et al. 2023): score(e) = sum over examples, positions and d_model of
  (ablated_s - clean_s) . dF/d(port input of r), the gradient taken on the clean run: two forward
  passes (clean with gradients, ablated) and one backward pass score every edge at once.
* **EAP-IG** (Hanna et al. 2024; "EAP-IG-inputs" of their code and of MIB): the same product with the
  gradient averaged over m points on the straight line between the ablated and the clean *inputs*:
  the outputs of `embed` and `pos` are set to ablated + a (clean - ablated) for a = k/m, k = 0..m-1
  (a left Riemann sum, as their code), every later activation computed by the model from there.
  m forward and m backward passes plus the two capturing forward passes. The activation differences
  are those of the clean and ablated runs, as in EAP.

**Ablations.** `paired D2`: ablated_s is s's output on the paired row of D2; `mean [over D2]`: its
mean per layout and position over D (or D2); `zero`: 0. `resample` and `resample from D2` are scored
as `mean` (over D, or D2): the expectation of EAP's linear score over the random draw is exactly the
score with the mean (the gradient does not depend on the draw). For EAP-IG and exact patching this is
the mean ablation itself, not the expectation over draws; the result says so in a note.

**Positions.** With named positions, a sender is ablated only there (its outputs elsewhere stay
clean), for every method; per-position scores break a score down by the position of the sender's
output that carries it (for a q edge also the receiver's position; for k/v edges the key position).

**Metrics.** Every metric of SEMANTICS.md section 4 but `accuracy` (a step function: no gradient;
refused with a hint to use `margin`, which is positive exactly when accuracy is 1). `kl` has zero
gradient at the clean run (it is minimal there), so EAP refuses it; EAP-IG's interpolated points
have a gradient.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from circuitdsl.attribute.graph import AttrGraph, Slot
from circuitdsl.backends.protocol import Site, SiteKey
from circuitdsl.datasets.core import Dataset, Example
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.engine import metrics
from circuitdsl.ir import AblationKind, EdgeId, Hypothesis, MetricKind, NodeId, Port

__all__ = [
    "METHODS",
    "Setup",
    "Attribution",
    "prepare",
    "attribute",
    "exact_scores",
    "metric_values",
    "AttributionError",
]

METHODS = ("eap", "eap-ig", "exact")


class AttributionError(CircuitError):
    """A request attribution cannot serve (a metric without a gradient, unknown positions...)."""


def _fail(code: str, msg: str, hint: str = "", span=None) -> AttributionError:
    return AttributionError([Diagnostic(code, msg, span, hint=hint)])


def _metric_span(h: Hypothesis):
    """Where the file's `metric` statement is (the IR keeps no span for it); None if it has none."""
    import re

    from circuitdsl.ir import Span

    for i, line in enumerate((h.source_text or "").splitlines(), 1):
        m = re.match(r"\s*metric\b", line)
        if m:
            return Span(h.source_path or "<string>", i, m.end() - 6 + 1, i, len(line.rstrip()) + 1)
    return None


# ---- set-up ---------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    rows: tuple[int, ...]
    """Indices into D of this layout's examples (dataset order)."""
    paired: tuple[int, ...] | None
    """paired: the row of D2 paired with each (the same index)."""
    mask: torch.Tensor | None
    """[P] 1.0 at the named positions, 0 elsewhere; None: every position."""
    names: dict[str, tuple[int, ...]]
    mean: dict | None = None
    """mean ablation: {'senders': [P, S, D], 'final': [P, D]} averaged over the pool (float64 sums)."""


@dataclass
class Setup:
    """Everything a method needs, from a compiled hypothesis (its model, datasets, metric, ablation)."""

    h: Hypothesis
    backend: Any
    graph: AttrGraph
    ds: Dataset
    kind: MetricKind
    mode: str
    """'paired', 'mean' or 'zero' (what ablated_s is)."""
    other: Dataset | None
    layouts: list[_Layout]
    positions: tuple[str, ...] | None
    batch_size: int
    notes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: {"forward": 0, "backward": 0, "block_rows": 0})
    """Rows through a whole forward pass, rows through a backward pass, rows through one block (run_from)."""
    prepass_rows: int = 0
    """Rows of the mean ablation's forward pass over its pool."""

    @property
    def n(self) -> int:
        return len(self.ds)


def prepare(
    h: Hypothesis,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    metric: MetricKind | None = None,
    positions: Sequence[str] | None = None,
    method: str = "eap",
) -> Setup:
    """Load and verify the model (the model contract), build and validate the datasets, check the
    metric; raises CircuitError with diagnostics (E4xx/E5xx as `check`, E94x for attribution)."""
    from circuitdsl.engine.prepare import load_datasets, load_model

    kind = metric or h.metric.kind
    if kind is MetricKind.ACCURACY:
        raise _fail(
            "E941",
            "metric accuracy has no gradient (it is a step function of the logits): attribution needs one",
            "use `--metric margin` (logit of the answer minus the largest other logit: positive exactly when "
            "accuracy is 1), or `loss`",
            _metric_span(h),
        )
    if kind is MetricKind.KL and method == "eap":
        raise _fail(
            "E941",
            "metric kl has zero gradient at the clean run (KL(model || model) is its minimum), so EAP "
            "scores every edge 0",
            "use `--method eap-ig` (its interpolated points have a gradient), or another metric",
            _metric_span(h),
        )
    backend = load_model(h, device)
    datasets = load_datasets(h, backend, kind)
    ds = datasets[h.main_dataset]
    abl = h.ablation
    other = datasets.get(abl.dataset) if abl.dataset else None
    notes: list[str] = []
    if abl.kind is AblationKind.PAIRED:
        mode = "paired"
        if other is None or len(other) < len(ds):
            raise _fail("E417", f"`paired {abl.dataset}` needs a row for each of the {len(ds)} examples of `{ds.name}`")
    elif abl.kind in (AblationKind.MEAN, AblationKind.RESAMPLE, AblationKind.RESAMPLE_FROM):
        mode = "mean"
        if abl.kind is not AblationKind.MEAN:
            notes.append(
                f"`{abl}` is scored as the mean ablation over {abl.dataset or ds.name} (per layout and position): "
                + (
                    "the expectation of EAP's first-order score over the random draw"
                    if method == "eap"
                    else f"for {method} an approximation of the expectation over draws"
                )
            )
    else:
        mode = "zero"
    graph = AttrGraph(backend.shape)
    layouts = []
    bad_names: set[str] = set()
    for layout, pool in ds.layouts().items():
        rows = tuple(sorted(pool))
        ex = ds.examples[rows[0]]
        names = dict(ex.positions)
        mask = None
        if positions:
            T = len(ex.tokens)
            m = torch.zeros(T, dtype=torch.float32)
            for name in positions:
                if name not in names:
                    bad_names.add(name)
                    continue
                m[list(names[name])] = 1.0
            mask = m
        paired = None
        if mode == "paired":
            assert other is not None  # (E417 above otherwise)
            for i in rows:
                if other.examples[i].layout != layout:
                    raise _fail(
                        "E417",
                        f"row {i} of `{other.name}` does not have the layout (length and named positions) of "
                        f"row {i} of `{ds.name}`",
                        "paired datasets must match token length and named positions row by row",
                    )
            paired = rows
        layouts.append(_Layout(rows, paired, mask, names))
    if bad_names:
        known = sorted({k for lay in layouts for k in lay.names})
        raise _fail(
            "E942",
            f"unknown position{'s' if len(bad_names) > 1 else ''} {', '.join(f'`{n}`' for n in sorted(bad_names))} "
            f"in some layout of `{ds.name}`",
            f"this dataset names: {', '.join(known) or 'no positions'}",
        )
    bs = int(batch_size or 32)
    setup = Setup(h, backend, graph, ds, kind, mode, other, layouts, tuple(positions) if positions else None, bs, notes)
    if mode == "mean":
        _mean_sources(setup)
        setup.prepass_rows = setup.counts["forward"]
    return setup


# ---- sites and tensors ------------------------------------------------------------------------------------


def _sender_sites(shape) -> list[SiteKey]:
    sites: list[SiteKey] = [(Site.EMBED, None)]
    if shape.pos_embed == "learned":
        sites.append((Site.POS, None))
    for L in range(shape.n_layers):
        sites.append((Site.RESULT, L))
        if shape.has_mlp:
            sites.append((Site.MLP_OUT, L))
    return sites + [(Site.RESID_POST, shape.n_layers - 1)]


def _port_sites(shape) -> list:
    sites = []
    for L in range(shape.n_layers):
        sites += [(Site.Q_INPUT, L), (Site.K_INPUT, L), (Site.V_INPUT, L)]
        if shape.has_mlp:
            sites.append((Site.MLP_IN, L))
    return sites + [(Site.RESID_POST, shape.n_layers - 1)]


def _senders(cap: dict, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, P, S, D] sender outputs in AttrGraph order, [B, P, D] final residual) from captures."""
    parts = [cap[(Site.EMBED, None)].unsqueeze(2)]
    if shape.pos_embed == "learned":
        parts.append(cap[(Site.POS, None)].unsqueeze(2))
    for L in range(shape.n_layers):
        parts.append(cap[(Site.RESULT, L)])
        if shape.has_mlp:
            parts.append(cap[(Site.MLP_OUT, L)].unsqueeze(2))
    return torch.cat(parts, dim=2), cap[(Site.RESID_POST, shape.n_layers - 1)]


def _chunks(rows: Sequence[int], size: int) -> list[tuple[int, ...]]:
    return [tuple(rows[i : i + size]) for i in range(0, len(rows), size)]


def _tokens(setup: Setup, ds: Dataset, rows: Sequence[int]) -> torch.Tensor:
    return setup.backend.tokens([ds.examples[i].tokens for i in rows])


def _run(setup: Setup, tokens: torch.Tensor, capture) -> tuple[torch.Tensor, dict]:
    with torch.no_grad():
        logits, cap = setup.backend.run(tokens, capture=capture)
    setup.counts["forward"] += int(tokens.shape[0])
    return logits, cap


def _mean_sources(setup: Setup) -> None:
    """Per layout, the mean sender outputs and final residual over D (or the `mean over` / `resample
    from` dataset's examples of that layout): one forward pass over that pool."""
    abl = setup.h.ablation
    src = setup.other if abl.dataset else setup.ds
    assert src is not None  # (prepare loads the ablation's dataset)
    pools = src.layouts()
    shape = setup.backend.shape
    for lay in setup.layouts:
        layout = setup.ds.examples[lay.rows[0]].layout
        pool = pools.get(layout)
        if not pool:
            raise _fail(
                "E417",
                f"dataset `{src.name}` has no example with the layout of `{setup.ds.name}`'s examples of "
                f"length {layout[0]}",
                "the ablation dataset needs matching lengths and named positions",
            )
        tot: torch.Tensor | None = None
        fin: torch.Tensor | None = None
        for rows in _chunks(sorted(pool), setup.batch_size):
            _, cap = _run(setup, _tokens(setup, src, rows), _sender_sites(shape))
            s, f = _senders(cap, shape)
            s, f = s.double().sum(0), f.double().sum(0)
            tot = s if tot is None else tot + s
            fin = f if fin is None else fin + f
        assert tot is not None and fin is not None  # (the pool is not empty)
        dt = setup.backend.dtype
        lay.mean = {"senders": (tot / len(pool)).to(dt), "final": (fin / len(pool)).to(dt)}


def _ablated(
    setup: Setup, lay: _Layout, rows: Sequence[int], clean_s: torch.Tensor, clean_f: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ablated sender outputs [B, P, S, D], ablated final residual [B, P, D]) for these rows."""
    if setup.mode == "paired":
        assert setup.other is not None  # (prepare: paired needs D2)
        _, cap = _run(setup, _tokens(setup, setup.other, rows), _sender_sites(setup.backend.shape))
        return _senders(cap, setup.backend.shape)
    if setup.mode == "mean":
        assert lay.mean is not None  # (_mean_sources, in prepare)
        B = len(rows)
        return (
            lay.mean["senders"].unsqueeze(0).expand(B, -1, -1, -1).to(clean_s.device),
            lay.mean["final"].unsqueeze(0).expand(B, -1, -1).to(clean_f.device),
        )
    return torch.zeros_like(clean_s), clean_f - clean_s.sum(2)  # zero: the residual holds the biases only


# ---- the metric as a differentiable objective ------------------------------------------------------------


def _kl(ref: torch.Tensor, lg: torch.Tensor) -> torch.Tensor:
    lp = torch.log_softmax(ref.double(), -1)
    lq = torch.log_softmax(lg.double(), -1)
    return (lp.exp() * (lp - lq)).sum(-1).mean()


def _per_example(kind: MetricKind, lg: torch.Tensor, e: Example, ref: torch.Tensor | None) -> torch.Tensor:
    """m(x) of one example from its logits at the scored positions [S, V] (differentiable; float64)."""
    if kind is MetricKind.KL:
        assert ref is not None  # (KL compares with the model's own logits)
        return _kl(ref, lg)
    return metrics._values(kind, lg.double(), e).mean()  # the engine's own per-position definitions


def _batchable(kind: MetricKind, exs: Sequence[Example]) -> bool:
    s = len(exs[0].scored_positions)
    return all(len(e.scored_positions) == s and all(len(a) <= 1 for a in e.answer_sets + e.wrong_sets) for e in exs)


def _metric_rows(kind: MetricKind, lg: torch.Tensor, exs: Sequence[Example], refs: torch.Tensor | None) -> torch.Tensor:
    """m(x) per row from logits [R, S, V] at the rows' scored positions (float64, differentiable): the
    definitions of `circuitdsl.engine.metrics`, vectorised over rows (single answer tokens)."""
    lg = lg.double()
    if kind is MetricKind.KL:
        assert refs is not None  # (KL compares with the model's own logits)
        lp = torch.log_softmax(refs.double(), -1)
        return (lp.exp() * (lp - torch.log_softmax(lg, -1))).sum(-1).mean(-1)
    if kind is MetricKind.MSE:
        t = torch.tensor([e.targets for e in exs], dtype=lg.dtype, device=lg.device)
        return (-((lg[..., 0] - t) ** 2)).mean(-1)
    ans = torch.tensor([e.answers for e in exs], dtype=torch.long, device=lg.device).unsqueeze(-1)  # [R, S, 1]
    if kind in (MetricKind.LOGIT_DIFF, MetricKind.PROB_DIFF):
        x = lg if kind is MetricKind.LOGIT_DIFF else torch.softmax(lg, -1)
        wr = torch.tensor([e.wrongs for e in exs], dtype=torch.long, device=lg.device).unsqueeze(-1)
        return (x.gather(-1, ans) - x.gather(-1, wr)).squeeze(-1).mean(-1)
    if kind is MetricKind.MARGIN:
        a = lg.gather(-1, ans)
        others = lg.scatter(-1, ans, -math.inf)
        return (a.squeeze(-1) - others.max(-1).values).mean(-1)
    lp = torch.log_softmax(lg, -1).gather(-1, ans).squeeze(-1)
    if kind is MetricKind.LOGPROB:
        return lp.mean(-1)
    if kind is MetricKind.PROB:
        return lp.exp().mean(-1)
    if kind is MetricKind.LOSS:
        return (-lp).mean(-1)
    raise ValueError(f"metric {kind.value} has no gradient")


def metric_values(
    kind: MetricKind, logits: Sequence[torch.Tensor], exs: Sequence[Example], refs: Sequence[torch.Tensor | None]
) -> torch.Tensor:
    """m(x) per example ([R], float64) from each example's logits at its scored positions."""
    if exs and _batchable(kind, exs):
        # (KL: every row has its reference logits)
        ref_rows = torch.stack(list(cast(Sequence[torch.Tensor], refs))) if kind is MetricKind.KL else None
        return _metric_rows(kind, torch.stack(list(logits)), exs, ref_rows)
    return torch.stack([_per_example(kind, lg, e, r) for lg, e, r in zip(logits, exs, refs)])


def _objective(
    setup: Setup, exs: Sequence[Example], refs: Sequence[torch.Tensor] | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """logits [B, T, V] -> sum over the rows of m(x) / N (so that summed over chunks it is F)."""
    n = setup.n
    same = all(e.scored_positions == exs[0].scored_positions for e in exs)

    def f(logits: torch.Tensor) -> torch.Tensor:
        if same:
            at = logits[:, list(exs[0].scored_positions)]
            rows = [at[i] for i in range(len(exs))]
        else:
            rows = [logits[i, list(e.scored_positions)] for i, e in enumerate(exs)]
        return metric_values(setup.kind, rows, exs, refs if refs is not None else [None] * len(exs)).sum() / n

    return f


def _metric_sum(
    setup: Setup,
    logits_at_scored: Sequence[torch.Tensor],
    exs: Sequence[Example],
    refs: Sequence[torch.Tensor | None],
) -> float:
    with torch.no_grad():
        return float(metric_values(setup.kind, logits_at_scored, exs, refs).sum())


def _at_scored(logits: torch.Tensor, exs: Sequence[Example]) -> list[torch.Tensor]:
    return [logits[i, list(e.scored_positions)].detach() for i, e in enumerate(exs)]


def _unembed_scored(setup: Setup, final: torch.Tensor, exs: Sequence[Example]) -> list[torch.Tensor]:
    """Logits at each example's scored positions from final residuals [B, P, D]."""
    scored = exs[0].scored_positions
    if all(e.scored_positions == scored for e in exs):
        lg = setup.backend.unembed(final[:, list(scored)])
        return [lg[i] for i in range(len(exs))]
    return [setup.backend.unembed(final[i : i + 1, list(e.scored_positions)])[0] for i, e in enumerate(exs)]


# ---- score accumulation ----------------------------------------------------------------------------------


def _accumulate(
    setup: Setup, scores: torch.Tensor, delta: torch.Tensor, grads: dict, per_pos: torch.Tensor | None
) -> None:
    """scores[s, slot] += sum over b, p, d of delta[b, p, s] * grad_slot[b, p] (per_pos keeps p)."""
    g = setup.graph
    shape = setup.backend.shape
    H, G = shape.n_heads, shape.n_kv_heads
    delta = delta.double()
    eq = "bpsd,bprd->psr" if per_pos is not None else "bpsd,bprd->sr"
    for L in range(shape.n_layers):
        start, stop = g.layer_slots[L]
        gl = torch.cat([grads[(Site.Q_INPUT, L)], grads[(Site.K_INPUT, L)], grads[(Site.V_INPUT, L)]], dim=2).double()
        nh = g.n_upstream(Slot(L, Port.Q, 0))
        s = torch.einsum(eq, delta[:, :, :nh], gl)
        if per_pos is not None:
            per_pos[:, :nh, start : start + H + 2 * G] += s
            scores[:nh, start : start + H + 2 * G] += s.sum(0)
        else:
            scores[:nh, start : start + H + 2 * G] += s
        if shape.has_mlp:
            nm = g.n_upstream(Slot(L, Port.IN, None))
            gm = grads[(Site.MLP_IN, L)].double().unsqueeze(2)
            s = torch.einsum(eq, delta[:, :, :nm], gm)
            if per_pos is not None:
                per_pos[:, :nm, stop - 1 : stop] += s
                s = s.sum(0)
            scores[:nm, stop - 1 : stop] += s
    go = grads[(Site.RESID_POST, shape.n_layers - 1)].double().unsqueeze(2)
    s = torch.einsum(eq, delta, go)
    if per_pos is not None:
        per_pos[:, :, -1:] += s
        s = s.sum(0)
    scores[:, -1:] += s


# ---- results ---------------------------------------------------------------------------------------------


@dataclass
class Attribution:
    """Scores of every edge and node of the model graph for one hypothesis file's setup."""

    method: str
    model: str
    metric: str
    ablation: str
    mode: str
    dataset: str
    n: int
    steps: int | None
    positions: tuple[str, ...] | None
    f_model: float
    f_baseline: float
    matrix: np.ndarray
    """[senders, slots] scores (AttrGraph order); NaN where the slot's receiver does not read the sender."""
    graph: AttrGraph
    by_position: dict[str, np.ndarray] = field(default_factory=dict)
    """Named position -> [senders, slots] share of each score carried by the sender's output there."""
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def gap(self) -> float:
        return self.f_baseline - self.f_model

    def edge_scores(self) -> dict[EdgeId, float]:
        return self.graph.edge_scores(self.matrix)

    def node_scores(self) -> dict[NodeId, float]:
        return self.graph.node_scores(np.nan_to_num(self.matrix))

    def fraction(self, score: float) -> float | None:
        gap = self.gap
        return None if abs(gap) < 1e-12 else score / gap

    def passes(self) -> dict[str, float]:
        """Forward / backward passes over the data (rows / N); exact patching's single-block runs as
        forward-pass equivalents (block rows / (N x layers))."""
        n = max(self.n, 1)
        L = self.graph.shape.n_layers
        return {
            "forward": self.counts.get("forward", 0) / n,
            "backward": self.counts.get("backward", 0) / n,
            "blocks": self.counts.get("block_rows", 0) / (n * L),
        }


def _fresh_counts(setup: Setup) -> dict:
    """Counters for one method's run; the mean ablation's pass over its pool (made once, in `prepare`)
    is counted in every method that uses it."""
    return {"forward": setup.prepass_rows, "backward": 0, "block_rows": 0}


def _empty_matrix(g: AttrGraph) -> torch.Tensor:
    return torch.zeros(len(g.senders), len(g.slots), dtype=torch.float64)


def _finish(
    setup: Setup,
    method: str,
    steps: int | None,
    scores: torch.Tensor,
    f_model: float,
    f_base: float,
    per_pos: dict[tuple, torch.Tensor],
    t0: float,
) -> Attribution:
    g = setup.graph
    m = scores.numpy().copy()
    for j, sl in enumerate(g.slots):
        m[g.n_upstream(sl) :, j] = np.nan
    by_pos: dict[str, np.ndarray] = {}
    for lay in setup.layouts:
        buf = per_pos.get(lay.rows)
        if buf is None:
            continue
        named: set[int] = set()
        for name, idx in lay.names.items():
            named.update(idx)
            v = buf[list(idx)].sum(0).numpy()
            by_pos[name] = by_pos.get(name, 0) + v
        rest = [p for p in range(buf.shape[0]) if p not in named]
        if rest:
            by_pos["(unnamed)"] = by_pos.get("(unnamed)", 0) + buf[rest].sum(0).numpy()
    for k in by_pos:
        by_pos[k] = np.where(np.isnan(m), np.nan, by_pos[k])
    return Attribution(
        method,
        setup.h.model.name,
        setup.kind.value,
        str(setup.h.ablation),
        setup.mode,
        setup.ds.name,
        setup.n,
        steps,
        setup.positions,
        f_model,
        f_base,
        m,
        g,
        by_pos,
        time.perf_counter() - t0,
        dict(setup.counts),
        list(setup.notes),
    )


# ---- EAP and EAP-IG ------------------------------------------------------------------------------------


def attribute(
    setup: Setup,
    method: str = "eap",
    *,
    steps: int = 5,
    per_position: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> Attribution:
    """Scores of every edge by `method` ('eap', 'eap-ig' or 'exact'; module docstring)."""
    if method == "exact":
        return exact_scores(setup, progress=progress)
    if method not in ("eap", "eap-ig"):
        raise ValueError(f"unknown method {method!r}")
    if method == "eap-ig" and steps < 1:
        raise _fail("E902", f"--steps must be at least 1, not {steps}")
    t0 = time.perf_counter()
    setup.counts = _fresh_counts(setup)
    b = setup.backend
    shape = b.shape
    scores = _empty_matrix(setup.graph)
    per_pos: dict[tuple, torch.Tensor] = {}
    f_model = f_base = 0.0
    chunks = [(lay, rows) for lay in setup.layouts for rows in _chunks(lay.rows, setup.batch_size)]
    for ci, (lay, rows) in enumerate(chunks):
        exs = [setup.ds.examples[i] for i in rows]
        tokens = _tokens(setup, setup.ds, rows)
        if method == "eap":
            value, grads, cap = b.grad_run(
                tokens, _objective(setup, exs, None), grads=_port_sites(shape), capture=_sender_sites(shape)
            )
            setup.counts["forward"] += len(rows)
            setup.counts["backward"] += len(rows)
            clean_s, clean_f = _senders(cap, shape)
            f_model += value * setup.n
        else:
            logits, cap = _run(setup, tokens, _sender_sites(shape))
            refs = _at_scored(logits, exs)
            del logits
            clean_s, clean_f = _senders(cap, shape)
            f_model += _metric_sum(setup, refs, exs, refs)
        abl_s, abl_f = _ablated(setup, lay, rows, clean_s, clean_f)
        if method == "eap-ig":
            grads = _ig_grads(setup, tokens, exs, refs, clean_s, abl_s, steps)
        full = abl_s - clean_s
        base_logits = _unembed_scored(setup, abl_f, exs)  # the baseline: every sender ablated
        f_base += _metric_sum(setup, base_logits, exs, refs if method == "eap-ig" else [None] * len(exs))
        delta = full if lay.mask is None else full * lay.mask.to(full.device)[None, :, None, None]
        buf = None
        if per_position:
            buf = per_pos.setdefault(lay.rows, torch.zeros(delta.shape[1], *scores.shape, dtype=torch.float64))
        _accumulate(setup, scores, delta, grads, buf)
        del grads, delta, full, clean_s, abl_s
        if progress:
            progress(method, ci, len(chunks))
    n = setup.n
    return _finish(setup, method, steps if method == "eap-ig" else None, scores, f_model / n, f_base / n, per_pos, t0)


def _ig_grads(setup: Setup, tokens, exs, refs, clean_s, abl_s, steps: int) -> dict:
    """The port gradients averaged over a = k/steps, k = 0..steps-1, on the line from the ablated to
    the clean embeddings (EAP-IG-inputs)."""
    b = setup.backend
    shape = b.shape
    emb_sites = [(Site.EMBED, None)] + ([(Site.POS, None)] if shape.pos_embed == "learned" else [])
    abl_emb = {site: abl_s[:, :, i] for i, site in enumerate(emb_sites)}
    total: dict = {}
    objective = _objective(setup, exs, refs if setup.kind is MetricKind.KL else None)
    for k in range(steps):
        a = k / steps

        def edit_for(site, a=a):
            base = abl_emb[site]

            def fn(x):
                lo = base.to(device=x.device, dtype=x.dtype)
                return lo + a * (x - lo)

            return fn

        _, grads, _ = b.grad_run(tokens, objective, grads=_port_sites(shape), edits={s: edit_for(s) for s in emb_sites})
        setup.counts["forward"] += len(exs)
        setup.counts["backward"] += len(exs)
        for key, gr in grads.items():
            total[key] = gr / steps if key not in total else total[key] + gr / steps
    return total


# ---- exact edge patching ---------------------------------------------------------------------------------


def exact_scores(
    setup: Setup,
    edges: Sequence[EdgeId] | None = None,
    *,
    max_rows: int = 96,
    progress: Callable[[str, int, int], None] | None = None,
) -> Attribution:
    """F(e ablated) - F(model) for each edge (default: every edge of the model graph), by patching:
    the receiver's port gets clean_resid - clean_s + ablated_s, every later block is recomputed
    (`ModelBackend.run_from` from the receiver's layer); an edge into out needs only the unembedding.
    Edges sharing a (sender, slot) cell — the k/v edges of one group — are one computation. Cells not
    asked for are NaN in the result."""
    t0 = time.perf_counter()
    setup.counts = _fresh_counts(setup)
    g = setup.graph
    b = setup.backend
    shape = b.shape
    cells = sorted(
        {g.cell(e) for e in (edges if edges is not None else g.edges)},
        key=lambda c: (g.slots[c[1]].layer is None, g.slots[c[1]].layer or 0, c),
    )
    by_layer: dict[int | None, list[tuple[int, int]]] = {}
    for c in cells:
        by_layer.setdefault(g.slots[c[1]].layer, []).append(c)
    sums = {c: 0.0 for c in cells}
    f_model = f_base = 0.0
    chunks = [(lay, rows) for lay in setup.layouts for rows in _chunks(lay.rows, setup.batch_size)]
    needed = sorted(L for L in by_layer if L is not None)
    for ci, (lay, rows) in enumerate(chunks):
        exs = [setup.ds.examples[i] for i in rows]
        B = len(rows)
        tokens = _tokens(setup, setup.ds, rows)
        logits, cap = _run(setup, tokens, _sender_sites(shape) + [(Site.RESID_PRE, L) for L in needed])
        refs = _at_scored(logits, exs)
        del logits
        clean_s, clean_f = _senders(cap, shape)
        f_model += _metric_sum(setup, refs, exs, refs)
        abl_s, abl_f = _ablated(setup, lay, rows, clean_s, clean_f)
        full = abl_s - clean_s
        f_base += _metric_sum(setup, _unembed_scored(setup, abl_f, exs), exs, refs)
        delta = full if lay.mask is None else full * lay.mask.to(full.device)[None, :, None, None]
        per = max(1, max_rows // B)
        for L, cs in by_layer.items():
            for v0 in range(0, len(cs), per):
                var = cs[v0 : v0 + per]
                V = len(var)
                if L is None:  # into out: the final residual, unembedded
                    fin = (clean_f.unsqueeze(0) + torch.stack([delta[:, :, i] for i, _ in var])).reshape(
                        V * B, *clean_f.shape[1:]
                    )
                    lg = _unembed_scored(setup, fin, exs * V)
                else:
                    lg = _patched_logits(setup, cap[(Site.RESID_PRE, L)], L, var, delta, exs)
                with torch.no_grad():
                    vals = metric_values(setup.kind, lg, exs * V, refs * V).view(V, B).sum(-1)
                for k, c in enumerate(var):
                    sums[c] += float(vals[k])
        del cap, clean_s, abl_s, full, delta
        if progress:
            progress("exact", ci, len(chunks))
    n = setup.n
    scores = torch.full((len(g.senders), len(g.slots)), math.nan, dtype=torch.float64)
    for (i, j), s in sums.items():
        scores[i, j] = s / n - f_model / n
    return _finish(setup, "exact", None, scores, f_model / n, f_base / n, {}, t0)


def _patched_logits(
    setup: Setup,
    resid: torch.Tensor,
    L: int,
    var: Sequence[tuple[int, int]],
    delta: torch.Tensor,
    exs: Sequence[Example],
) -> list[torch.Tensor]:
    """Logits at the scored positions of V variants stacked along the batch, each adding one sender's
    delta at one port of layer L."""
    g = setup.graph
    b = setup.backend
    B = resid.shape[0]
    V = len(var)
    adds: dict = {}
    for k, (i, j) in enumerate(var):
        sl = g.slots[j]
        site = {Port.Q: Site.Q_INPUT, Port.K: Site.K_INPUT, Port.V: Site.V_INPUT, Port.IN: Site.MLP_IN}[sl.port]
        rows = slice(k * B, (k + 1) * B)
        adds.setdefault(site, []).append((rows, sl.index, delta[:, :, i]))

    def edit_for(items):
        def fn(x):
            y = x.clone()
            for rows, idx, d in items:
                d = d.to(device=y.device, dtype=y.dtype)
                if idx is None:
                    y[rows] = y[rows] + d
                else:
                    y[rows, :, idx] = y[rows, :, idx] + d
            return y

        return fn

    edits = {(site, L): edit_for(items) for site, items in adds.items()}
    start = resid.repeat(V, 1, 1)
    scored = exs[0].scored_positions
    same = all(e.scored_positions == scored for e in exs)
    with torch.no_grad():
        logits = b.run_from(L, start, edits=edits, positions=list(scored) if same else None)
    setup.counts["block_rows"] += V * B * (b.shape.n_layers - L)
    if same:
        return [logits[r] for r in range(V * B)]
    return [logits[r, list(exs[r % B].scored_positions)] for r in range(V * B)]
