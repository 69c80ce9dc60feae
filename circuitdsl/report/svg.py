"""Hand-written inline SVG for the report: the hypothesis graph coloured by minimality cost, and
attention heatmaps. Plain strings, no torch, no matplotlib; every element id is prefixed so that
several drawings can share one page.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from circuitdsl.draw import PORT_STYLE, split_caption
from circuitdsl.ir import Claim, EdgeId, FeatureKind, Hypothesis, NodeId, NodeKind, Port, Split, SplitKind

Costs = Mapping[str, tuple[float | None, float | None, bool]]
"""costs[node name] = (fraction of the gap lost when it is removed, raw, removal changed nothing)."""

__all__ = ["COLLAPSE_OVER", "COST_STOPS", "PAGE_WIDTH", "cost_color", "graph_svg", "heatmap_svg", "node_summary"]

_DASH = {"solid": "", "dashed": "7,4", "dotted": "2,3"}
# a sequential scale for "how much of the recoverable gap is lost when the node is removed"
COST_STOPS = (
    (0.0, (255, 255, 255)),
    (0.25, (254, 224, 139)),
    (0.5, (253, 174, 97)),
    (0.75, (244, 109, 67)),
    (1.0, (215, 48, 39)),
)
_NEG = (146, 197, 222)  # removing the node helps: a cool colour


def _esc(s: str) -> str:
    return html.escape(str(s), quote=True)


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*tuple(int(round(c)) for c in rgb))


def cost_color(frac: float | None, vmax: float) -> str:
    """Fill colour of a node whose removal costs `frac` of the gap; None: no data (grey)."""
    if frac is None or not math.isfinite(frac):
        return "#eeeeee"
    if frac < 0:
        t = min(1.0, -frac / max(vmax, 1e-12))
        return _hex(tuple(255 + (c - 255) * t for c in _NEG))
    t = min(1.0, frac / max(vmax, 1e-12))
    for (t0, c0), (t1, c1) in zip(COST_STOPS, COST_STOPS[1:]):
        if t <= t1:
            u = (t - t0) / (t1 - t0)
            return _hex(tuple(a + (b - a) * u for a, b in zip(c0, c1)))
    return _hex(COST_STOPS[-1][1])


def _text_color(fill: str) -> str:
    r, g, b = (int(fill[i : i + 2], 16) for i in (1, 3, 5))
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 120 else "#222222"


def _column(n: NodeId) -> int:
    if n.kind in (NodeKind.EMBED, NodeKind.POS):
        return -1
    if n.kind is NodeKind.OUT:
        return 1 << 20
    assert n.layer is not None  # (heads and MLPs, whole or parts, have a layer)
    return 2 * n.layer + (1 if n.kind is NodeKind.MLP else 0)


NW, NH, COLW, ROWH = 132, 50, 210, 72
PAGE_WIDTH = 1100
"""The widest graph drawn as is; a wider one collapses its big groups, then wraps onto rows."""
DENSE_EDGES = 120
"""A graph drawing more curves than this fades them (hover one to see it)."""
SPLIT_CAP = 16
"""Room above the first part of a split component for its caption."""
COLLAPSE_OVER = 8
"""A group of more than this many nodes, spread over several columns, is drawn as one box when the
graph would be wider than the page."""


@dataclass(frozen=True)
class _Box:
    """A collapsed group: one box standing for all its members (those drawn in this group)."""

    group: str
    members: tuple[NodeId, ...]

    def sort_key(self) -> tuple[int, int, int, int, str]:
        return min(n.sort_key() for n in self.members)

    @property
    def name(self) -> str:
        return self.group


def _column_of(k: NodeId | _Box) -> int:
    return min(_column(n) for n in k.members) if isinstance(k, _Box) else _column(k)


def _follows(prev: NodeId, n: NodeId) -> bool:
    """Whether n comes right after prev in a range `m3..m7` / `a1.2..a1.5` (parts of split components are
    never in a range: `m3[f1]..m5[err]` would name other nodes)."""
    if n.kind is not prev.kind or n.part is not None or prev.part is not None or prev.layer is None:
        return False
    if n.kind is NodeKind.MLP:
        return n.layer == prev.layer + 1
    return n.kind is NodeKind.HEAD and n.layer == prev.layer and prev.head is not None and n.head == prev.head + 1


def node_summary(nodes: Iterable[NodeId]) -> str:
    """Nodes in model order as a range-like list: `embed, m0..m29`, `a8.1, a14.3..a14.5`."""
    runs: list[list[NodeId]] = []
    for n in sorted(set(nodes)):
        nxt = bool(runs) and _follows(runs[-1][-1], n)
        if nxt:
            runs[-1].append(n)
        else:
            runs.append([n])
    out = []
    for r in runs:
        if len(r) >= 3:
            out.append(f"{r[0].name}..{r[-1].name}")
        else:
            out.extend(n.name for n in r)
    return ", ".join(out)


def _collapsed_groups(h: Hypothesis, cluster: dict[NodeId, str], max_width: int) -> list[_Box]:
    """The groups drawn as one box: none if the graph fits `max_width` node by node; else every
    group of more than COLLAPSE_OVER members whose members lie in more than one column."""
    columns = {_column(c.node) for c in h.claims}
    if _width(len(columns)) <= max_width:
        return []
    boxes = []
    for gname, _ in h.groups:
        members = tuple(sorted(n for n, g in cluster.items() if g == gname))
        if len(members) > COLLAPSE_OVER and len({_column(n) for n in members}) > 1:
            boxes.append(_Box(gname, members))
    return boxes


def _width(ncols: int) -> float:
    return 40 + ncols * COLW - (COLW - NW) + 40


def graph_svg(
    h: Hypothesis,
    costs: Costs,
    *,
    uid: str = "g",
    max_width: int = PAGE_WIDTH,
) -> str:
    """The claimed graph, model order left to right; nodes grouped as declared (dashed boxes), filled
    by `costs[name] = (fraction, raw, changed_nothing)`; edges styled by port. Includes its legend.

    A graph wider than `max_width` draws each group of more than COLLAPSE_OVER nodes as one box
    (filled by its members' median cost, labelled median [min, max]; its tooltip lists every member's cost; edges to and from its
    members merge per other end and port), then, if still too wide, wraps its columns onto rows.

    The claimed parts of a split component (`a9.6[s]`, `a9.6[~s]`) are nodes of their own, drawn one under
    the other in the component's column inside a dotted box captioned by the component and how it is split."""
    cluster: dict[NodeId, str] = {}
    for gname, members in h.groups:
        for n in members:
            if n in h.graph:
                cluster.setdefault(n, gname)
    group_rank = {g: i for i, (g, _) in enumerate(h.groups)}
    boxes = _collapsed_groups(h, cluster, max_width)
    drawn: dict[NodeId, NodeId | _Box] = {c.node: c.node for c in h.claims}
    for b in boxes:
        drawn.update({n: b for n in b.members})
    group_of = {k: (k.group if isinstance(k, _Box) else cluster.get(k)) for k in drawn.values()}
    split_of: dict[NodeId | _Box, Split] = {p: s for s in h.splits for p in s.parts if drawn.get(p) == p}
    cols: dict[int, list[NodeId | _Box]] = {}
    for k in dict.fromkeys(drawn[c.node] for c in h.claims):
        cols.setdefault(_column_of(k), []).append(k)
    keys = sorted(cols)
    per_row = max(1, len(keys))
    if _width(len(keys)) > max_width:
        fit = max(1, int((max_width - 80 + COLW - NW) // COLW))
        per_row = -(-len(keys) // -(-len(keys) // fit))  # as even as rows allow
    rows = [keys[i : i + per_row] for i in range(0, len(keys), per_row)]
    pos: dict[NodeId | _Box, tuple[float, float]] = {}
    lift: dict[NodeId | _Box, float] = {}  # room above a node for its split's caption
    split_runs: list[tuple[Split, list[NodeId | _Box]]] = []
    cap_at: list[tuple[float, float, int]] = []
    row_top = 0.0
    row_of: dict[NodeId | _Box, int] = {}
    for ri, row in enumerate(rows):
        tallest = max(len(cols[key]) for key in row)
        top = row_top + 46
        bottom = top
        for xi, key in enumerate(row):
            in_col = sorted(cols[key], key=lambda k: (group_rank.get(group_of[k] or "", -1), k.sort_key()))
            # leave a gap between different groups in one column, and room for a split's caption above its parts
            ys: list[float] = []
            y = 0.0
            prev: tuple[str | None, Split | None] | None = None
            for k in in_col:
                g, sp = group_of[k], split_of.get(k)
                if ys and prev is not None and g != prev[0]:
                    y += 22
                if sp is not None and (prev is None or (g, sp) != prev):
                    lift[k] = SPLIT_CAP
                    y += SPLIT_CAP
                    split_runs.append((sp, []))
                elif sp is None and prev is not None and prev[1] is not None and g == prev[0]:
                    y += 10  # out of the split's box
                if sp is not None:
                    split_runs[-1][1].append(k)
                ys.append(y)
                y += ROWH
                prev = (g, sp)
            span = y - ROWH
            off = top + (max(tallest * ROWH + 22 * 2, span + ROWH) - span - ROWH) / 2
            for k, yy in zip(in_col, ys):
                pos[k] = (40 + xi * COLW, off + yy)
                row_of[k] = ri
                bottom = max(bottom, off + yy)
            cap_at.append((40 + xi * COLW + NW / 2, row_top + 22, key))
        row_top = bottom + NH + 24 + 30
    width = _width(max(len(r) for r in rows) if rows else 0)
    height = max((p[1] for p in pos.values()), default=46) + NH + 24
    vals = [abs(f) for f, _, _ in costs.values() if f is not None and math.isfinite(f)]
    vmax = max([1.0] + vals) if any(v > 1 for v in vals) else 1.0
    claims = {c.node: c for c in h.claims}

    parts: list[str] = []
    parts.append("<defs>")
    for p, (color, _) in PORT_STYLE.items():
        parts.append(
            f'<marker id="{uid}-arr-{p.value}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
        )
    parts.append("</defs>")
    # group boxes, one per (group, column)
    for gname, _ in h.groups:
        by_col: dict[int, list[NodeId | _Box]] = {}
        for n, g in cluster.items():
            if g == gname and drawn[n] not in by_col.get(_column_of(drawn[n]), []):
                by_col.setdefault(_column_of(drawn[n]), []).append(drawn[n])
        for in_grp in by_col.values():
            gx = min(pos[k][0] for k in in_grp) - 10
            top = min(pos[k][1] - lift.get(k, 0.0) for k in in_grp)
            bottom = max(pos[k][1] for k in in_grp) + NH + 10
            parts.append(
                f'<rect class="grp" x="{gx}" y="{top - 24}" width="{NW + 20}" height="{bottom - top + 24}" rx="8"/>'
                f'<text class="grp-label" x="{gx + 8}" y="{top - 9}">{_esc(gname)}</text>'
            )
    # split components: their claimed parts, one under the other, in a dotted box captioned by the split
    for sp, run in split_runs:
        sx = pos[run[0]][0] - 5
        top = pos[run[0]][1] - SPLIT_CAP + 2
        bottom = max(pos[k][1] for k in run) + NH + 5
        caption = split_caption(sp, h)
        parts.append(
            f'<g class="split" data-split="{_esc(sp.node.name)}" data-kind="{sp.kind.value}" '
            f'data-parts="{_esc(" ".join(k.name for k in run))}"><title>{_esc(caption)}</title>'
            f'<rect x="{sx}" y="{top}" width="{NW + 10}" height="{bottom - top}" rx="7" fill="none" stroke="#7b3294" '
            f'stroke-dasharray="2,3"/><text class="split-label" x="{sx + 5}" y="{top + 11}" fill="#7b3294">'
            f"{_esc(_short(_split_short(sp), 26))}</text></g>"
        )
    # edges: one curve per port, entering the receiver at that port's pin (q top, k middle, v bottom);
    # edges to or from a collapsed group merge per (other end, port); edges inside one are not drawn
    pair_ports: dict[tuple[NodeId | _Box, NodeId | _Box], dict[Port, list[EdgeId]]] = {}
    internal: dict[NodeId | _Box, int] = {}  # (only a collapsed group holds edges inside it)
    for e in h.edges:
        s, r = drawn[e.sender], drawn[e.receiver]
        if s == r:
            internal[s] = internal.get(s, 0) + 1
            continue
        pair_ports.setdefault((s, r), {}).setdefault(e.port, []).append(e)
    pin_y = {Port.Q: 0.26, Port.K: 0.5, Port.V: 0.74, Port.IN: 0.5}
    pins: set[tuple[NodeId | _Box, Port]] = set()
    for (s, r), ports in sorted(pair_ports.items(), key=lambda t: (t[0][0].sort_key(), t[0][1].sort_key())):
        (sx, sy), (rx, ry) = pos[s], pos[r]
        for p in sorted(ports):
            color, style = PORT_STYLE[p]
            pins.add((r, p))
            x0, y0 = sx + NW, sy + NH / 2
            x1, y1 = rx - 1, ry + NH * pin_y[p]
            dx = max(40.0, (x1 - x0) * 0.45)
            c0, c1 = y0, y1
            if x1 < x0:  # wrapped onto a later row, or into a collapsed group drawn further left
                dx = 70.0
                if row_of[s] == row_of[r]:  # back along the row: loop below the nodes, not through them
                    c0 = c1 = max(y0, y1) + NH + 20
            dash = f' stroke-dasharray="{_DASH[style]}"' if _DASH[style] else ""
            title = _edge_title(s, r, p, ports[p])
            parts.append(
                f'<path class="edge" d="M{x0:.1f},{y0:.1f} C{x0 + dx:.1f},{c0:.1f} {x1 - dx:.1f},{c1:.1f} {x1:.1f},{y1:.1f}" '
                f'stroke="{color}"{dash} marker-end="url(#{uid}-arr-{p.value})"><title>{_esc(title)}</title></path>'
            )
    # nodes
    for k, (x, y) in pos.items():
        if isinstance(k, _Box):
            parts.append(_box_svg(k, x, y, claims, costs, vmax, internal.get(k, 0)))
            continue
        n = k
        c = claims[n]
        frac, raw, nothing = costs.get(n.name, (None, None, False))
        fill = cost_color(frac, vmax)
        tc = _text_color(fill)
        shape_rx = 22 if n.kind in (NodeKind.EMBED, NodeKind.POS, NodeKind.OUT) else 6
        feat = "" if c.feature.kind is FeatureKind.IDENTITY else str(c.feature)
        where = (" @ " + ", ".join(c.positions)) if c.positions else ""
        if n.name in costs and nothing:
            cost = "removal: no change"
        elif n.name in costs and frac is not None:
            cost = f"cost {frac + 0.0:+.2f}"
        elif n.name in costs:
            cost = "cost n/a"
        else:
            cost = ""
        tip = [f"{n.name}{where}", f"depends on {c.feature}"]
        if n.name in costs:
            tip.append(f"removal cost: {_cost_text(frac, raw, nothing)}")
        dashed = ' stroke-dasharray="4,3"' if nothing else ""
        parts.append(
            f'<g class="node" data-node="{_esc(n.name)}"><title>{_esc(chr(10).join(tip))}</title>'
            f'<rect x="{x}" y="{y}" width="{NW}" height="{NH}" rx="{shape_rx}" fill="{fill}"'
            f"{dashed}/>"
            f'<text x="{x + NW / 2}" y="{y + 17}" class="nname" fill="{tc}">{_esc(n.name + where)}</text>'
            f'<text x="{x + NW / 2}" y="{y + 31}" class="nfeat" fill="{tc}">{_esc(_short(feat, 22))}</text>'
            f'<text x="{x + NW / 2}" y="{y + 44}" class="ncost" fill="{tc}">{_esc(cost)}</text></g>'
        )
    for k, p in sorted(pins, key=lambda t: (t[0].sort_key(), t[1])):
        if p is Port.IN:
            continue
        x, y = pos[k]
        color = PORT_STYLE[p][0]
        parts.append(f'<text class="pin" x="{x + 4}" y="{y + NH * pin_y[p] + 3.5:.1f}" fill="{color}">{p.value}</text>')
    # column captions
    for cx, cy, key in cap_at:
        cap = (
            "embeddings"
            if key == -1
            else "output"
            if key == 1 << 20
            else (f"layer {key // 2}" + (" MLP" if key % 2 else ""))
        )
        parts.append(f'<text class="colcap" x="{cx}" y="{cy:.0f}">{cap}</text>')
    extra = ""
    if boxes:
        extra += f' data-collapsed="{_esc(" ".join(b.group for b in boxes))}"'
    if len(rows) > 1:
        extra += f' data-rows="{len(rows)}"'
    n_paths = sum(len(ports) for ports in pair_ports.values())
    if n_paths > DENSE_EDGES:
        # many curves: fade them so that nodes stay readable; the hovered one stands out
        extra += " data-dense"
        parts.insert(
            0,
            "<style>svg.graph[data-dense] .edge{opacity:.35;stroke-width:1.4}"
            "svg.graph[data-dense] .edge:hover{opacity:1;stroke-width:3.2}"
            "svg.graph[data-dense] .colcap,svg.graph[data-dense] .grp-label"
            "{paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}</style>",
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="hypothesis graph"{extra}>'
        + "".join(parts)
        + "</svg>"
    )
    return svg + _legend(uid, vmax)


def _split_short(s: Split) -> str:
    """The caption in the box: `a9.6: subspace s`, `m0: SAE, 3 latents` (the tooltip has the whole caption)."""
    if s.kind is SplitKind.SUBSPACE:
        return f"{s.node.name}: subspace {s.name}"
    return f"{s.node.name}: SAE, {len(s.latents)} latent{'s' if len(s.latents) != 1 else ''}"


def _cost_text(frac: float | None, raw: float | None, nothing: bool) -> str:
    return f"{'n/a' if frac is None else f'{frac:+.3f}'} of the gap, raw {'n/a' if raw is None else f'{raw:+.4g}'}" + (
        "; removing it changed no example" if nothing else ""
    )


def _edge_title(s: NodeId | _Box, r: NodeId | _Box, p: Port, edges: list[EdgeId]) -> str:
    """`a5.6 -> a9.2.q`; for a collapsed end, how many claimed edges the curve stands for, and which."""

    def end(k: NodeId | _Box) -> str:
        return f"group {k.name}" if isinstance(k, _Box) else k.name

    title = f"{end(s)} -> {end(r)}" + ("" if p is Port.IN else f".{p.value}")
    if isinstance(s, _Box) or isinstance(r, _Box):
        ends = (
            f"from {node_summary(e.sender for e in edges)}" if isinstance(s, _Box) else "",
            f"into {node_summary(e.receiver for e in edges)}" if isinstance(r, _Box) else "",
        )
        title += f": {len(edges)} claimed edge{'s' if len(edges) != 1 else ''}, " + " ".join(x for x in ends if x)
    return title


def _box_svg(
    b: _Box,
    x: float,
    y: float,
    claims: dict[NodeId, Claim],
    costs: Costs,
    vmax: float,
    internal: int,
) -> str:
    """A collapsed group: filled by its members' median cost (one critical member does not make the
    whole group look critical), labelled with the spread `median [min, max]`, and a strip under the box
    in the min / median / max colours; the tooltip lists each member, its claim and its cost, so that
    no node's cost is hidden."""
    known = [(costs[n.name][0], n) for n in b.members if n.name in costs]
    finite = sorted(((f, n) for f, n in known if f is not None and math.isfinite(f)), key=lambda t: t[0])
    med = statistics.median(f for f, _ in finite) if finite else None
    lo, hi = (finite[0], finite[-1]) if finite else ((math.nan, b.members[0]),) * 2  # (used only when finite)
    fill = cost_color(med, vmax)
    tc = _text_color(fill)
    summary = node_summary(b.members)
    label = summary if len(summary) <= 16 else f"{b.members[0].name} … {b.members[-1].name}"
    if known and all(costs[n.name][2] for _, n in known) and len(known) == len(b.members):
        cost, dashed = "removal: no change", ' stroke-dasharray="4,3"'
    elif med is not None:
        cost, dashed = f"{med + 0.0:+.2f} [{lo[0] + 0.0:+.2f}, {hi[0] + 0.0:+.2f}]", ""
    elif known:
        cost, dashed = "cost n/a", ""
    else:
        cost, dashed = "", ""
    tip = [
        f"group {b.group}: {summary}",
        f"{len(b.members)} nodes drawn as one box; {internal} claimed edge{'s' if internal != 1 else ''} among them not drawn",
    ]
    strip = ""
    if med is not None:
        spread = (
            f"removal cost over {len(finite)} of {len(b.members)} members: min {lo[0]:+.3f} ({lo[1].name}), "
            f"median {med:+.3f}, max {hi[0]:+.3f} ({hi[1].name})"
        )
        tip.append(f"filled by the median removal cost; label: median [min, max]; {spread}")
        w3 = NW / 3
        strip = (
            f'<g class="spread"><title>{_esc(spread)}</title>'
            + "".join(
                f'<rect x="{x + i * w3:.1f}" y="{y + NH + 5}" width="{w3:.1f}" height="5" fill="{cost_color(v, vmax)}" data-{k}="{v:+.3f}"/>'
                for i, (k, v) in enumerate((("min", lo[0]), ("median", med), ("max", hi[0])))
            )
            + "</g>"
        )
    tip.append("members (removal cost):")
    for n in b.members:
        c = claims[n]
        where = (" @ " + ", ".join(c.positions)) if c.positions else ""
        feat = "" if c.feature.kind is FeatureKind.IDENTITY else f", depends on {c.feature}"
        cost_n = f": {_cost_text(*costs[n.name])}" if n.name in costs else ""
        tip.append(f"  {n.name}{where}{feat}{cost_n}")
    feats = {claims[n].feature for n in b.members}
    line2 = f"{len(b.members)} nodes"
    if len(feats) == 1 and next(iter(feats)).kind is not FeatureKind.IDENTITY:
        line2 += f", {next(iter(feats))}"
    return (
        f'<g class="node collapsed" data-group="{_esc(b.group)}" data-members="{_esc(" ".join(n.name for n in b.members))}">'
        f"<title>{_esc(chr(10).join(tip))}</title>"
        f'<rect x="{x - 3}" y="{y - 3}" width="{NW + 6}" height="{NH + 6}" rx="8" fill="none" stroke="#444c56" stroke-width="1"/>'
        f'<rect x="{x}" y="{y}" width="{NW}" height="{NH}" rx="6" fill="{fill}"{dashed}/>'
        f'<text x="{x + NW / 2}" y="{y + 17}" class="nname" fill="{tc}" style="font-size:12px">{_esc(_short(label, 17))}</text>'
        f'<text x="{x + NW / 2}" y="{y + 31}" class="nfeat" fill="{tc}">{_esc(_short(line2, 22))}</text>'
        f'<text x="{x + NW / 2}" y="{y + 44}" class="ncost" fill="{tc}">{_esc(cost)}</text>{strip}</g>'
    )


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _legend(uid: str, vmax: float) -> str:
    stops = "".join(f'<stop offset="{t * 100:.0f}%" stop-color="{_hex(c)}"/>' for t, c in COST_STOPS)
    w = 220
    ticks = "".join(f'<text class="tick" x="{10 + w * t:.0f}" y="44">{vmax * t:.2g}</text>' for t in (0, 0.5, 1))
    ports = []
    for i, (p, (color, style)) in enumerate(PORT_STYLE.items()):
        x = 300 + i * 90
        dash = f' stroke-dasharray="{_DASH[style]}"' if _DASH[style] else ""
        ports.append(
            f'<line x1="{x}" y1="26" x2="{x + 40}" y2="26" stroke="{color}" stroke-width="2.2"{dash}/>'
            f'<text class="tickl" x="{x + 46}" y="30">{"into " + p.value if p is not Port.IN else "mlp/out in"}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="legend" viewBox="0 0 680 56" width="680" height="56" role="img" '
        f'aria-label="legend"><defs><linearGradient id="{uid}-cost">{stops}</linearGradient></defs>'
        f'<text class="tickl" x="10" y="12">removal cost (fraction of F(model) - F(baseline) lost)</text>'
        f'<rect x="10" y="18" width="{w}" height="14" fill="url(#{uid}-cost)" stroke="#999"/>{ticks}'
        f'<rect x="240" y="18" width="14" height="14" fill="{_hex(_NEG)}" stroke="#999"/>'
        f'<text class="tick" x="247" y="44">&lt;0</text>' + "".join(ports) + "</svg>"
    )


def heatmap_svg(
    pattern: Sequence[Sequence[float]],
    tokens: Sequence[str],
    *,
    title: str,
    marks: dict[int, str] | None = None,
    cell: int = 14,
    claimed_rows: Sequence[int] | None = None,
    claimed_at: Sequence[str] = (),
) -> str:
    """An attention pattern as an SVG heatmap: rows are query positions, columns key positions.
    Each cell's tooltip gives the query, key and weight; `marks` labels named positions.

    `claimed_rows`: for a head claimed only at some positions (`claimed_at`), the query rows there.
    They are outlined and labelled `clean` (the hypothesis keeps the head's output at these positions);
    every other row is greyed and labelled `scrubbed` (its output there is replaced per the ablation),
    so the plot does not suggest the whole matrix is claimed."""
    n = len(tokens)
    marks = marks or {}
    rows = None if claimed_rows is None else set(claimed_rows)
    lab = 64
    right = 58 if rows is not None else 0
    w = lab + n * cell + 8 + right
    hgt = 22 + n * cell + lab
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="heat" viewBox="0 0 {w} {hgt}" width="{w}" height="{hgt}" role="img" '
        f'aria-label="{_esc(title)}"><text class="htitle" x="{lab}" y="14">{_esc(title)}</text>'
    ]
    top = 22
    for q, row in enumerate(pattern):
        for k, v in enumerate(row):
            if k > q and v == 0.0:
                continue  # causal mask: leave blank
            shade = int(round(255 * (1 - max(0.0, min(1.0, v)))))
            out.append(
                f'<rect x="{lab + k * cell}" y="{top + q * cell}" width="{cell}" height="{cell}" '
                f'fill="rgb({shade},{shade},255)"><title>{_esc(f"q {q} {tokens[q]} -> k {k} {tokens[k]}: {v:.3f}")}</title></rect>'
            )
    out.append(f'<rect x="{lab}" y="{top}" width="{n * cell}" height="{n * cell}" fill="none" stroke="#bbb"/>')
    if rows is not None:
        at = ", ".join(claimed_at)
        for q in range(n):
            y = top + q * cell
            tx, ty = lab + n * cell + 4, y + cell - max(1, (cell - 8) // 2)
            if q in rows:
                tip = (
                    f"query {q} ({tokens[q]}): claimed at {at}; the hypothesis keeps this head's output here "
                    "(the pattern drawn is the clean run's)"
                )
                out.append(
                    f'<rect class="claimed-row" data-row="{q}" x="{lab - 1}" y="{y}" width="{n * cell + 2}" height="{cell}" '
                    f'fill="none" stroke="#d4701c" stroke-width="2"><title>{_esc(tip)}</title></rect>'
                    f'<text class="hrow clean" x="{tx}" y="{ty}">◀ clean</text>'
                )
            else:
                tip = (
                    f"query {q} ({tokens[q]}): not claimed here (claimed only at {at}); this head's output at this "
                    "position is scrubbed (replaced per the file's ablation)"
                )
                out.append(
                    f'<rect class="scrubbed-row" data-row="{q}" x="{lab}" y="{y}" width="{n * cell}" height="{cell}" '
                    f'fill="#ffffff" fill-opacity="0.45"><title>{_esc(tip)}</title></rect>'
                )
                if cell >= 9:
                    out.append(f'<text class="hrow scrubbed" x="{tx}" y="{ty}">scrubbed</text>')
    for i, t in enumerate(tokens):
        label = _short(t, 7) + (f" {marks[i]}" if i in marks else "")
        cls = "hlab m" if i in marks else "hlab"
        out.append(
            f'<text class="{cls}" x="{lab - 3}" y="{top + i * cell + cell - 3}" text-anchor="end">{_esc(label)}</text>'
        )
        x = lab + i * cell + cell - 4
        y = top + n * cell + 4
        out.append(
            f'<text class="{cls}" x="{x}" y="{y}" transform="rotate(-90 {x} {y})" text-anchor="end">{_esc(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
