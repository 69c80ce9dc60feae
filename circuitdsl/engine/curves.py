"""Faithfulness curves (SEMANTICS.md section 5, as MIB): f(k) = recovered of the circuit made of the
top-k edges of a ranking and the nodes they touch (identity features, the file's ablation, dataset and
metric), for k = floor(fraction * |E|) at each fraction of `stats.GRID`, |E| the model graph's edges;
CPR and CMD are its areas (circuitdsl.engine.stats.curve_areas). Every point is a scrub through one
Engine. docs/TESTS.md has the decisions (no pruning; ties; undefined points).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuitdsl.datasets.core import Example
from circuitdsl.engine import derive, stats
from circuitdsl.ir import IDENTITY, Claim, EdgeId, Hypothesis, MetricKind

__all__ = ["SCHEMA", "CurvePoint", "Curve", "curve_hypothesis", "faithfulness_curve", "engine_for", "plot_curve"]

SCHEMA = "circuitdsl-curve/1"


@dataclass(frozen=True)
class CurvePoint:
    fraction: float
    k: int
    """Edges taken from the top of the ranking (floor(fraction * |E|), as MIB)."""
    nodes: int
    """Nodes those edges touch (out included)."""
    f_raw: float | None
    """F of that circuit (raw units)."""
    f: float | None
    """recovered of that circuit: (F - F(baseline)) / (F(model) - F(baseline))."""
    reason: str | None = None


@dataclass(frozen=True)
class Curve:
    name: str
    source_path: str | None
    model: str
    metric: str
    ablation: str
    dataset: str
    n: int
    seed: int
    n_edges: int
    ranking: tuple[str, ...]
    signed: bool
    points: tuple[CurvePoint, ...]
    f_model: float
    f_baseline: float
    cpr: float | None
    cmd: float | None
    cpr_log: float | None
    cmd_log: float | None
    circuit_fraction: float | None = None
    """The file's own hypothesis: its claimed edges / |E| ..."""
    circuit_f: float | None = None
    """... and its recovered (its own features), for comparison on the plot."""
    undefined_reason: str | None = None
    scrubs: int = 0
    seconds: float = 0.0
    schema: str = SCHEMA

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)

        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [clean(x) for x in v]
            return v

        return clean(d)

    @staticmethod
    def from_json(d: dict[str, Any]) -> Curve:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} result (schema {d.get('schema')!r})")
        return Curve(**{**d, "ranking": tuple(d["ranking"]), "points": tuple(CurvePoint(**p) for p in d["points"])})


def curve_hypothesis(h: Hypothesis, edges: Iterable[EdgeId], label: str) -> Hypothesis:
    """The circuit made of `edges` and the nodes they touch, every node with the identity feature, and
    `out`; h's model, datasets, metric, ablation and treeification rule."""
    edges = tuple(edges)
    nodes = sorted({v for e in edges for v in (e.sender, e.receiver)} | {derive.OUT})
    claims = tuple(Claim(v, IDENTITY) for v in nodes)
    return derive._rebuild(h, f"{h.name} [{label}]", claims, edges)


@dataclass(frozen=True)
class MetricOf:
    """`m_of(logits)`: the metric of each example of the dataset under those logits; `clean`: the model's
    own logits (what the metric compares with)."""

    kind: MetricKind
    examples: Sequence[Example]
    clean: Any

    def __call__(self, logits: Any) -> np.ndarray:
        from circuitdsl.engine import metrics

        return metrics.metric_values(self.kind, logits, self.examples, self.clean)


@contextlib.contextmanager
def engine_for(
    h: Hypothesis, *, seed: int, device: str = "cpu", batch_size: int | None = None, cache: bool = True
) -> Iterator[tuple[Any, MetricOf, Any]]:
    """(engine, m_of, dataset) for scrubbing variants of h, set up as `run_check` does (model contract,
    dataset validation, metric checks; `cache`: the on-disk activation cache, engine/diskcache.py);
    diagnostics are raised as CircuitError."""
    import torch

    from circuitdsl.engine import diskcache, finite, prepare
    from circuitdsl.engine.scrub import Engine

    backend = prepare.load_model(h, device)
    datasets = prepare.load_datasets(h, backend)
    ds = datasets[h.main_dataset]
    with (
        torch.no_grad(),
        Engine(
            backend,
            datasets,
            h.main_dataset,
            h.ablation,
            seed=seed,
            batch_size=batch_size,
            disk_cache=diskcache.open_cache(backend, enabled=cache),
        ) as engine,
    ):
        clean = engine.clean_logits()
        finite.check_finite(backend, ds, clean, h.model.span)

        yield engine, MetricOf(h.metric.kind, ds.examples, clean), ds


def faithfulness_curve(
    h: Hypothesis,
    ranking,
    *,
    seed: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    signed: bool = False,
    grid: tuple[float, ...] = stats.GRID,
    progress: Callable[[str, int, int], None] | None = None,
    cache: bool = True,
) -> Curve:
    """The faithfulness curve of `ranking` (a circuitdsl.mib.Ranking) on h's model, data, metric and
    ablation; the file's own circuit is scored too, for comparison."""
    from circuitdsl.engine import scores
    from circuitdsl.engine.treeify import TreeTooLarge
    from circuitdsl.mib import model_edges

    t0 = time.perf_counter()
    seed = h.seed if seed is None else int(seed)
    say = progress or (lambda *a: None)
    all_edges = model_edges(h.model.shape)
    order = ranking.ranked(all_edges, signed=signed)
    ks = stats.grid_counts(len(all_edges), grid)
    points: list[CurvePoint] = []
    n_scrubs = 0
    with engine_for(h, seed=seed, device=device, batch_size=batch_size, cache=cache) as (engine, m_of, ds):
        m_model = m_of(m_of.clean)
        m_base = m_of(engine.scrub(derive.empty(h)).logits)
        f_model, f_base = float(m_model.mean()), float(m_base.mean())
        why = scores.undefined_reason(m_model, m_base)
        gap = None if why else f_model - f_base
        for i, (frac, k) in enumerate(zip(grid, ks)):
            say("faithfulness curve", i, len(grid))
            hk = curve_hypothesis(h, order[:k], f"top {k} edges")
            try:
                f_raw = float(m_of(engine.scrub(hk).logits).mean())
                n_scrubs += 1
            except TreeTooLarge as e:
                points.append(CurvePoint(frac, k, len(hk.claims), None, None, e.diagnostics[0].message))
                continue
            points.append(CurvePoint(frac, k, len(hk.claims), f_raw, None if gap is None else (f_raw - f_base) / gap))
        try:
            f_c = float(m_of(engine.scrub(h).logits).mean())
            n_scrubs += 1
            circuit_f = None if gap is None else (f_c - f_base) / gap
        except TreeTooLarge:
            circuit_f = None
    areas = stats.curve_areas(grid, [p.f for p in points])
    undefined = None
    if gap is None:
        undefined = f"recovered is undefined: {why}"
    elif any(p.f is None for p in points):
        undefined = "; ".join(f"k = {p.k}: {p.reason}" for p in points if p.f is None)
    return Curve(
        name=h.name,
        source_path=h.source_path,
        model=h.model.name,
        metric=h.metric.kind.value,
        ablation=str(h.ablation),
        dataset=h.main_dataset,
        n=len(ds),
        seed=seed,
        n_edges=len(all_edges),
        ranking=tuple(ranking.sources),
        signed=signed,
        points=tuple(points),
        f_model=f_model,
        f_baseline=f_base,
        circuit_fraction=len(h.edges) / len(all_edges),
        circuit_f=circuit_f,
        undefined_reason=undefined,
        scrubs=n_scrubs,
        seconds=time.perf_counter() - t0,
        cpr=areas["cpr"],
        cmd=areas["cmd"],
        cpr_log=areas["cpr_log"],
        cmd_log=areas["cmd_log"],
    )


def plot_curve(curve: Curve, path: str, *, dpi: int = 130) -> None:
    """Write the curve as an image (format from the extension: .png, .svg, .pdf; else PNG) with
    matplotlib, atomically."""
    import io
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from circuitdsl.atomic import write_bytes

    fig = Figure(figsize=(6.4, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = [p.fraction for p in curve.points if p.f is not None]
    ys = [p.f for p in curve.points if p.f is not None]
    ax.plot(xs, ys, marker="o", color="#1f77b4", label="top-k edges of the ranking")
    ax.axhline(1.0, color="#7f7f7f", linestyle="--", linewidth=1)
    ax.axhline(0.0, color="#bbbbbb", linestyle=":", linewidth=1)
    if curve.circuit_f is not None and curve.circuit_fraction:
        ax.scatter(
            [curve.circuit_fraction],
            [curve.circuit_f],
            marker="*",
            s=160,
            color="#d62728",
            zorder=5,
            label=f"{curve.name} (its own features)",
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"fraction of the model graph's {curve.n_edges:,} edges")
    ax.set_ylabel(f"f(k) = recovered ({curve.metric})")

    def g(v):
        return "undefined" if v is None else f"{v:.3f}"

    ax.set_title(f"{curve.name}: CPR {g(curve.cpr)}, CMD {g(curve.cmd)} ({curve.ablation}, N={curve.n})", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    fmt = Path(path).suffix.lower().lstrip(".")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt if fmt in ("png", "svg", "pdf") else "png", dpi=dpi, bbox_inches="tight", metadata=None)
    write_bytes(path, buf.getvalue())
