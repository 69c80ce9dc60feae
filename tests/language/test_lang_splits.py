"""`split` statements and part names (docs/LANGUAGE.md, docs/FEATURES.md): parsing, formatting, compiling
to ir.Split and part NodeIds, and the CLI's lint/fmt/graph on files with splits. The diagnostics have
their goldens (tests/language/golden/E219..E221, E701..E713, W304)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from circuitdsl import ast
from circuitdsl.cli import main
from circuitdsl.compiler import compile_file, compile_source
from circuitdsl.diagnostics import CircuitError
from circuitdsl.fmt import format_source
from circuitdsl.ir import EdgeId, NodeId, NodeKind, Port, SplitKind
from circuitdsl.parser import parse_source

from .conftest import FIXTURES, GOLDEN

SPLITS = GOLDEN / "splits"


def _one(text: str):
    m = parse_source(text, "t.circuit")
    assert len(m.statements) == 1
    return m.statements[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'split a9.6 by subspace s from "bases/ioi_s.npy"',
            ast.Split(ast.NodeRef("a9", 6), "subspace", "bases/ioi_s.npy", ast.Ident("s")),
        ),
        (
            'split m0 by sae "saes/tiny_m0" latents 3, 17, 42',
            ast.Split(
                ast.NodeRef("m0"),
                "sae",
                "saes/tiny_m0",
                None,
                (ast.Literal("int", 3), ast.Literal("int", 17), ast.Literal("int", 42)),
            ),
        ),
        ('split embed by sae "e"', ast.Split(ast.NodeRef("embed"), "sae", "e")),
        (
            "edge a9.6[s] -> a10.7[~t].q, m0[f17]",
            ast.Edge(
                (
                    (ast.Target(ast.NodeRef("a9", 6, "s")),),
                    (
                        ast.Target(ast.NodeRef("a10", 7, "~t"), ast.Ident("q")),
                        ast.Target(ast.NodeRef("m0", None, "f17")),
                    ),
                )
            ),
        ),
        (
            "node m0[rest], m0[err] at end depends on field x",
            ast.NodeStmt(
                (ast.NodeRef("m0", None, "rest"), ast.NodeRef("m0", None, "err")),
                (ast.Ident("end"),),
                ast.FeatureExpr("field", ast.Ident("x")),
            ),
        ),
        ("group g = a1.0[~s], m3", ast.Group(ast.Ident("g"), (ast.NodeRef("a1", 0, "~s"), ast.NodeRef("m3")))),
        ("wire embed[f2], out", ast.Wire((ast.NodeRef("embed", None, "f2"), ast.NodeRef("out")))),
    ],
)
def test_split_and_part_syntax(text, expected):
    assert _one(text) == expected


def test_part_spans_cover_the_brackets():
    s = _one("edge a9.6[s] -> a10.7[~t].q")
    (snd,), (rcv,) = s.steps
    assert (snd.node.span.col, snd.node.span.end_col) == (6, 13)
    assert (rcv.node.span.col, rcv.node.span.end_col) == (17, 26)
    assert rcv.port.span.col == 27
    assert rcv.node.text == "a10.7[~t]" and rcv.text == "a10.7[~t].q"


def test_split_keywords_are_names_elsewhere():
    assert _one("group sae = a0.1").name.text == "sae"
    assert _one("node a0.1 depends on field latents").feature.arg.text == "latents"


@pytest.mark.parametrize(
    "text, code",
    [
        ('split a9.6 by subspace from "b.npy"\n', "E101"),  # the subspace needs a name
        ("split m0 by sae latents 3\n", "E101"),  # the directory is missing
        ('split m0 by sae "d" latents\n', "E101"),
        ('split m0 by pca "d"\n', "E101"),
        ('split a9.6[s] by subspace s from "b.npy"\n', "E101"),  # a part cannot be split again
        ("node a9.6[]\n", "E101"),
        ("edge a0.0..a0.3[s] -> out\n", "E101"),  # a range has no part
        ('split m0 by sae ""\n', "E110"),
    ],
)
def test_split_syntax_errors(text, code):
    with pytest.raises(CircuitError) as e:
        parse_source(text, "t.circuit")
    assert e.value.diagnostics[0].code == code


def test_fmt_canonical_and_idempotent():
    src = (
        "# splits\n"
        'split   a1.0 by subspace s   from "splits/s2.npy"   # trailing\n'
        'split m0 by sae "splits/sae_m0" latents 3,\n'
        "    5\n"
        "group g = a1.0[ ~s ], m0 [f3]\n"
        "edge embed -> a1.0[s] . q, m0[rest]->out\n"
    )
    out = format_source(src)
    assert out == (
        "# splits\n"
        'split a1.0 by subspace s from "splits/s2.npy"  # trailing\n'
        'split m0 by sae "splits/sae_m0" latents 3, 5\n'
        "group g = a1.0[~s], m0[f3]\n"
        "edge embed -> a1.0[s].q, m0[rest] -> out\n"
    )
    assert format_source(out) == out


def test_fmt_wraps_a_long_latent_list_after_commas():
    src = 'split m0 by sae "saes/a_rather_long_directory_name/m0" latents ' + ", ".join(map(str, range(40))) + "\n"
    out = format_source(src)
    assert len(out.splitlines()) > 1 and all(len(line) <= 100 for line in out.splitlines())
    assert format_source(out) == out and parse_source(out) == parse_source(src)


HEADER = 'model "../fixtures/native2m"\ndataset d = fakegen(n = 4)\n'


def _compile(tmp_path, body: str):
    """Compile `body` in a copy of the golden folder layout (model and split files at the same relative
    paths), so that relative paths resolve as in the goldens."""
    root = tmp_path / "golden"
    if not root.exists():
        shutil.copytree(SPLITS, root / "splits")
        shutil.copytree(FIXTURES / "native2m", tmp_path / "fixtures" / "native2m")
    f = root / "h.circuit"
    f.write_text(HEADER + body, encoding="utf-8")
    return compile_file(f), root


def _errors(result):
    return [d for d in result.diagnostics if d.code.startswith("E")]


def _blake2b(*paths) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def test_subspace_split_compiles_to_ir(tmp_path):
    r, root = _compile(
        tmp_path,
        'split a1.0 by subspace s from "splits/s2.npy"\n'
        "node a1.0[s] depends on field answer\n"
        "edge embed -> a1.0[s].q, a1.0[~s] -> out\n",
    )
    assert r.ok, r.render("concise")
    (split,) = r.hypothesis.splits
    a10 = NodeId(NodeKind.HEAD, 1, 0)
    assert split.node == a10 and split.kind is SplitKind.SUBSPACE and split.name == "s"
    assert split.parts == (NodeId(NodeKind.HEAD, 1, 0, "s"), NodeId(NodeKind.HEAD, 1, 0, "~s"))
    assert split.source == str((root / "splits" / "s2.npy").resolve())
    assert split.digest == _blake2b(root / "splits" / "s2.npy")
    assert split.span.line == 3
    claimed = {c.node for c in r.hypothesis.claims}
    assert claimed == {NodeId(NodeKind.EMBED), *split.parts, NodeId(NodeKind.OUT)}
    assert a10 not in claimed
    edges = set(r.hypothesis.edges)
    assert EdgeId(NodeId(NodeKind.EMBED), split.parts[0], Port.Q) in edges
    assert EdgeId(NodeId(NodeKind.EMBED), split.parts[0], Port.K) not in edges
    assert {EdgeId(NodeId(NodeKind.EMBED), split.parts[1], p) for p in (Port.Q, Port.K, Port.V)} <= edges
    feature = {c.node: c.feature for c in r.hypothesis.claims}[split.parts[0]]
    assert str(feature) == "field answer"


def test_sae_split_compiles_to_ir(tmp_path):
    r, root = _compile(
        tmp_path,
        'split m0 by sae "splits/sae_m0" latents 5, 3\n'
        "wire embed, m0[f3], m0[f5], m0[rest], m0[err], a1.1, out\n"
        "node m0[f5] at end depends on token at end\n",
    )
    assert r.ok, r.render("concise")
    (split,) = r.hypothesis.splits
    assert split.kind is SplitKind.SAE and split.latents == (3, 5)
    assert [p.name for p in split.parts] == ["m0[f3]", "m0[f5]", "m0[rest]", "m0[err]"]
    d = root / "splits" / "sae_m0"
    assert split.source == str(d.resolve())
    assert split.digest == _blake2b(d / "cfg.json", d / "sae_weights.safetensors")
    edges = set(r.hypothesis.edges)
    m0f3, a11 = NodeId(NodeKind.MLP, 0, None, "f3"), NodeId(NodeKind.HEAD, 1, 1)
    assert EdgeId(NodeId(NodeKind.EMBED), m0f3, Port.IN) in edges
    assert {EdgeId(m0f3, a11, p) for p in (Port.Q, Port.K, Port.V)} <= edges
    assert not any(e.sender.whole == e.receiver.whole for e in edges)  # parts of one MLP do not read each other
    claim = {c.node: c for c in r.hypothesis.claims}[NodeId(NodeKind.MLP, 0, None, "f5")]
    assert claim.positions == ("end",)


def test_parts_in_groups_and_edges_between_parts(tmp_path):
    r, _ = _compile(
        tmp_path,
        'split a0.1 by subspace s from "splits/s2.npy"\n'
        'split m0 by sae "splits/sae_m0" latents 1\n'
        "group senders = a0.1[s], m0[f1]\n"
        "edge embed -> senders -> a1.0.k\n"
        "edge a0.1[s] -> m0[f1] -> out\n"
        "edge embed -> a1.0 -> out\n",
    )
    assert r.ok, r.render("concise")
    assert dict(r.hypothesis.groups)["senders"] == (
        NodeId(NodeKind.HEAD, 0, 1, "s"),
        NodeId(NodeKind.MLP, 0, None, "f1"),
    )
    assert EdgeId(NodeId(NodeKind.HEAD, 0, 1, "s"), NodeId(NodeKind.MLP, 0, None, "f1"), Port.IN) in r.hypothesis.edges


def test_a_split_component_is_named_through_its_parts_everywhere(tmp_path):
    r, _ = _compile(
        tmp_path,
        'split m0 by sae "splits/sae_m0" latents 1\ngroup g = m0\nnode m0[f1]\nwire embed, m0..m1, out\n',
    )
    codes = [d.code for d in _errors(r)]
    assert codes.count("E221") == 1, r.render("concise")  # once per node, at its first mention
    assert "m0[f1]" in next(d.hint for d in r.diagnostics if d.code == "E221")


def test_part_of_a_split_that_was_refused_is_not_a_second_error(tmp_path):
    r, _ = _compile(tmp_path, 'split a1.0 by subspace s from "splits/nothing.npy"\nedge embed -> a1.0[s] -> out\n')
    assert [d.code for d in r.diagnostics] == ["E703"]


def test_string_source_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    r = compile_source(HEADER + 'split a1.0 by subspace s from "splits/s2.npy"\nedge embed -> a1.0[s] -> out\n')
    assert r.ok, r.render("concise")


def test_lint_and_fmt_cover_splits(tmp_path, capsys):
    _, root = _compile(tmp_path, "")
    good = root / "good.circuit"
    good.write_text(HEADER + 'split a1.0  by subspace s from "splits/s2.npy"\nedge embed -> a1.0[s] -> out\n')
    assert main(["lint", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["fmt", "--check", str(good)]) == 1
    assert main(["fmt", str(good)]) == 0
    assert 'split a1.0 by subspace s from "splits/s2.npy"\n' in good.read_text()
    assert main(["fmt", "--check", str(good)]) == 0
    bad = root / "bad.circuit"
    bad.write_text(HEADER + 'split m0 by sae "splits/sae_m0" latents 3, 99\nedge embed -> m0[f3], m0[f4] -> out\n')
    capsys.readouterr()
    assert main(["lint", "--format", "json", str(bad)]) == 2
    found = json.loads(capsys.readouterr().out)
    assert {(d["code"], d["line"]) for d in found} == {("E712", 3), ("E219", 4)}
    assert all("hint" in d and "label" in d for d in found)


def test_graph_names_parts(tmp_path, capsys):
    _, root = _compile(tmp_path, "")
    f = root / "g.circuit"
    f.write_text(HEADER + 'split a1.0 by subspace s from "splits/s2.npy"\nedge embed -> a1.0[s], a1.0[~s] -> out\n')
    dot = tmp_path / "g.dot"
    assert main(["graph", str(f), "-o", str(dot)]) == 0
    text = dot.read_text()
    assert '"a1.0[s]"' in text and '"a1.0[~s]"' in text


def test_a_split_in_an_imported_file_reads_its_basis_relative_to_that_file(tmp_path):
    _, root = _compile(tmp_path, "")
    (root / "splits" / "shared.circuit").write_text('split a1.0 by subspace s from "s2.npy"\n')
    r, _ = _compile(tmp_path, 'import "splits/shared.circuit"\nedge embed -> a1.0[s] -> out\n')
    assert r.ok, r.render("concise")
    assert r.hypothesis.splits[0].source == str((root / "splits" / "s2.npy").resolve())
