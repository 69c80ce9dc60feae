"""Drawing a compiled hypothesis: DOT text always; SVG/PNG through graphviz `dot` when it is
installed, else a matplotlib drawing (so a picture is always written).

Groups are drawn as clusters; every claimed edge is drawn once per port, labelled and styled by
port: q blue solid, k red dashed, v green dotted, in grey solid. No torch is imported here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from circuitdsl.ir import Claim, FeatureKind, Hypothesis, NodeId, NodeKind, Port

__all__ = ["to_dot", "write_drawing", "PORT_STYLE", "SUFFIXES"]

PORT_STYLE: dict[Port, tuple[str, str]] = {
    Port.Q: ("#1f77b4", "solid"),
    Port.K: ("#d62728", "dashed"),
    Port.V: ("#2ca02c", "dotted"),
    Port.IN: ("#555555", "solid"),
}
_MPL_STYLE = {"solid": "-", "dashed": "--", "dotted": ":"}
SUFFIXES = (".dot", ".gv", ".svg", ".png")


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(c: Claim) -> str:
    text = c.node.name
    if c.positions:
        text += " @ " + ", ".join(c.positions)
    if c.feature.kind is not FeatureKind.IDENTITY:
        text += "\n" + str(c.feature)
    return text


def _cluster_of(h: Hypothesis) -> dict[NodeId, str]:
    """Each node's cluster: the first declared group holding it (a DOT node lies in one cluster)."""
    out: dict[NodeId, str] = {}
    for name, nodes in h.groups:
        for n in nodes:
            if n in h.graph:
                out.setdefault(n, name)
    return out


def to_dot(h: Hypothesis) -> str:
    lines = [
        f"digraph {_quote(h.name)} {{",
        "  rankdir=BT;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f7f7f7", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        f"  label={_quote(f'{h.name}: {h.model.name}, {h.main_dataset}, ablate {h.ablation}')};",
    ]
    cluster = _cluster_of(h)
    claims = {c.node: c for c in h.claims}
    for i, (name, nodes) in enumerate(h.groups):
        members = [n for n in nodes if cluster.get(n) == name]
        if not members:
            continue
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_quote(name)}; style=dashed; color=\"#888888\";")
        lines += [f"    {_quote(n.name)} [label={_quote(_label(claims[n]))}];" for n in members]
        lines.append("  }")
    for c in h.claims:
        if c.node not in cluster:
            shape = ', shape=ellipse' if c.node.kind in (NodeKind.EMBED, NodeKind.POS, NodeKind.OUT) else ""
            lines.append(f"  {_quote(c.node.name)} [label={_quote(_label(c))}{shape}];")
    for e in h.edges:
        color, style = PORT_STYLE[e.port]
        lines.append(
            f"  {_quote(e.sender.name)} -> {_quote(e.receiver.name)} "
            f"[label={_quote(e.port.value)}, color={_quote(color)}, fontcolor={_quote(color)}, style={style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_drawing(h: Hypothesis, path, *, use_graphviz: bool = True) -> str:
    """Write `path` (.dot/.gv text, .svg or .png picture). Returns how: 'dot-text', 'graphviz' or 'matplotlib'."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot draw to `{path.name}`: use one of {', '.join(SUFFIXES)}")
    dot = to_dot(h)
    if suffix in (".dot", ".gv"):
        _atomic_write(path, dot.encode())
        return "dot-text"
    exe = shutil.which("dot") if use_graphviz else None
    if exe:
        proc = subprocess.run([exe, f"-T{suffix[1:]}"], input=dot.encode(), capture_output=True, check=False)
        if proc.returncode == 0 and proc.stdout:
            _atomic_write(path, proc.stdout)
            return "graphviz"
    _draw_matplotlib(h, path, suffix[1:])
    return "matplotlib"


def _column(n: NodeId) -> int:
    if n.kind in (NodeKind.EMBED, NodeKind.POS):
        return 0
    if n.kind is NodeKind.OUT:
        return 1 << 20
    return 1 + 2 * n.layer + (1 if n.kind is NodeKind.MLP else 0)


def _layout(h: Hypothesis) -> dict[NodeId, tuple[float, float]]:
    """Model order left to right (embeddings, layers, out); nodes of one column stacked."""
    cols: dict[int, list[NodeId]] = {}
    for c in h.claims:
        cols.setdefault(_column(c.node), []).append(c.node)
    pos = {}
    for x, key in enumerate(sorted(cols)):
        members = sorted(cols[key])
        for i, n in enumerate(members):
            pos[n] = (x * 2.2, (i - (len(members) - 1) / 2) * 1.3)
    return pos


def _draw_matplotlib(h: Hypothesis, path: Path, fmt: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    pos = _layout(h)
    xs = [p[0] for p in pos.values()] or [0]
    ys = [p[1] for p in pos.values()] or [0]
    width = max(6.0, (max(xs) - min(xs)) * 1.1 + 3)
    height = max(4.0, (max(ys) - min(ys)) * 1.2 + 3)
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    ax.set_title(f"{h.name}: {h.model.name}, dataset {h.main_dataset}, ablate {h.ablation}", fontsize=11)
    cluster = _cluster_of(h)
    for i, (name, nodes) in enumerate(h.groups):
        pts = [pos[n] for n in nodes if cluster.get(n) == name]
        if not pts:
            continue
        x0, x1 = min(p[0] for p in pts) - 0.8, max(p[0] for p in pts) + 0.8
        y0, y1 = min(p[1] for p in pts) - 0.55, max(p[1] for p in pts) + 0.55
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.05", fill=False,
                                    linestyle="--", edgecolor="#888888"))  # fmt: skip
        ax.text(x0 + 0.05, y1 + 0.08, name, fontsize=9, color="#555555", va="bottom")
    seen: dict[tuple[NodeId, NodeId], int] = {}
    for e in h.edges:
        k = seen.get((e.sender, e.receiver), 0)
        seen[(e.sender, e.receiver)] = k + 1
        color, style = PORT_STYLE[e.port]
        rad = 0.12 * k * (1 if k % 2 else -1)
        (x0, y0), (x1, y1) = pos[e.sender], pos[e.receiver]
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, color=color,
                                     linestyle=_MPL_STYLE[style], connectionstyle=f"arc3,rad={rad}",
                                     shrinkA=22, shrinkB=22, linewidth=1.4))  # fmt: skip
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + rad * 1.5 + 0.1 * k, e.port.value, color=color, fontsize=9,
                ha="center", va="center", bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))  # fmt: skip
    claims = {c.node: c for c in h.claims}
    for n, (x, y) in pos.items():
        ax.text(x, y, _label(claims[n]), ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.3", fc="#f7f7f7", ec="#333333"))  # fmt: skip
    handles = [Line2D([], [], color=c, linestyle=_MPL_STYLE[s], label=p.value) for p, (c, s) in PORT_STYLE.items()]
    ax.legend(handles=handles, title="port", loc="lower right", fontsize=8)
    ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    ax.set_ylim(min(ys) - 1.5, max(ys) + 1.5)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{fmt}")
    os.close(fd)
    try:
        fig.savefig(tmp, format=fmt, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
