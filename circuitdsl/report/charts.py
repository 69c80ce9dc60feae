"""matplotlib charts for the report, returned as SVG text (fonts kept as text, no network, no torch)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

__all__ = ["metric_histogram_svg", "dla_bars_svg"]

_COLORS = {"model": "#1f77b4", "scrubbed": "#ff7f0e", "baseline": "#7f7f7f"}


def _figure(w: float, h: float):
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasSVG(fig)
    return fig


def _svg(fig) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "circuitdsl"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def metric_histogram_svg(
    model: Sequence[float], scrubbed: Sequence[float], baseline: Sequence[float], *, metric: str
) -> str:
    """Overlaid step histograms of the per-example metric under the model, the scrubbed hypothesis and
    the baseline, on shared bins, each with its mean marked."""
    series = {"model": list(model), "scrubbed": list(scrubbed), "baseline": list(baseline)}
    finite = [v for vs in series.values() for v in vs if math.isfinite(v)]
    fig = _figure(7.2, 3.1)
    ax = fig.add_subplot(1, 1, 1)
    if finite:
        lo, hi = min(finite), max(finite)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        n = max(len(v) for v in series.values())
        bins = max(10, min(60, int(math.sqrt(n) * 2)))
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
        for name, vs in series.items():
            vs = [v for v in vs if math.isfinite(v)]
            ax.hist(vs, bins=edges, histtype="stepfilled", alpha=0.18, color=_COLORS[name])
            ax.hist(vs, bins=edges, histtype="step", linewidth=1.6, color=_COLORS[name],
                    label=f"{name} (mean {sum(vs) / max(1, len(vs)):.3g})")  # fmt: skip
            if vs:
                ax.axvline(sum(vs) / len(vs), color=_COLORS[name], linestyle="--", linewidth=1)
    ax.set_xlabel(f"m(x) = {metric} per example")
    ax.set_ylabel("examples")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def dla_bars_svg(
    labels: Sequence[str],
    values: Sequence[float],
    spreads: Sequence[tuple[float, float] | None],
    kinds: Sequence[str],
    *,
    direction: str,
) -> str:
    """Horizontal bars: mean direct logit attribution per component, with the 10th-90th percentile
    over examples as a whisker where given. `kinds`: 'claimed', 'unclaimed', 'rest' or 'total'."""
    color = {"claimed": "#d62728", "unclaimed": "#9e9e9e", "rest": "#c7c7c7", "total": "#1f77b4"}
    n = len(labels)
    fig = _figure(7.2, 0.8 + 0.32 * n)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(n))[::-1]
    ax.barh(ys, values, color=[color[k] for k in kinds], height=0.65)
    for y, v, s in zip(ys, values, spreads):
        if s is not None:
            ax.plot([s[0], s[1]], [y, y], color="#333333", linewidth=1)
        ax.text(v, y, f" {v:+.2f} ", va="center", ha="left" if v >= 0 else "right", fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=9)
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_xlabel(f"direct effect on {direction} (logits; whisker: 10th-90th percentile over examples)", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    lo, hi = min([0.0, *values]), max([0.0, *values])
    pad = 0.18 * (hi - lo or 1.0)
    ax.set_xlim(lo - pad, hi + pad)
    return _svg(fig)
