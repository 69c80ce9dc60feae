"""Node ranges (`m3..m7`, `a8.0..a9.8`) and `wire NODES`: parsing, each pass, exact edge sets, errors, fmt, draw."""

from __future__ import annotations

import pytest

from circuitdsl import ast
from circuitdsl.compiler import compile_source
from circuitdsl.compiler.claims import resolve_edges, resolve_nodes
from circuitdsl.compiler.load import load_source
from circuitdsl.compiler.passes import PASSES, run_passes
from circuitdsl.compiler.resolve import resolve_groups
from circuitdsl.compiler.validate import note_gqa
from circuitdsl.compiler.wire import resolve_wires
from circuitdsl.draw import to_dot, view, write_drawing
from circuitdsl.fmt import format_source
from circuitdsl.ir import FeatureKind, NodeId, NodeKind
from circuitdsl.parser import parse_source

from .conftest import FIXTURES

SMOL = "model smollm2-135m\ndataset d = fakegen(n = 4)\n"
NATIVE = f'model "{FIXTURES / "native2m"}"\ndataset d = fakegen(n = 4)\n'  # 2 layers x 2 heads, MLPs, learned pos
GPTJ = f'model "{FIXTURES / "gptj2"}"\ndataset d = fakegen(n = 4)\n'  # 2 layers x 2 heads, parallel attn/MLP
ATTN_ONLY = f'model "{FIXTURES / "native2l"}"\ndataset d = fakegen(n = 4)\n'


def h(layer, head):
    return NodeId(NodeKind.HEAD, layer, head)


def m(layer):
    return NodeId(NodeKind.MLP, layer)


def upto(text: str, last):
    unit = load_source(text, "t.circuit")
    assert not unit.diagnostics, unit.diagnostics
    return run_passes(unit, PASSES[: PASSES.index(last) + 1])


def codes(unit):
    return [d.code for d in unit.diagnostics]


def edge_texts(edges) -> set[str]:
    return {f"{e.sender.name}->{e.receiver.name}.{e.port.value}" for e in edges}


# --- parsing and formatting -------------------------------------------------------------------


def test_ranges_parse_everywhere_a_node_list_is_allowed():
    mod = parse_source(
        "group g = m3..m7, a20.0 .. a20.8, embed\n"
        "node a8.0..a9.8 depends on input\n"
        "edge embed, m0..m2 -> a1.0..a1.3, g.q -> out\n"
        "wire g, a2.0..a2.1, out\n"
    )
    g, n, e, w = mod.statements
    rng = ast.NodeRange
    assert g.members == (
        rng(ast.NodeRef("m3"), ast.NodeRef("m7")),
        rng(ast.NodeRef("a20", 0), ast.NodeRef("a20", 8)),
        ast.NodeRef("embed"),
    )
    assert n.nodes == (rng(ast.NodeRef("a8", 0), ast.NodeRef("a9", 8)),)
    assert e.steps[0][1] == ast.Target(rng(ast.NodeRef("m0"), ast.NodeRef("m2")))
    assert e.steps[1][0].port is None and e.steps[1][1].port == ast.Ident("q")
    assert w == ast.Wire((ast.NodeRef("g"), rng(ast.NodeRef("a2", 0), ast.NodeRef("a2", 1)), ast.NodeRef("out")))
    # spans cover the whole range, and each endpoint its own text
    r = g.members[1]
    assert (r.span.line, r.span.col, r.span.end_col) == (1, 19, 33)
    assert (r.end.span.col, r.end.span.end_col) == (28, 33)


def test_port_on_a_range_is_a_syntax_error_with_a_hint():
    from circuitdsl.diagnostics import CircuitError

    with pytest.raises(CircuitError) as info:
        parse_source("edge embed -> a1.0..a1.3.k\n")
    (d,) = info.value.diagnostics
    assert d.code == "E101" and "a range has no port" in d.hint


def test_fmt_prints_ranges_and_wire_back_as_written():
    text = "group g = m3 .. m7,a20.0..a20.8\nwire g,\n  embed,   out  # all of it\nedge embed -> m0..m2,a1.0\n"
    out = format_source(text)
    assert out == "group g = m3..m7, a20.0..a20.8\nwire g, embed, out  # all of it\nedge embed -> m0..m2, a1.0\n"
    assert format_source(out) == out


# --- ranges, one pass at a time ---------------------------------------------------------------


def test_resolve_groups_expands_ranges_in_model_order():
    u = upto(
        SMOL + "group mlps = m3..m7\ngroup l20 = a20.0..a20.8\ngroup span = a8.7..a9.1\ngroup one = a3.2..a3.2\n"
        "group two = a8.0..a9.8\n",
        resolve_groups,
    )
    assert not u.diagnostics
    g = u.group_map()
    assert g["mlps"] == tuple(m(i) for i in range(3, 8))
    assert g["l20"] == tuple(h(20, i) for i in range(9))
    assert g["span"] == (h(8, 7), h(8, 8), h(9, 0), h(9, 1))
    assert g["one"] == (h(3, 2),)
    assert g["two"] == tuple(h(L, i) for L in (8, 9) for i in range(9))


def test_resolve_nodes_claims_every_member_of_a_range():
    u = upto(SMOL + "node m1..m2, a0.7..a1.0 depends on field answer\n", resolve_nodes)
    assert not u.diagnostics
    assert sorted(c.node for c in u.claims) == [h(0, 7), h(0, 8), h(1, 0), m(1), m(2)]
    assert all(c.feature.kind is FeatureKind.FIELD for c in u.claims)


def test_resolve_edges_expands_ranges_on_both_sides_without_port():
    u = upto(NATIVE + "edge embed -> m0..m1\nedge a0.0..a0.1 -> a1.0.q\n", resolve_edges)
    assert not u.diagnostics
    assert edge_texts(u.edges) == {"embed->m0.in", "embed->m1.in", "a0.0->a1.0.q", "a0.1->a1.0.q"}
    u = upto(NATIVE + "edge embed -> a1.0..a1.1\n", resolve_edges)
    assert edge_texts(u.edges) == {f"embed->a1.{i}.{p}" for i in (0, 1) for p in "qkv"}


@pytest.mark.parametrize(
    "line, code, words",
    [
        ("group g = m0..a3.2", "E216", "mixes an MLP and a head"),
        ("group g = embed..m3", "E216", "`embed` is an embedding"),
        ("group g = m0..out", "E216", "`out` is the output"),
        ("group c = a1.0\ngroup g = m0..c", "E216", "a group"),
        ("group g = m0..foo", "E216", "not a node name"),
        ("node a9.8..a9.0", "E217", "write `a9.0..a9.8`"),
        ("edge embed -> m7..m3", "E217", "`m7` comes after `m3`"),
        ("wire embed, a9.1..a8.5, out", "E217", "reversed range"),
        ("edge embed -> a20.0..a20.9", "E218", "did you mean `a20.8`?"),
        ("wire m0..m30, out", "E218", "the model has 30 layers"),
        ("wire a30.0..a31.0, out", "E218", "unknown layer"),
        ("wire a3..a5, out", "E203", "a head needs its index"),
    ],
)
def test_range_errors(line, code, words):
    r = compile_source(SMOL + line + "\n", "t.circuit")
    assert r.hypothesis is None
    found = [d for d in r.diagnostics if d.code == code]
    assert found, r.render("concise")
    assert any(words in f"{d.message} {d.label} {d.hint}" for d in found), r.render("full")


def test_mlp_range_in_attention_only_model_is_e218():
    r = compile_source(ATTN_ONLY + "wire embed, m0..m1, out\n", "t.circuit")
    assert "E218" in [d.code for d in r.diagnostics]
    assert "attention-only" in r.render("full")


# --- wire ----------------------------------------------------------------------------------

# Every forward edge of native2m (2 layers x 2 heads, MLPs, learned positions, sequential blocks),
# written out by hand from SEMANTICS.md section 1: 30 + 9 + 9 + 8 + 2 + 2 + 1 = 61 edges.
_HAND = """
embed->a0.0.q embed->a0.0.k embed->a0.0.v embed->a0.1.q embed->a0.1.k embed->a0.1.v embed->m0.in
embed->a1.0.q embed->a1.0.k embed->a1.0.v embed->a1.1.q embed->a1.1.k embed->a1.1.v embed->m1.in embed->out.in
pos->a0.0.q pos->a0.0.k pos->a0.0.v pos->a0.1.q pos->a0.1.k pos->a0.1.v pos->m0.in
pos->a1.0.q pos->a1.0.k pos->a1.0.v pos->a1.1.q pos->a1.1.k pos->a1.1.v pos->m1.in pos->out.in
a0.0->m0.in a0.0->a1.0.q a0.0->a1.0.k a0.0->a1.0.v a0.0->a1.1.q a0.0->a1.1.k a0.0->a1.1.v a0.0->m1.in a0.0->out.in
a0.1->m0.in a0.1->a1.0.q a0.1->a1.0.k a0.1->a1.0.v a0.1->a1.1.q a0.1->a1.1.k a0.1->a1.1.v a0.1->m1.in a0.1->out.in
m0->a1.0.q m0->a1.0.k m0->a1.0.v m0->a1.1.q m0->a1.1.k m0->a1.1.v m0->m1.in m0->out.in
a1.0->m1.in a1.0->out.in a1.1->m1.in a1.1->out.in
m1->out.in
"""
HAND = set(_HAND.split())


def test_wire_everything_is_exactly_the_forward_dag():
    assert len(HAND) == 61
    u = upto(NATIVE + "wire out, m1, a1.0..a1.1, m0, a0.0..a0.1, pos, embed\n", resolve_wires)
    assert not u.diagnostics
    assert edge_texts(u.edges) == HAND
    assert len(u.edges) == 61  # no duplicates
    assert {c.node.name for c in u.claims} == {"embed", "pos", "a0.0", "a0.1", "m0", "a1.0", "a1.1", "m1", "out"}
    assert all(c.feature.kind is FeatureKind.IDENTITY for c in u.claims)


def test_wire_subset_keeps_only_pairs_that_run_forward():
    # a1.0 -> a0.1 and same-layer head pairs do not run forward: not claimed, and not an error
    u = upto(NATIVE + "wire a1.0, a0.1, a1.1, m0, out\n", resolve_wires)
    assert not u.diagnostics
    want = {
        e
        for e in HAND
        if e.split("->")[0] in ("a1.0", "a0.1", "a1.1", "m0")
        and e.split("->")[1].rsplit(".", 1)[0] in ("a1.0", "a0.1", "a1.1", "m0", "out")
    }
    assert edge_texts(u.edges) == want
    assert want == {"a0.1->m0.in", "a0.1->a1.0.q", "a0.1->a1.0.k", "a0.1->a1.0.v", "a0.1->a1.1.q", "a0.1->a1.1.k",
                    "a0.1->a1.1.v", "a0.1->out.in", "m0->a1.0.q", "m0->a1.0.k", "m0->a1.0.v", "m0->a1.1.q",
                    "m0->a1.1.k", "m0->a1.1.v", "m0->out.in", "a1.0->out.in", "a1.1->out.in"}  # fmt: skip


def test_wire_in_a_parallel_model_skips_same_layer_head_to_mlp():
    u = upto(GPTJ + "wire a0.0, m0, a1.0, m1\n", resolve_wires)
    assert not u.diagnostics
    assert edge_texts(u.edges) == {"a0.0->a1.0.q", "a0.0->a1.0.k", "a0.0->a1.0.v", "a0.0->m1.in",
                                   "m0->a1.0.q", "m0->a1.0.k", "m0->a1.0.v", "m0->m1.in"}  # fmt: skip
    seq = upto(NATIVE + "wire a0.0, m0, a1.0, m1\n", resolve_wires)
    assert edge_texts(seq.edges) - edge_texts(u.edges) == {"a0.0->m0.in", "a1.0->m1.in"}


def test_wire_and_edge_statements_merge():
    text = NATIVE + (
        "node a1.0 depends on field answer\n"
        "edge embed -> a1.0.q\n"  # also produced by the wire: a duplicate is fine
        "edge a0.1 -> out\n"  # a0.1 is not wired: an extra edge
        "wire embed, a1.0, out\n"
    )
    r = compile_source(text, "t.circuit")
    assert r.ok, r.render()
    h_ = r.hypothesis
    wired = {"embed->a1.0.q", "embed->a1.0.k", "embed->a1.0.v", "embed->out.in", "a1.0->out.in"}
    assert edge_texts(h_.edges) == wired | {"a0.1->out.in"}
    assert len(h_.edges) == len(set(h_.edges))
    claims = {c.node.name: c for c in h_.claims}
    assert claims["a1.0"].feature.kind is FeatureKind.FIELD  # the node statement's feature is kept
    assert claims["out"].feature.kind is FeatureKind.IDENTITY
    assert set(h_.graph.edges()) >= {(NodeId(NodeKind.EMBED), h(1, 0)), (h(0, 1), NodeId(NodeKind.OUT))}


def test_wire_claims_groups_for_drawing_and_conflicting_node_claims_still_error():
    u = upto(NATIVE + "group b = embed, m0..m1\nwire b, out\n", resolve_wires)
    assert not u.diagnostics
    assert all("b" in c.groups for c in u.claims if c.node.name != "out")
    r = compile_source(
        NATIVE + "node m0 depends on input\nnode m0 depends on nothing\nwire embed, m0, out\n", "t.circuit"
    )
    assert "E302" in [d.code for d in r.diagnostics]


def test_wire_without_out_warns_w303_and_does_not_crash():
    r = compile_source(NATIVE + "wire embed, m0\n", "t.circuit")
    assert r.ok
    assert [d.code for d in r.diagnostics] == ["W303"]


def test_gqa_note_once_per_wire_statement():
    u = upto(SMOL + "group c = a3.0..a3.8\nwire embed, c, m3, out\nwire embed, a5.1, out\n", note_gqa)
    notes = [d for d in u.diagnostics if d.code == "N301"]
    assert len(notes) == 2  # one per wire statement, not one per head or per k/v edge
    assert "9 heads" in notes[0].message and notes[0].span.line == 4
    assert "1 heads" in notes[1].message or "a5.1" in notes[1].message
    assert codes(u) == ["N301", "N301"]


def test_ioi_use_case_lints_clean_with_the_hand_counted_edges():
    text = (
        "model smollm2-135m\n"
        "dataset ioi = ioi(n = 32, seed = 0)\n"
        "dataset abc = ioi_abc(n = 32, seed = 0)\n"
        "ablate unclaimed by paired abc\n"
        "group backbone = embed, m0..m29\n"
        "group circuit = a8.1, a14.3, a15.7, a17.4, a19.2, a20.0, a23.3, a29.0, a29.1\n"
        "node circuit at END depends on (field io, field s)\n"
        "wire backbone, circuit, out\n"
    )
    r = compile_source(text, "ioi.circuit")
    assert r.ok, r.render()
    assert [d.code for d in r.diagnostics] == ["N301"]  # one summary note, no warnings
    h_ = r.hypothesis
    assert len(h_.claims) == 41
    # By hand: embed -> 30 MLPs + 9 heads x3 + out = 58; MLP -> later MLP C(30,2) = 435, MLP -> head of a
    # later layer (8+14+15+17+19+20+23+29+29 = 174) x3 = 522, MLP -> out 30; head -> MLP of its layer or
    # later (22+16+15+13+11+10+7+1+1 = 96), head -> head of a later layer 35 pairs x3 = 105, head -> out 9.
    assert len(h_.edges) == 58 + 435 + 522 + 30 + 96 + 105 + 9 == 1255
    dot = to_dot(h_)
    assert '"m0..m29" [label="m0..m29\\n30 MLPs, wired"]' in dot
    assert '"m0..m29" -> "a8.1" [label="from m0..m7 qkv"' in dot
    assert '"a8.1" -> "m0..m29" [label="to m8..m29 in"' in dot
    v = view(h_)
    assert v.compact and len(v.boxes) == 12 and len(v.arrows) < 80


def test_small_hypotheses_are_drawn_uncompacted(tmp_path):
    r = compile_source(NATIVE + "group b = embed, m0..m1\nwire b, a1.0, out\n", "t.circuit")
    assert r.ok
    v = view(r.hypothesis)
    assert not v.compact
    assert len(v.arrows) == len(r.hypothesis.edges)  # one arrow per edge and port
    write_drawing(r.hypothesis, tmp_path / "g.png", use_graphviz=False)
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compact_drawing_png(tmp_path):
    r = compile_source(SMOL + "group b = embed, m0..m11\nwire b, a4.0..a4.2, a9.1, out\n", "t.circuit")
    assert r.ok, r.render()
    write_drawing(r.hypothesis, tmp_path / "g.svg", use_graphviz=False)
    svg = (tmp_path / "g.svg").read_text()
    assert "m0..m11" in svg and "12 MLPs, wired" in svg
