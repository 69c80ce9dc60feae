import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _build import SOURCE, hand_result

from circuitdsl.compiler import compile_source
from circuitdsl.report.html import SECTIONS, render_html, write_html
from circuitdsl.report.svg import cost_color
from circuitdsl.results import CheckResult


def _hyp():
    c = compile_source(SOURCE, "tests/report/tiny_test.circuit")
    assert c.hypothesis is not None, c.render("full")
    return c.hypothesis


def test_json_only_page_has_every_section_and_says_what_needs_the_model():
    r = hand_result()
    page = render_html(r, source_text=None)
    for sid, _ in SECTIONS:
        assert f'id="{sid}"' in page
    # attention and DLA say they need the model; graph and source say they need the file
    assert page.count('data-needs="model"') == 2
    assert page.count('data-needs="circuit"') == 2
    assert "FAIL" in page and 'data-status="fail"' in page
    # self-contained: nothing fetched from anywhere
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "@import" not in page
    # raw numbers and the expect clauses
    assert "0.372" in page and "5.1" in page and "expect incompleteness &lt;= 0.1" in page
    assert (
        page.count('<span class="badge fail">fail</span>') == 1
        and page.count('<span class="badge pass">pass</span>') == 1
    )
    # user text is escaped
    assert "A B C &lt;b&gt;&amp;" in page


def test_full_page_graph_colours_nodes_by_cost_and_styles_ports():
    r = hand_result()
    h = _hyp()
    page = render_html(r, source_text=None, hypothesis=h)
    assert 'data-needs="circuit"' not in page
    m = re.search(r'<svg[^>]*class="graph".*?</svg>', page, re.S)
    svg = m.group(0)
    for node, frac in (("embed", 0.78), ("a0.0", 0.52), ("a1.3", -0.09)):
        g = re.search(rf'<g class="node" data-node="{re.escape(node)}">.*?</g>', svg, re.S).group(0)
        assert f'fill="{cost_color(frac, 1.0)}"' in g
    assert cost_color(0.78, 1.0) != cost_color(0.16, 1.0) != cost_color(-0.09, 1.0)
    assert "removal: no change" in svg  # pos changed nothing
    # one path per claimed edge, coloured by port
    paths = re.findall(r'<path class="edge"[^>]*stroke="(#[0-9a-f]{6})"', svg)
    assert len(paths) == len(h.edges)
    from circuitdsl.draw import PORT_STYLE
    from circuitdsl.ir import Port

    for p in (Port.Q, Port.K, Port.V, Port.IN):
        assert paths.count(PORT_STYLE[p][0]) == sum(1 for e in h.edges if e.port is p)
    assert 'stroke-dasharray="7,4"' in svg  # k edges dashed
    # groups drawn as in the file
    assert ">prev_token</text>" in svg and ">induction</text>" in svg
    # expect lines marked in the highlighted source
    assert re.search(r'<tr id="L21"><td class="ln">21</td><td class="mk"><span class="ok">', page)
    assert re.search(r'<tr id="L22"><td class="ln">22</td><td class="mk"><span class="bad">', page)


def test_undefined_recovered_and_skipped_completeness_are_said():
    r = hand_result(recovered=None, undefined="F(model) equals F(baseline)", with_trials=False)
    page = render_html(r, source_text=SOURCE)
    assert "recovered is <strong>undefined</strong>: F(model) equals F(baseline)" in page
    assert "Not searched: completeness search disabled" in page


def test_json_round_trip_renders_the_same():
    r = hand_result()
    r2 = CheckResult.from_json(json.loads(r.dumps()))
    assert render_html(r2, source_text=SOURCE) == render_html(r, source_text=SOURCE)


def test_write_html_is_atomic(tmp_path):
    out = tmp_path / "r.html"
    out.write_text("old")
    write_html(out, hand_result(), source_text=SOURCE)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
    with pytest.raises(FileNotFoundError):
        write_html(tmp_path / "nope" / "r.html", hand_result(), source_text=SOURCE)


def test_rendering_never_imports_torch():
    code = (
        "import sys, json\n"
        "sys.path.insert(0, 'tests/report')\n"
        "from _build import SOURCE, hand_result\n"
        "from circuitdsl.compiler import compile_source\n"
        "from circuitdsl.report import render_html\n"
        "h = compile_source(SOURCE, 'x.circuit').hypothesis\n"
        "render_html(hand_result(), source_text=SOURCE, hypothesis=h)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
