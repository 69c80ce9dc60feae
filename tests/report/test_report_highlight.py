from circuitdsl.report.highlight import highlight_circuit


def test_classes_of_each_token_kind():
    src = 'group g1 = a0.1, m2\nnode g1 depends on field B  # why\nedge embed -> g1.k -> out\ndataset d = gen(n = 12, x = "a\\"<b>", f = -1e-3)\nexpect recovered >= 0.8'
    lines = highlight_circuit(src)
    assert len(lines) == 5
    assert '<span class="k">group</span> <span class="g">g1</span>' in lines[0]
    assert '<span class="m">a0.1</span>' in lines[0] and '<span class="m">m2</span>' in lines[0]
    assert '<span class="c"># why</span>' in lines[1]
    assert '<span class="k">depends</span> <span class="k">on</span> <span class="k">field</span> B' in lines[1]
    assert '<span class="g">g1</span><span class="p">.k</span>' in lines[2]
    assert '<span class="m">embed</span>' in lines[2] and '<span class="m">out</span>' in lines[2]
    assert '<span class="s">&quot;a\\&quot;&lt;b&gt;&quot;</span>' in lines[3]  # escaped, one string
    assert '<span class="n">12</span>' in lines[3] and '<span class="n">-1e-3</span>' in lines[3]
    assert '<span class="n">0.8</span>' in lines[4] and '<span class="o">&gt;=</span>' in lines[4]


def test_head_port_and_no_html_leaks():
    (line,) = highlight_circuit("edge a0.0.q <script> x")
    assert '<span class="m">a0.0</span><span class="p">.q</span>' in line
    assert "<script" not in line and "&lt;</span>script" in line


def test_plain_text_round_trips():
    import html
    import re

    src = open("hypotheses/induction_refined.circuit", encoding="utf-8").read()
    lines = highlight_circuit(src)
    plain = "\n".join(html.unescape(re.sub(r"<[^>]+>", "", l)) for l in lines)
    assert plain == src
