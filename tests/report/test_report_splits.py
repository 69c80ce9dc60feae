"""Split components in the report (issue 15 item 5): the graph draws each claimed part as a node of its own,
boxed with the other parts of its component under a caption naming the component and the split; the page
lists every split (kind, weights file, digest, parts). Hypotheses compiled from the language tests' split
fixtures (a basis file and a tiny SAE for the two-layer native model); no torch."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from _build import hand_result

from circuitdsl.compiler import compile_file
from circuitdsl.ir import NodeId, NodeKind
from circuitdsl.report.html import render_html
from circuitdsl.report.svg import graph_svg, node_summary

LANG = Path(__file__).resolve().parents[1] / "language"

BODY = (
    'split a1.0 by subspace s from "splits/s2.npy"\n'
    'split m0 by sae "splits/sae_m0" latents 5, 3\n'
    "group readers = a1.1, m0[f3], m0[f5]\n"
    "edge embed -> m0[f3], m0[f5], m0[err] -> a1.1 -> out\n"
    "edge embed -> a1.0[s].q, a1.0[~s] -> out\n"
)


@pytest.fixture(scope="module")
def hyp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("splits")
    root = tmp / "golden"
    shutil.copytree(LANG / "golden" / "splits", root / "splits")
    shutil.copytree(LANG / "fixtures" / "native2m", tmp / "fixtures" / "native2m")
    f = root / "h.circuit"
    f.write_text(
        'model "../fixtures/native2m"\ndataset d = induction(n = 4, seed = 0, length = 8)\n' + BODY, encoding="utf-8"
    )
    r = compile_file(f)
    assert r.ok, r.render("concise")
    return r.hypothesis


def _rect(svg_fragment: str) -> tuple[float, float, float, float]:
    m = re.search(r'<rect x="([-\d.]+)" y="([-\d.]+)" width="([\d.]+)" height="([\d.]+)"', svg_fragment)
    x, y, w, h = (float(v) for v in m.groups())
    return x, y, x + w, y + h


def _node_rect(svg: str, name: str) -> tuple[float, float, float, float]:
    m = re.search(rf'<g class="node" data-node="{re.escape(name)}">.*?</g>', svg, re.DOTALL)
    assert m, f"no node {name}"
    return _rect(m.group(0)[m.group(0).index("</title>") :])


def _inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_graph_boxes_each_splits_parts_under_its_caption(hyp):
    svg = graph_svg(hyp, {})
    for part in ("a1.0[s]", "a1.0[~s]", "m0[f3]", "m0[f5]", "m0[err]"):
        assert f'data-node="{part}"' in svg
    assert 'data-node="a1.0"' not in svg and 'data-node="m0"' not in svg
    boxes = re.findall(r'<g class="split" data-split="([^"]+)" data-kind="(\w+)" data-parts="([^"]+)">(.*?)</g>', svg)
    found = {(s, k, p) for s, k, p, _ in boxes}
    # m0's parts in `readers` and m0[err] (in no group) are boxed apart: a box never crosses a group's edge
    assert found == {
        ("a1.0", "subspace", "a1.0[s] a1.0[~s]"),
        ("m0", "sae", "m0[f3] m0[f5]"),
        ("m0", "sae", "m0[err]"),
    }
    for s, _, p, body in boxes:
        box = _rect(body)
        title = re.search(r"<title>(.*?)</title>", body).group(1)
        assert title.startswith(f"{s} split by ")
        for part in p.split():
            assert _inside(_node_rect(svg, part), box), (part, box)
        # no other node is inside a split's box
        for other in re.findall(r'<g class="node" data-node="([^"]+)"', svg):
            if other not in p.split():
                assert not _overlap(_node_rect(svg, other), box), (other, s)
    assert "m0 split by SAE splits/sae_m0, latents 3, 5" in svg
    assert "a1.0: subspace s" in svg


def test_report_lists_the_splits(hyp):
    page = render_html(hand_result(), source_text=None, hypothesis=hyp)
    rows = dict(re.findall(r'<tr data-split="([^"]+)">(.*?)</tr>', page))
    assert set(rows) == {"a1.0", "m0"}
    assert "subspace <b>s</b>" in rows["a1.0"] and "splits/s2.npy" in rows["a1.0"]
    assert "SAE, latents 3, 5" in rows["m0"] and "splits/sae_m0" in rows["m0"]
    (sub, sae) = hyp.splits
    assert sub.digest and sub.digest in rows["a1.0"] and sae.digest in rows["m0"]
    # every part is listed; the unclaimed one says so
    assert 'class="unclaimed">m0[rest]</code> (unclaimed)' in rows["m0"]
    for part in ("m0[f3]", "m0[f5]", "m0[err]"):
        assert f'class="claimed">{part}</code>' in rows["m0"]
    assert page.count('id="splits"') == 1


def test_report_without_splits_has_no_split_table(hyp):
    import dataclasses

    plain = dataclasses.replace(hyp, splits=())
    assert 'id="splits"' not in render_html(hand_result(), source_text=None, hypothesis=plain)


def test_node_summary_never_ranges_over_parts():
    m = lambda layer, part=None: NodeId(NodeKind.MLP, layer, None, part)  # noqa: E731
    assert node_summary([m(3, "f1"), m(4), m(5)]) == "m3[f1], m4, m5"
    assert node_summary([m(3), m(4), m(5), m(6, "err")]) == "m3..m5, m6[err]"
    a = lambda head, part=None: NodeId(NodeKind.HEAD, 1, head, part)  # noqa: E731
    assert node_summary([a(0, "s"), a(0, "~s"), a(1), a(2)]) == "a1.0[s], a1.0[~s], a1.1, a1.2"
