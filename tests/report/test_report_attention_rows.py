"""Attention heatmaps of heads claimed only at some positions mark the claimed query rows (`clean`) and
grey the others (`scrubbed`); heads claimed everywhere are drawn as before (issue 17, item 10)."""

import html
import re

import pytest

from circuitdsl.report.svg import heatmap_svg

SOURCE = """\
model tiny
dataset ind = induction(n = 8, seed = 0, length = 16, layouts = 2)
metric loss
node a1.0 at A2
edge embed, pos -> a0.0
edge a0.0 -> a1.0.k
edge embed -> a1.0
edge a1.0 -> out
"""


def _rows(svg: str, cls: str) -> list[int]:
    return [int(x) for x in re.findall(rf'<rect class="{cls}" data-row="(\d+)"', svg)]


def test_heatmap_marks_the_claimed_rows_and_labels_every_row():
    pat = [[1.0 if k == 0 else 0.0 for k in range(5)] for _ in range(5)]
    toks = ["a", "b", "c", "d", "e"]
    svg = heatmap_svg(pat, toks, title="a1.0 @ END", claimed_rows=[4], claimed_at=("END",), cell=12)
    assert _rows(svg, "claimed-row") == [4] and _rows(svg, "scrubbed-row") == [0, 1, 2, 3]
    assert svg.count(">◀ clean</text>") == 1 and svg.count(">scrubbed</text>") == 4
    tips = [html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", svg)]
    assert any(t.startswith("query 4 (e): claimed at END") for t in tips)
    assert any(t.startswith("query 0 (a): not claimed here") and "scrubbed" in t for t in tips)
    plain = heatmap_svg(pat, toks, title="a1.0", cell=12)
    assert "claimed-row" not in plain and "scrubbed-row" not in plain and "clean<" not in plain
    # small cells (long sequences): the claimed rows keep their label, the greyed rows lose theirs
    small = heatmap_svg(pat, toks, title="a1.0 @ END", claimed_rows=[1, 4], claimed_at=("END",), cell=5)
    assert (
        small.count(">◀ clean</text>") == 2
        and ">scrubbed</text>" not in small
        and len(_rows(small, "scrubbed-row")) == 3
    )


def test_report_marks_the_rows_at_the_claimed_position_of_each_example():
    pytest.importorskip("torch")
    from _build import hand_result

    from circuitdsl.compiler import compile_source
    from circuitdsl.engine import data
    from circuitdsl.report import compute_extras, render_html

    h = compile_source(SOURCE, "rows.circuit").hypothesis
    extras = compute_extras(h, None, n_attention=2, n_dla=4)
    page = render_html(hand_result(), source_text=None, hypothesis=h, extras=extras)
    heats = re.findall(r'<svg[^>]*class="heat"[^>]*aria-label="([^"]+)".*?</svg>', page, re.DOTALL)
    svgs = re.findall(r'<svg[^>]*class="heat".*?</svg>', page, re.DOTALL)
    assert sorted(set(heats)) == ["a0.0", "a1.0 @ A2"] and len(svgs) == 4
    ds = data.materialise(h.dataset(h.main_dataset), None)
    by_id = {e.id: e for e in ds.examples}
    seen = 0
    for a, svg in zip(extras.attention, svgs):
        if a.head == "a0.0":  # claimed everywhere: nothing marked
            assert "claimed-row" not in svg and "scrubbed-row" not in svg
            continue
        e = by_id[a.example_id]
        want = list(e.position("A2"))  # from the dataset, not from the report's own position lookup
        assert _rows(svg, "claimed-row") == want
        assert _rows(svg, "scrubbed-row") == [q for q in range(len(e.tokens)) if q not in want]
        seen += 1
    assert seen == 2 and "labelled clean" in page
