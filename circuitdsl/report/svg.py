"""Hand-written inline SVG for the report: the hypothesis graph coloured by minimality cost, and
attention heatmaps. Plain strings, no torch, no matplotlib; every element id is prefixed so that
several drawings can share one page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from circuitdsl.draw import PORT_STYLE
from circuitdsl.ir import FeatureKind, Hypothesis, NodeId, NodeKind, Port

__all__ = ["graph_svg", "heatmap_svg", "cost_color", "COST_STOPS"]

_DASH = {"solid": "", "dashed": "7,4", "dotted": "2,3"}
# a sequential scale for "how much of the recoverable gap is lost when the node is removed"
COST_STOPS = ((0.0, (255, 255, 255)), (0.25, (254, 224, 139)), (0.5, (253, 174, 97)), (0.75, (244, 109, 67)), (1.0, (215, 48, 39)))
_NEG = (146, 197, 222)  # removing the node helps: a cool colour


def _esc(s: str) -> str:
    return html.escape(str(s), quote=True)


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(round(c)) for c in rgb)


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
    return 2 * n.layer + (1 if n.kind is NodeKind.MLP else 0)


NW, NH, COLW, ROWH = 132, 50, 210, 72


def graph_svg(h: Hypothesis, costs: dict[str, tuple[float | None, float | None, bool]], *, uid: str = "g") -> str:
    """The claimed graph, model order left to right; nodes grouped as declared (dashed boxes), filled
    by `costs[name] = (fraction, raw, changed_nothing)`; edges styled by port. Includes its legend."""
    cluster: dict[NodeId, str] = {}
    for gname, members in h.groups:
        for n in members:
            if n in h.graph:
                cluster.setdefault(n, gname)
    group_rank = {g: i for i, (g, _) in enumerate(h.groups)}
    cols: dict[int, list[NodeId]] = {}
    for c in h.claims:
        cols.setdefault(_column(c.node), []).append(c.node)
    keys = sorted(cols)
    pos: dict[NodeId, tuple[float, float]] = {}
    tallest = max((len(v) for v in cols.values()), default=1)
    top = 46
    for x, key in enumerate(keys):
        members = sorted(cols[key], key=lambda n: (group_rank.get(cluster.get(n, ""), -1), n.sort_key()))
        # leave a gap between different groups in one column
        ys, y, prev = [], 0.0, object()
        for n in members:
            g = cluster.get(n)
            if ys and g != prev:
                y += 22
            ys.append(y)
            y += ROWH
            prev = g
        span = y - ROWH
        off = top + (max(tallest * ROWH + 22 * 2, span + ROWH) - span - ROWH) / 2
        for n, yy in zip(members, ys):
            pos[n] = (40 + x * COLW, off + yy)
    width = 40 + len(keys) * COLW - (COLW - NW) + 40
    height = max((p[1] for p in pos.values()), default=top) + NH + 24
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
        by_col: dict[int, list[NodeId]] = {}
        for n, g in cluster.items():
            if g == gname:
                by_col.setdefault(_column(n), []).append(n)
        for members in by_col.values():
            xs = [pos[n][0] for n in members]
            ys = [pos[n][1] for n in members]
            x0, y0 = min(xs) - 10, min(ys) - 24
            parts.append(
                f'<rect class="grp" x="{x0}" y="{y0}" width="{NW + 20}" height="{max(ys) - min(ys) + NH + 34}" rx="8"/>'
                f'<text class="grp-label" x="{x0 + 8}" y="{y0 + 15}">{_esc(gname)}</text>'
            )
    # edges: one curve per port, entering the receiver at that port's pin (q top, k middle, v bottom)
    pair_ports: dict[tuple[NodeId, NodeId], list[Port]] = {}
    for e in h.edges:
        pair_ports.setdefault((e.sender, e.receiver), []).append(e.port)
    pin_y = {Port.Q: 0.26, Port.K: 0.5, Port.V: 0.74, Port.IN: 0.5}
    pins: set[tuple[NodeId, Port]] = set()
    for (s, r), ports in sorted(pair_ports.items()):
        (sx, sy), (rx, ry) = pos[s], pos[r]
        for p in sorted(ports):
            color, style = PORT_STYLE[p]
            pins.add((r, p))
            x0, y0 = sx + NW, sy + NH / 2
            x1, y1 = rx - 1, ry + NH * pin_y[p]
            dx = max(40.0, (x1 - x0) * 0.45)
            dash = f' stroke-dasharray="{_DASH[style]}"' if _DASH[style] else ""
            title = f"{s.name} -> {r.name}" + ("" if p is Port.IN else f".{p.value}")
            parts.append(
                f'<path class="edge" d="M{x0:.1f},{y0:.1f} C{x0 + dx:.1f},{y0:.1f} {x1 - dx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}" '
                f'stroke="{color}"{dash} marker-end="url(#{uid}-arr-{p.value})"><title>{_esc(title)}</title></path>'
            )
    # nodes
    for n, (x, y) in pos.items():
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
            tip.append(
                f"removal cost: {'n/a' if frac is None else f'{frac:+.3f}'} of the gap, raw {'n/a' if raw is None else f'{raw:+.4g}'}"
                + ("; removing it changed no example" if nothing else "")
            )
        dashed = ' stroke-dasharray="4,3"' if nothing else ""
        parts.append(
            f'<g class="node" data-node="{_esc(n.name)}"><title>{_esc(chr(10).join(tip))}</title>'
            f'<rect x="{x}" y="{y}" width="{NW}" height="{NH}" rx="{shape_rx}" fill="{fill}"'
            f'{dashed}/>'
            f'<text x="{x + NW / 2}" y="{y + 17}" class="nname" fill="{tc}">{_esc(n.name + where)}</text>'
            f'<text x="{x + NW / 2}" y="{y + 31}" class="nfeat" fill="{tc}">{_esc(_short(feat, 22))}</text>'
            f'<text x="{x + NW / 2}" y="{y + 44}" class="ncost" fill="{tc}">{_esc(cost)}</text></g>'
        )
    for n, p in sorted(pins, key=lambda t: (t[0].sort_key(), t[1])):
        if p is Port.IN:
            continue
        x, y = pos[n]
        color = PORT_STYLE[p][0]
        parts.append(f'<text class="pin" x="{x + 4}" y="{y + NH * pin_y[p] + 3.5:.1f}" fill="{color}">{p.value}</text>')
    # column captions
    for x, key in enumerate(keys):
        cap = "embeddings" if key == -1 else "output" if key == 1 << 20 else (f"layer {key // 2}" + (" MLP" if key % 2 else ""))
        parts.append(f'<text class="colcap" x="{40 + x * COLW + NW / 2}" y="22">{cap}</text>')
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="hypothesis graph">' + "".join(parts) + "</svg>"
    )
    return svg + _legend(uid, vmax)


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _legend(uid: str, vmax: float) -> str:
    stops = "".join(
        f'<stop offset="{t * 100:.0f}%" stop-color="{_hex(c)}"/>' for t, c in COST_STOPS
    )
    w = 220
    ticks = "".join(
        f'<text class="tick" x="{10 + w * t:.0f}" y="44">{vmax * t:.2g}</text>' for t in (0, 0.5, 1)
    )
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


def heatmap_svg(pattern: Sequence[Sequence[float]], tokens: Sequence[str], *, title: str, marks: dict[int, str] | None = None,
                cell: int = 14) -> str:
    """An attention pattern as an SVG heatmap: rows are query positions, columns key positions.
    Each cell's tooltip gives the query, key and weight; `marks` labels named positions."""
    n = len(tokens)
    marks = marks or {}
    lab = 64
    w = lab + n * cell + 8
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
    for i, t in enumerate(tokens):
        label = _short(t, 7) + (f" {marks[i]}" if i in marks else "")
        cls = "hlab m" if i in marks else "hlab"
        out.append(f'<text class="{cls}" x="{lab - 3}" y="{top + i * cell + cell - 3}" text-anchor="end">{_esc(label)}</text>')
        x = lab + i * cell + cell - 4
        y = top + n * cell + 4
        out.append(
            f'<text class="{cls}" x="{x}" y="{y}" transform="rotate(-90 {x} {y})" text-anchor="end">{_esc(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
