"""What `circuitdsl attribute` writes: the ranked table (rich), the heatmap (matplotlib), the scores as
JSON (schema `circuitdsl-attribution/1`, readable by `circuitdsl curve --scores` and `mib import`: its
`edges` object has MIB's shape), MIB circuit-track JSON (circuitdsl.mib.to_mib), and a `.circuit` file
claiming a circuit cut from the ranking (circuitdsl.attribute.graph.select) with the template file's
setup statements (circuitdsl.mib.circuit_text). Every file is written atomically.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from circuitdsl.attribute.graph import AttrGraph, Selection
from circuitdsl.ir import EdgeId, NodeKind

__all__ = ["SCHEMA", "to_json", "print_table", "plot_heatmap", "circuit_source", "ranked_cells", "spearman", "roc_auc"]

SCHEMA = "circuitdsl-attribution/1"


def _f(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v + 0.0:.{digits}g}"


def ranked_cells(att) -> list[tuple[int, int, float]]:
    """(sender index, slot index, score) of every scored cell, by decreasing |score| (ties in model order)."""
    m = att.matrix
    cells = [(i, j, float(m[i, j])) for i in range(m.shape[0]) for j in range(m.shape[1]) if not math.isnan(m[i, j])]
    return sorted(cells, key=lambda c: (-abs(c[2]), c[1], c[0]))


def cell_label(g: AttrGraph, i: int, j: int) -> str:
    sl = g.slots[j]
    return f"{g.senders[i].name} -> {sl.label(g.shape)}"


# ---- JSON ---------------------------------------------------------------------------------------------


def to_json(att, *, in_graph: Iterable[EdgeId] = (), exact=None, circuit: str | None = None) -> dict[str, Any]:
    """The scores of every edge and node. `edges` maps each edge (circuitdsl's spelling, per query head:
    the k/v edges of the heads of one key/value group carry the group port's one score) to
    {"score", "fraction", "in_graph"[, "exact"]}; a reader of MIB JSON reads it as such."""
    g = att.graph
    flagged = set(in_graph)
    ex = exact.edge_scores() if exact is not None else {}
    edges = {}
    for e, s in att.edge_scores().items():
        d = {"score": s, "fraction": att.fraction(s), "in_graph": e in flagged}
        if e in ex and not math.isnan(ex[e]):
            d["exact"] = ex[e]
        edges[str(e)] = d
    nodes = {v.name: s for v, s in att.node_scores().items()}
    by_pos = {}
    if att.by_position:
        top = ranked_cells(att)[:200]
        for name, mat in att.by_position.items():
            by_pos[name] = {cell_label(g, i, j): float(mat[i, j]) for i, j, _ in top}
    shape = g.shape
    return {
        "schema": SCHEMA,
        "cfg": {
            "n_layers": shape.n_layers,
            "n_heads": shape.n_heads,
            "n_kv_heads": shape.n_kv_heads,
            "parallel_attn_mlp": bool(shape.parallel_attn_mlp),
            "d_model": shape.d_model,
        },
        "attribution": {
            "method": att.method,
            "model": att.model,
            "metric": att.metric,
            "ablation": att.ablation,
            "scored_as": att.mode,
            "dataset": att.dataset,
            "n": att.n,
            "steps": att.steps,
            "positions": list(att.positions or ()),
            "f_model": att.f_model,
            "f_baseline": att.f_baseline,
            "seconds": att.seconds,
            "passes": att.passes(),
            "notes": list(att.notes),
            "circuit": circuit,
            "score": "F(edge ablated) - F(model), in the metric's raw units (first-order estimate unless method is exact); "
            "fraction = score / (F(baseline) - F(model))",
        },
        "edges": edges,
        "node_scores": nodes,
        "by_position": by_pos,
    }


# ---- terminal -----------------------------------------------------------------------------------------


def print_table(att, *, top: int = 20, exact=None, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(file=file, highlight=False, soft_wrap=True)
    g = att.graph
    what = {
        "eap": "EAP (Syed et al. 2023)",
        "eap-ig": f"EAP-IG, inputs, {att.steps} steps (Hanna et al. 2024)",
        "exact": "exact edge patching",
    }[att.method]
    con.print(
        f"[bold]{what}[/bold]  model {att.model}, dataset {att.dataset} (N={att.n}), metric {att.metric}, "
        f"ablation {att.ablation}"
        + (f" (scored as {att.mode})" if att.mode not in att.ablation else "")
        + (f", positions {', '.join(att.positions)}" if att.positions else "")
    )
    p = att.passes()
    cost = f"{p['forward']:.3g} forward + {p['backward']:.3g} backward passes" + (
        f" + {p['blocks']:.3g} forward-pass equivalents of single blocks" if p["blocks"] else ""
    )
    con.print(
        f"F(model) {_f(att.f_model)}, F(baseline) {_f(att.f_baseline)} (every sender ablated); "
        f"{len(g.edges):,} edges ({sum(1 for _ in ranked_cells(att)):,} distinct ports x senders); {cost}; {att.seconds:.1f} s"
    )
    ex = exact.matrix if exact is not None else None
    t = Table(
        title=f"top {top} edges by |score|: score = F(edge ablated) - F(model) ({att.metric}); "
        f"of gap = score / (F(baseline) - F(model))"
    )
    for col in ("#", "edge", "score", "of gap") + (("exact", "of gap ") if ex is not None else ()):
        t.add_column(col, justify="right" if col not in ("edge",) else "left")
    for r, (i, j, s) in enumerate(ranked_cells(att)[:top], 1):
        row = [str(r), cell_label(g, i, j), _f(s), _f(att.fraction(s), 3)]
        if ex is not None:
            v = float(ex[i, j])
            row += [_f(v), _f(att.fraction(v), 3)] if not math.isnan(v) else ["", ""]
        t.add_row(*row)
    con.print(t)
    nodes = sorted(att.node_scores().items(), key=lambda kv: -abs(kv[1]))[: min(top, 10)]
    con.print(
        "nodes (first order: the sum of a node's outgoing edge scores): "
        + ", ".join(f"{v.name} {_f(s, 3)}" for v, s in nodes)
    )
    for n in att.notes:
        con.print(f"note: {n}")


# ---- heatmap ------------------------------------------------------------------------------------------


def plot_heatmap(att, path: str, *, dpi: int = 130) -> None:
    """Senders (rows) x receiving ports (columns), colour = score (diverging, symmetric); layer
    boundaries marked. Written atomically; format from the extension (.png, .svg, .pdf)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    from circuitdsl.atomic import write_bytes

    g = att.graph
    m = np.array(att.matrix, dtype=float)
    lim = float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 1.0
    lim = lim or 1.0
    S, R = m.shape
    w = min(18.0, 3.0 + 0.22 * R) if R < 80 else 18.0
    h = min(16.0, 2.5 + 0.22 * S) if S < 80 else 14.0
    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    masked = np.ma.masked_invalid(m)
    im = ax.imshow(masked, aspect="auto", cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label=f"F(edge ablated) - F(model) ({att.metric})")
    if R <= 60:
        ax.set_xticks(range(R), [sl.label(g.shape) for sl in g.slots], rotation=90, fontsize=7)
    else:
        ticks = [start for start, _ in g.layer_slots]
        ax.set_xticks(ticks, [f"L{L}" for L in range(len(ticks))], fontsize=6)
    if S <= 60:
        ax.set_yticks(range(S), [s.name for s in g.senders], fontsize=7)
    else:
        starts = [g.n_emb + L * g.per_layer() for L in range(g.shape.n_layers)]
        ax.set_yticks(starts, [f"L{L}" for L in range(len(starts))], fontsize=6)
    for start, _ in g.layer_slots[1:]:
        ax.axvline(start - 0.5, color="#999999", linewidth=0.4)
    for L in range(1, g.shape.n_layers):
        ax.axhline(g.n_emb + L * g.per_layer() - 0.5, color="#999999", linewidth=0.4)
    ax.set_xlabel("receiving port (q per head, k and v per key/value group, MLP in, out)")
    ax.set_ylabel("sender")
    ax.set_title(f"{att.method} scores: {att.model}, {att.dataset} (N={att.n}), ablation {att.ablation}", fontsize=10)
    fmt = Path(path).suffix.lower().lstrip(".")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt if fmt in ("png", "svg", "pdf") else "png", dpi=dpi, bbox_inches="tight", metadata=None)
    write_bytes(path, buf.getvalue())


# ---- the .circuit file --------------------------------------------------------------------------------

_PATH_STMT = re.compile(r'^(\s*(?:model|dataset)\b[^"\n]*)"([^"\\\n]*)"', re.M)


def _rebase_paths(text: str, template_path: str, out_path: str) -> str:
    """Quoted model and dataset paths of the template, made relative to the output file's folder (when
    they name something that exists next to the template)."""
    src_dir = Path(template_path).resolve().parent
    out_dir = Path(out_path).resolve().parent
    if src_dir == out_dir:
        return text

    def fix(m: re.Match) -> str:
        p = m.group(2)
        target = (src_dir / p) if not os.path.isabs(p) else Path(p)
        if os.path.isabs(p) or not target.exists():
            return m.group(0)
        rel = os.path.relpath(target, out_dir)
        return f'{m.group(1)}"{Path(rel).as_posix()}"'

    return _PATH_STMT.sub(fix, text)


def circuit_source(
    att,
    sel: Selection,
    template_text: str,
    template_path: str,
    out_path: str,
    *,
    expects: Sequence[str] = (),
    command: str = "",
) -> str:
    """The text of the `.circuit` file: a comment saying where it came from, the template's setup
    statements, the backbone (`wire`) if asked, the selected edges, and `expect` clauses."""
    from circuitdsl.mib import circuit_text

    scores = att.edge_scores()
    shape = att.graph.shape
    nodes = {v for e in sel.edges for v in (e.sender, e.receiver)}
    n_heads = sum(1 for v in nodes if v.kind is NodeKind.HEAD)
    lines = [
        f"Found by `circuitdsl attribute`{(': ' + command) if command else ''}",
        f"method {att.method}{f' ({att.steps} steps)' if att.steps else ''}, metric {att.metric}, ablation {att.ablation}"
        f"{' (scored as ' + att.mode + ')' if att.mode not in att.ablation else ''}, dataset {att.dataset} (N={att.n}): "
        f"F(model) {att.f_model:.4g}, F(baseline) {att.f_baseline:.4g}.",
        f"The top {sel.taken} edges by |score| (score = estimated F(edge ablated) - F(model)); {sel.pruned} of them were "
        f"dropped as on no path from an embedding to out, {len(sel.edges)} kept ({n_heads} heads).",
    ]
    if sel.edges:
        lo = min(abs(scores[e]) for e in sel.edges)
        lines.append(
            f"Smallest |score| kept: {lo:.3g}. Every node has the identity feature: edit the features to state what each computes."
        )
    if sel.backbone:
        lines.append(
            "The embeddings, every MLP and out are kept, wired among themselves (the backbone): the file claims the "
            "MLPs only as a whole, as a route between the selected heads; it tests no MLP on its own."
        )
    elif shape.has_mlp:
        n_mlp = sum(1 for v in nodes if v.kind is NodeKind.MLP)
        lines.append(
            f"What the file claims: these edges alone carry the behaviour. MLPs are claimed like heads ({n_mlp} of "
            f"{shape.n_layers} in the circuit); every sender and edge not listed is ablated by the file's `ablate` "
            f"(--backbone keeps every MLP instead, claimed as a whole)."
        )
    text = _rebase_paths(template_text, template_path, out_path)
    body = circuit_text(sel.edges, text, template_path, comment="\n".join(lines))
    if sel.backbone:
        from circuitdsl.attribute.graph import backbone_nodes

        bb = backbone_nodes(shape)
        names = [v.name for v in bb if v.kind is not NodeKind.MLP]
        if shape.has_mlp:
            names.append(f"m0..m{shape.n_layers - 1}" if shape.n_layers > 1 else "m0")
        head, _, edges_part = body.rpartition("\n\n")
        body = head + "\n\ngroup backbone = " + ", ".join(names) + "\nwire backbone, out\n" + edges_part
    if expects:
        body = body.rstrip("\n") + "\n\n" + "\n".join(f"expect {x.strip()}" for x in expects) + "\n"
    return body


# ---- comparisons used by the validation ---------------------------------------------------------------


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), dtype=float)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        r[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return r


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks)."""
    x, y = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    x -= x.mean()
    y -= y.mean()
    d = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / d) if d else float("nan")


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of `scores` for the positive `labels` (Mann-Whitney U, ties half)."""
    s = np.asarray(scores, float)
    lab = np.asarray(labels, bool)
    pos, neg = int(lab.sum()), int((~lab).sum())
    if not pos or not neg:
        return float("nan")
    r = _ranks(s)
    return float((r[lab].sum() - pos * (pos + 1) / 2) / (pos * neg))
