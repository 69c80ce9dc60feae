"""The hypothesis graph fits the page: wide hypotheses collapse their big groups and wrap onto rows;
small ones are drawn node by node exactly as before. Compiles the zoo's files (no torch)."""

import hashlib
import html
import re
from pathlib import Path

import pytest

from circuitdsl.compiler import compile_file
from circuitdsl.draw import PORT_STYLE
from circuitdsl.ir import NodeId, NodeKind, Port
from circuitdsl.report.svg import (
    COLLAPSE_OVER,
    PAGE_WIDTH,
    cost_color,
    graph_svg,
    node_summary,
)

ROOT = Path(__file__).resolve().parents[2]


def _hyp(name: str):
    c = compile_file(str(ROOT / "hypotheses" / name))
    assert c.hypothesis is not None, c.render("full")
    return c.hypothesis


def _costs(h):
    """Distinct fake costs per node: (fraction, raw, changed_nothing), one n/a, one negative."""
    out = {}
    for i, c in enumerate(h.claims):
        if c.node.kind is NodeKind.OUT:
            continue
        out[c.node.name] = (round(0.013 * i, 3), round(-0.1 * i, 3), False)
    return out


def _graph(svg: str) -> str:
    return re.search(r'<svg[^>]*class="graph".*?</svg>', svg, re.DOTALL).group(0)


def _size(svg: str) -> tuple[float, float]:
    m = re.search(r'<svg[^>]*class="graph"[^>]*width="([\d.]+)" height="([\d.]+)"', svg)
    return float(m.group(1)), float(m.group(2))


def _titles(svg: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", svg, re.DOTALL)]


@pytest.fixture(scope="module")
def ioi():
    h = _hyp("ioi_smollm2.circuit")
    costs = _costs(h)
    costs["m7"] = (0.97, -5.9, False)  # the backbone's worst member
    costs["m13"] = (-0.05, 0.3, False)
    costs["m21"] = (None, None, False)
    return h, costs, _graph(graph_svg(h, costs, uid="hg"))


def test_wide_hypothesis_fits_the_page(ioi):
    h, _, svg = ioi
    width, height = _size(svg)
    assert width <= PAGE_WIDTH
    assert f'viewBox="0 0 {width:.0f} {height:.0f}"' in svg  # drawn at 1:1, text keeps its size
    assert 'data-rows="' in svg and int(re.search(r'data-rows="(\d+)"', svg).group(1)) >= 2
    # node-by-node it would have been ~9000 px wide
    assert len({n.layer for n in h.claimed_nodes if n.kind is NodeKind.MLP}) == 30


def test_backbone_is_one_box_with_its_member_count_and_cost_spread(ioi):
    h, costs, svg = ioi
    boxes = re.findall(
        r'<g class="node collapsed" data-group="([^"]+)" data-members="([^"]+)">(.*?)</g>', svg, re.DOTALL
    )
    assert [b[0] for b in boxes] == ["backbone"]
    _, members, body = boxes[0]
    backbone = dict(h.groups)["backbone"]
    assert members.split() == [n.name for n in sorted(backbone)]
    assert len(backbone) == 31 > COLLAPSE_OVER
    assert ">embed, m0..m29<" in body and ">31 nodes<" in body
    # filled by the members' median, not by the worst member (m7); the label and strip give the spread
    finite = sorted(f for n in backbone if (f := costs[n.name][0]) is not None)
    med = (finite[len(finite) // 2] + finite[(len(finite) - 1) // 2]) / 2  # by hand, not statistics.median
    assert med < 0.5 and max(finite) == 0.97 and min(finite) == -0.05
    assert re.search(r'<rect x="[\d.]+" y="[\d.]+" width="132" height="50" rx="6" fill="([^"]+)"', body).group(
        1
    ) == cost_color(med, 1.0)
    assert cost_color(med, 1.0) != cost_color(0.97, 1.0)
    assert f">{med:+.2f} [-0.05, +0.97]<" in body
    assert 'data-min="-0.050"' in body and f'data-median="{med:+.3f}"' in body and 'data-max="+0.970"' in body
    tip = html.unescape(re.search(r"<title>(.*?)</title>", body, re.DOTALL).group(1))
    assert "group backbone: embed, m0..m29" in tip
    n_internal = sum(1 for e in h.edges if e.sender in backbone and e.receiver in backbone)
    assert n_internal == 31 * 30 // 2
    assert f"{n_internal} claimed edges among them not drawn" in tip
    assert f"min -0.050 (m13), median {med:+.3f}, max +0.970 (m7)" in tip and "filled by the median removal cost" in tip
    # every member's cost can be read off the tooltip, n/a included
    for n in backbone:
        frac, _, _ = costs[n.name]
        want = f"  {n.name}: " + ("n/a" if frac is None else f"{frac:+.3f}") + " of the gap"
        assert want in tip, n.name
    # the box sits in its dashed group frame, labelled with the group's name
    assert ">backbone</text>" in svg
    # members are not drawn one by one
    assert 'data-node="m7"' not in svg and 'data-node="embed"' not in svg


def test_every_claimed_node_is_named_and_heads_are_drawn_one_by_one(ioi):
    h, costs, svg = ioi
    drawn = set(re.findall(r'<g class="node" data-node="([^"]+)">', svg))
    members = set(re.search(r'data-members="([^"]+)"', svg).group(1).split())
    heads = {n.name for n in h.claimed_nodes if n.kind is NodeKind.HEAD}
    assert len(heads) == 15 and heads <= drawn
    assert drawn | members == {n.name for n in h.claimed_nodes}
    assert not drawn & members
    text = " ".join(_titles(svg))
    for n in h.claimed_nodes:
        assert re.search(rf"(^|\W){re.escape(n.name)}(\W|$)", text), n.name
    # each head keeps its own fill and cost label
    a = re.search(r'<g class="node" data-node="a23\.3">.*?</g>', svg, re.DOTALL).group(0)
    assert f'fill="{cost_color(costs["a23.3"][0], 1.0)}"' in a


def test_edges_to_the_box_merge_per_end_and_port_and_keep_port_styles(ioi):
    h, _, svg = ioi
    backbone = set(dict(h.groups)["backbone"])
    paths = re.findall(r'<path class="edge"([^>]*)><title>(.*?)</title></path>', svg, re.DOTALL)

    # one curve per (drawn sender, drawn receiver, port)
    def end(n):
        return "backbone" if n in backbone else n.name

    want = {
        (end(e.sender), end(e.receiver), e.port)
        for e in h.edges
        if not (e.sender in backbone and e.receiver in backbone)
    }
    assert len(paths) == len(want) < 400 < len(h.edges)
    by_port = {p: 0 for p in Port}
    for attrs, _ in paths:
        color = re.search(r'stroke="(#[0-9a-f]{6})"', attrs).group(1)
        port = next(p for p in Port if attrs.endswith(f'marker-end="url(#hg-arr-{p.value})"'))
        assert color == PORT_STYLE[port][0]
        dash = re.search(r'stroke-dasharray="([^"]+)"', attrs)
        assert (dash.group(1) if dash else None) == {"solid": None, "dashed": "7,4", "dotted": "2,3"}[
            PORT_STYLE[port][1]
        ]
        by_port[port] += 1
    assert by_port == {p: sum(1 for w in want if w[2] is p) for p in Port}
    assert by_port[Port.Q] and by_port[Port.K] and by_port[Port.V]
    # a merged edge says how many claimed edges it stands for
    titles = [html.unescape(t) for _, t in paths]
    n = sum(1 for e in h.edges if e.sender in backbone and e.receiver.name == "a5.6" and e.port is Port.Q)
    assert n == 6
    assert f"group backbone -> a5.6.q: {n} claimed edges, from embed, m0..m4" in titles
    assert "a29.1 -> group backbone: 1 claimed edge, into m29" in titles  # a layer's MLP reads its heads
    assert "a23.3 -> group backbone: 7 claimed edges, into m23..m29" in titles
    assert "a23.3 -> a29.1.q" in titles  # edges between heads are drawn one by one


def test_small_hypothesis_is_drawn_node_by_node_as_before():
    h = _hyp("induction_refined.circuit")
    svg = _graph(graph_svg(h, _costs(h), uid="hg"))
    width, _ = _size(svg)
    assert width == 40 + 4 * 210 - (210 - 132) + 40  # embeddings (embed, pos), layer 0, layer 1, output
    assert "collapsed" not in svg and "data-rows" not in svg and "data-dense" not in svg
    nodes = re.findall(r'<g class="node" data-node="([^"]+)">', svg)
    assert sorted(nodes) == sorted(n.name for n in h.claimed_nodes)
    assert len(re.findall(r'<path class="edge"', svg)) == len(h.edges)
    titles = [html.unescape(t) for t in re.findall(r'<path class="edge"[^>]*><title>(.*?)</title>', svg)]
    assert sorted(titles) == sorted(str(e) for e in h.edges)


def test_small_hypothesis_renders_byte_for_byte_as_before_the_wide_layout():
    # md5 of graph_svg's output for these costs, taken before wide graphs were collapsed and wrapped
    h = _hyp("induction_refined.circuit")
    costs = {c.node.name: ((i * 0.37) % 1.3 - 0.2, i * 0.1, i % 7 == 3) for i, c in enumerate(h.claims)}
    assert hashlib.md5(graph_svg(h, costs, uid="hg").encode()).hexdigest() == "c4fd2ab7ec6211e49725aa5350e92b42"


@pytest.mark.parametrize("name", ["induction_naive.circuit", "induction_refined.circuit"])
def test_small_hypotheses_do_not_depend_on_the_page_width_limit(name):
    h = _hyp(name)
    costs = _costs(h)
    assert graph_svg(h, costs, uid="x") == graph_svg(h, costs, uid="x", max_width=10_000)


def test_a_narrow_page_wraps_without_collapsing_small_groups():
    h = _hyp("induction_refined.circuit")
    svg = _graph(graph_svg(h, _costs(h), max_width=500))
    width, _ = _size(svg)
    assert width <= 500 and 'data-rows="' in svg and "collapsed" not in svg  # no group has more than 8 nodes
    assert sorted(re.findall(r'<g class="node" data-node="([^"]+)">', svg)) == sorted(n.name for n in h.claimed_nodes)
    assert len(re.findall(r'<path class="edge"', svg)) == len(h.edges)


def test_every_zoo_hypothesis_fits_the_page():
    for path in sorted((ROOT / "hypotheses").glob("*.circuit")):
        h = _hyp(path.name)
        svg = _graph(graph_svg(h, _costs(h)))
        assert _size(svg)[0] <= PAGE_WIDTH, path.name
        members = set()
        for m in re.findall(r'data-members="([^"]+)"', svg):
            members |= set(m.split())
        drawn = set(re.findall(r'<g class="node" data-node="([^"]+)">', svg))
        assert drawn | members == {n.name for n in h.claimed_nodes}, path.name


def test_node_summary_writes_ranges():
    m = [NodeId(NodeKind.MLP, i) for i in range(30)]
    assert node_summary([NodeId(NodeKind.EMBED), *m]) == "embed, m0..m29"
    heads = [
        NodeId(NodeKind.HEAD, 8, 1),
        NodeId(NodeKind.HEAD, 14, 3),
        NodeId(NodeKind.HEAD, 14, 4),
        NodeId(NodeKind.HEAD, 14, 5),
    ]
    assert node_summary(reversed(heads)) == "a8.1, a14.3..a14.5"
    assert node_summary([m[0], m[1], m[3]]) == "m0, m1, m3"
