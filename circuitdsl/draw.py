"""Drawing a compiled hypothesis: DOT text always; SVG/PNG through graphviz `dot` when it is
installed, else a matplotlib drawing (so a picture is always written).

Groups are drawn as clusters; the claimed parts of a split component (`split a9.6 by subspace s ...`) as
a cluster of their own, labelled with the component and how it is split (inside a group's cluster when
they are in the group); every claimed edge is drawn once per port, labelled and styled by
port: q blue solid, k red dashed, v green dotted, in grey solid. Large hypotheses (more than
COMPACT_EDGES edges, typically from `wire`) are drawn compactly: a wired run of MLPs is one box and
q, k, v into one head are one arrow (`view`). No torch is imported here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from circuitdsl.atomic import replacing, write_bytes
from circuitdsl.ir import Claim, FeatureKind, Hypothesis, NodeId, NodeKind, Port, Split, SplitKind

__all__ = [
    "to_dot",
    "view",
    "View",
    "Box",
    "Arrow",
    "write_drawing",
    "split_caption",
    "split_source",
    "PORT_STYLE",
    "SUFFIXES",
    "COMPACT_EDGES",
]

PORT_STYLE: dict[Port, tuple[str, str]] = {
    Port.Q: ("#1f77b4", "solid"),
    Port.K: ("#d62728", "dashed"),
    Port.V: ("#2ca02c", "dotted"),
    Port.IN: ("#555555", "solid"),
}
_MPL_STYLE: dict[str, Literal["-", "--", ":"]] = {"solid": "-", "dashed": "--", "dotted": ":"}
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


def split_source(s: Split, h: Hypothesis) -> str:
    """The split's basis file or SAE directory, relative to the hypothesis file's folder where it lies
    under it (as the file names it), else as recorded (absolute)."""
    if h.source_path:
        rel = os.path.relpath(s.source, os.path.dirname(os.path.abspath(h.source_path)))
        if not rel.startswith(".."):
            return rel
    return s.source


def split_caption(s: Split, h: Hypothesis) -> str:
    """How a split component is labelled in drawings: `a9.6 split by subspace s`, `m0 split by SAE
    saes/tiny_m0, latents 3, 17`."""
    if s.kind is SplitKind.SUBSPACE:
        return f"{s.node.name} split by subspace {s.name}"
    latents = ", ".join(str(i) for i in s.latents) or "none named"
    return f"{s.node.name} split by SAE {split_source(s, h)}, latents {latents}"


COMPACT_EDGES = 40
"""Hypotheses with more claimed edges than this are drawn compactly (see `view`)."""
QKV_STYLE = ("#7b3294", "solid")
"""An edge into all three ports q, k, v of a head, drawn as one (compact drawings only)."""


@dataclass(frozen=True)
class Box:
    """One box of the drawing: a claimed node, or a run of wired MLPs drawn as one (`m0..m29`)."""

    key: str
    label: str
    members: tuple[NodeId, ...]
    shape: str = "box"


@dataclass(frozen=True)
class Arrow:
    sender: str
    receiver: str
    label: str
    color: str
    style: str


@dataclass(frozen=True)
class View:
    """What is drawn: boxes in model order, arrows, each group's boxes (clusters), and each split
    component's claimed parts (`splits`: its caption and its parts' boxes)."""

    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]
    clusters: tuple[tuple[str, tuple[str, ...]], ...]
    compact: bool
    splits: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _cluster_of(h: Hypothesis) -> dict[NodeId, str]:
    """Each node's cluster: the first declared group holding it (a DOT node lies in one cluster)."""
    out: dict[NodeId, str] = {}
    for name, nodes in h.groups:
        for n in nodes:
            if n in h.graph:
                out.setdefault(n, name)
    return out


def _mlp_runs(h: Hypothesis, cluster: dict[NodeId, str]) -> list[tuple[NodeId, ...]]:
    """Maximal runs (3 or more) of claimed MLPs of consecutive layers, claimed alike, in one cluster,
    with every forward edge among them claimed (a wired backbone)."""
    claims = {c.node: c for c in h.claims}
    mlps = sorted(n for n in claims if n.kind is NodeKind.MLP and n.part is None)  # (parts: drawn with their split)
    edges = {(e.sender, e.receiver) for e in h.edges}

    def joins(run: list[NodeId], n: NodeId) -> bool:
        first = claims[run[0]]
        last = run[-1].layer
        return (
            last is not None
            and n.layer == last + 1
            and (claims[n].feature, claims[n].positions) == (first.feature, first.positions)
            and cluster.get(n) == cluster.get(run[0])
            and all((m, n) in edges for m in run)
        )

    runs: list[list[NodeId]] = []
    for n in mlps:
        if runs and joins(runs[-1], n):
            runs[-1].append(n)
        else:
            runs.append([n])
    return [tuple(r) for r in runs if len(r) >= 3]


def _part(run_of: dict[NodeId, tuple[NodeId, ...]], nodes: set[NodeId], word: str) -> str:
    """`from m0..m7 ` when an arrow leaves (or enters) only part of a run of MLPs, else ''."""
    first = next(iter(nodes))
    run = run_of.get(first)
    if run is None or len(nodes) == len(run):
        return ""
    lo, hi = min(nodes), max(nodes)
    span = lo.name if lo == hi else f"{lo.name}..{hi.name}"
    assert lo.layer is not None and hi.layer is not None  # (runs are of MLPs)
    if len(nodes) != hi.layer - lo.layer + 1:
        span = f"{len(nodes)} of " + span
    return f"{word}{span} "


def view(h: Hypothesis) -> View:
    """The drawing's content. Small hypotheses: one box per node and one arrow per edge and port.
    Large ones (more than COMPACT_EDGES edges): a wired run of MLPs is one box (`m0..m29`, the edges
    among them implied), parallel arrows between two boxes merge per port, and q, k, v into one
    head become one dark arrow labelled `qkv`."""
    cluster = _cluster_of(h)
    claims = {c.node: c for c in h.claims}
    compact = len(h.edges) > COMPACT_EDGES
    box_of: dict[NodeId, str] = {}
    boxes: list[Box] = []
    runs = _mlp_runs(h, cluster) if compact else []
    run_of = {n: r for r in runs for n in r}
    for c in h.claims:
        n = c.node
        if n in run_of:
            run = run_of[n]
            key = f"{run[0].name}..{run[-1].name}"
            box_of[n] = key
            if n == run[0]:
                label = f"{key}\n{len(run)} MLPs, wired" + _label(c)[len(n.name) :]
                boxes.append(Box(key, label, run))
            continue
        box_of[n] = n.name
        shape = "ellipse" if n.kind in (NodeKind.EMBED, NodeKind.POS, NodeKind.OUT) else "box"
        boxes.append(Box(n.name, _label(c), (n,), shape))
    ports: dict[tuple[str, str], set[Port]] = {}
    ends: dict[tuple[str, str], tuple[set[NodeId], set[NodeId]]] = {}
    for e in h.edges:
        a, b = box_of[e.sender], box_of[e.receiver]
        if a == b:
            continue  # inside a wired run
        ports.setdefault((a, b), set()).add(e.port)
        s_set, r_set = ends.setdefault((a, b), (set(), set()))
        s_set.add(e.sender)
        r_set.add(e.receiver)
    arrows: list[Arrow] = []
    for (a, b), ps in ports.items():
        prefix = _part(run_of, ends[(a, b)][0], "from ") + _part(run_of, ends[(a, b)][1], "to ")
        if compact and {Port.Q, Port.K, Port.V} <= ps:
            arrows.append(Arrow(a, b, prefix + "qkv", *QKV_STYLE))
            ps = ps - {Port.Q, Port.K, Port.V}
        for p in sorted(ps, key=lambda p: ("q", "k", "v", "in").index(p.value)):
            arrows.append(Arrow(a, b, prefix + p.value, *PORT_STYLE[p]))
    clusters = []
    for name, nodes in h.groups:
        keys = tuple(dict.fromkeys(box_of[n] for n in nodes if cluster.get(n) == name and n in claims))
        if keys:
            clusters.append((name, keys))
    splits = []
    for s in h.splits:
        keys = tuple(box_of[p] for p in s.parts if p in claims)
        if keys:
            splits.append((split_caption(s, h), keys))
    return View(tuple(boxes), tuple(arrows), tuple(clusters), compact, tuple(splits))


def _split_subgraphs(v: View, keys: tuple[str, ...], indent: str, boxes: dict[str, Box], first: int) -> list[str]:
    """DOT lines for `keys` (the boxes of one cluster, or of none): the parts of each split component in
    a subgraph cluster of their own, captioned by the split; the other boxes as they are."""
    lines: list[str] = []
    done: set[str] = set()
    for j, (caption, parts) in enumerate(v.splits):
        mine = [k for k in parts if k in keys]
        if not mine:
            continue
        lines.append(f"{indent}subgraph cluster_split_{first}_{j} {{")
        lines.append(
            f'{indent}  label={_quote(caption)}; style="rounded,dotted"; color="#7b3294"; fontcolor="#7b3294";'
        )
        lines += [f"{indent}  {_box_dot(boxes[k])}" for k in mine]
        lines.append(f"{indent}}}")
        done.update(mine)
    lines += [f"{indent}{_box_dot(boxes[k])}" for k in keys if k not in done]
    return lines


def _box_dot(b: Box) -> str:
    shape = f", shape={b.shape}" if b.shape != "box" else ""
    return f"{_quote(b.key)} [label={_quote(b.label)}{shape}];"


def to_dot(h: Hypothesis) -> str:
    v = view(h)
    lines = [
        f"digraph {_quote(h.name)} {{",
        "  rankdir=BT;",
        "  newrank=true;",  # graphviz's old ranking fails ("trouble in init_rank") on wired hypotheses with clusters
        '  node [shape=box, style="rounded,filled", fillcolor="#f7f7f7", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        f"  label={_quote(f'{h.name}: {h.model.name}, {h.main_dataset}, ablate {h.ablation}')};",
    ]
    boxes = {b.key: b for b in v.boxes}
    in_cluster: set[str] = set()
    for i, (name, keys) in enumerate(v.clusters):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f'    label={_quote(name)}; style=dashed; color="#888888";')
        lines += _split_subgraphs(v, keys, "    ", boxes, i)
        lines.append("  }")
        in_cluster.update(keys)
    rest = tuple(b.key for b in v.boxes if b.key not in in_cluster)
    lines += _split_subgraphs(v, rest, "  ", boxes, len(v.clusters))
    for a in v.arrows:
        lines.append(
            f"  {_quote(a.sender)} -> {_quote(a.receiver)} "
            f"[label={_quote(a.label)}, color={_quote(a.color)}, fontcolor={_quote(a.color)}, style={a.style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, data: bytes) -> None:
    write_bytes(path, data)


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
    failed = ""
    if exe:
        proc = subprocess.run([exe, f"-T{suffix[1:]}"], input=dot.encode(), capture_output=True, check=False)
        if proc.returncode == 0 and proc.stdout:
            _atomic_write(path, proc.stdout)
            return "graphviz"
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        failed = f"; graphviz `dot` failed: {err[0] if err else f'exit {proc.returncode}'}"
    _draw_matplotlib(h, path, suffix[1:])
    return "matplotlib" + failed


def _column(n: NodeId) -> int:
    if n.kind in (NodeKind.EMBED, NodeKind.POS):
        return 0
    if n.kind is NodeKind.OUT:
        return 1 << 20
    assert n.layer is not None  # (heads and MLPs, whole or parts, have a layer)
    return 1 + 2 * n.layer + (1 if n.kind is NodeKind.MLP else 0)


def _layout(v: View) -> dict[str, tuple[float, float]]:
    """Model order left to right (embeddings, layers, out); boxes of one column stacked. A run of
    MLPs sits in the column of its first member, below the heads."""
    cols: dict[int, list[Box]] = {}
    for b in v.boxes:
        cols.setdefault(_column(b.members[0]), []).append(b)
    pos: dict[str, tuple[float, float]] = {}
    for x, key in enumerate(sorted(cols)):
        members = sorted(cols[key], key=lambda b: (len(b.members) > 1, b.members[0].sort_key()))
        for i, b in enumerate(members):
            pos[b.key] = (x * 2.2, (i - (len(members) - 1) / 2) * 1.3)
    return pos


def _draw_matplotlib(h: Hypothesis, path: Path, fmt: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    v = view(h)
    pos = _layout(v)
    xs = [p[0] for p in pos.values()] or [0]
    ys = [p[1] for p in pos.values()] or [0]
    width = max(6.0, (max(xs) - min(xs)) * 1.1 + 3)
    height = max(4.0, (max(ys) - min(ys)) * 1.2 + 3)
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    ax.set_title(f"{h.name}: {h.model.name}, dataset {h.main_dataset}, ablate {h.ablation}", fontsize=11)
    for name, keys in v.clusters:
        pts = [pos[k] for k in keys]
        x0, x1 = min(p[0] for p in pts) - 0.8, max(p[0] for p in pts) + 0.8
        y0, y1 = min(p[1] for p in pts) - 0.55, max(p[1] for p in pts) + 0.55
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.05", fill=False,
                                    linestyle="--", edgecolor="#888888"))  # fmt: skip
        ax.text(x0 + 0.05, y1 + 0.08, name, fontsize=9, color="#555555", va="bottom")
    for caption, keys in v.splits:  # a split component's parts share its column
        pts = [pos[k] for k in keys]
        x0, x1 = min(p[0] for p in pts) - 0.7, max(p[0] for p in pts) + 0.7
        y0, y1 = min(p[1] for p in pts) - 0.45, max(p[1] for p in pts) + 0.45
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.05", fill=False,
                                    linestyle=":", edgecolor="#7b3294"))  # fmt: skip
        ax.text(x0 + 0.05, y0 - 0.08, caption, fontsize=8, color="#7b3294", va="top")
    seen: dict[tuple[str, str], int] = {}
    thin = v.compact
    for a in v.arrows:
        k = seen.get((a.sender, a.receiver), 0)
        seen[(a.sender, a.receiver)] = k + 1
        rad = 0.12 * k * (1 if k % 2 else -1) + (0.08 if thin else 0.0)
        (x0, y0), (x1, y1) = pos[a.sender], pos[a.receiver]
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10 if thin else 12, color=a.color,
                                     linestyle=_MPL_STYLE[a.style], connectionstyle=f"arc3,rad={rad}",
                                     shrinkA=22, shrinkB=22, linewidth=0.7 if thin else 1.4, alpha=0.6 if thin else 1.0))  # fmt: skip
        if not thin:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + rad * 1.5 + 0.1 * k, a.label, color=a.color, fontsize=9,
                    ha="center", va="center", bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))  # fmt: skip
    for b in v.boxes:
        x, y = pos[b.key]
        ax.text(x, y, b.label, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.3", fc="#f7f7f7", ec="#333333"))  # fmt: skip
    handles = [Line2D([], [], color=c, linestyle=_MPL_STYLE[s], label=p.value) for p, (c, s) in PORT_STYLE.items()]
    if v.compact:
        handles.append(Line2D([], [], color=QKV_STYLE[0], linestyle=_MPL_STYLE[QKV_STYLE[1]], label="qkv"))
    ax.legend(handles=handles, title="port", loc="lower right", fontsize=8)
    ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    ax.set_ylim(min(ys) - 1.5, max(ys) + 1.5)
    with replacing(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight")
