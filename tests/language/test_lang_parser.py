"""Parser: text -> AST with spans; syntax errors -> E1xx diagnostics in the user's words."""

from __future__ import annotations

import pytest

from circuitdsl import ast
from circuitdsl.diagnostics import CircuitError
from circuitdsl.parser import parse_source


def _one(text: str):
    m = parse_source(text, "t.circuit")
    assert len(m.statements) == 1
    return m.statements[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model tiny", ast.Model("tiny")),
        ("model smollm2-135m", ast.Model("smollm2-135m")),
        ('model "dir/m"', ast.Model("dir/m", True)),
        ('import "x.circuit"', ast.Import("x.circuit")),
        ("on d", ast.On(ast.Ident("d"))),
        ("metric loss", ast.MetricStmt(ast.Ident("loss"))),
        ("ablate unclaimed by resample", ast.Ablate("resample")),
        ("ablate unclaimed by resample from d2", ast.Ablate("resample from", ast.Ident("d2"))),
        ("ablate unclaimed by paired abc", ast.Ablate("paired", ast.Ident("abc"))),
        ("ablate unclaimed by mean", ast.Ablate("mean")),
        ("ablate unclaimed by mean over d", ast.Ablate("mean over", ast.Ident("d"))),
        ("ablate unclaimed by zero", ast.Ablate("zero")),
        (
            "group g = a0.1, m3, h",
            ast.Group(ast.Ident("g"), (ast.NodeRef("a0", 1), ast.NodeRef("m3"), ast.NodeRef("h"))),
        ),
        (
            'dataset d = gen(n = 4, x = -1.5e3, s = "a\\"b", f = true)',
            ast.DatasetGen(
                ast.Ident("d"),
                ast.Ident("gen"),
                (
                    ast.Arg(ast.Ident("n"), ast.Literal("int", 4)),
                    ast.Arg(ast.Ident("x"), ast.Literal("float", -1500.0)),
                    ast.Arg(ast.Ident("s"), ast.Literal("string", 'a"b')),
                    ast.Arg(ast.Ident("f"), ast.Literal("name", "true")),
                ),
            ),
        ),
        ('dataset d = "p.jsonl"', ast.DatasetFile(ast.Ident("d"), "p.jsonl")),
        (
            "node a1.0, g at end, prev depends on (token at prev, field x, mod.sub:fn)",
            ast.NodeStmt(
                (ast.NodeRef("a1", 0), ast.NodeRef("g")),
                (ast.Ident("end"), ast.Ident("prev")),
                ast.FeatureExpr(
                    "tuple",
                    None,
                    (
                        ast.FeatureExpr("token", ast.Ident("prev")),
                        ast.FeatureExpr("field", ast.Ident("x")),
                        ast.FeatureExpr("function", ast.Ident("mod.sub:fn")),
                    ),
                ),
            ),
        ),
        ("node embed", ast.NodeStmt((ast.NodeRef("embed"),))),
        (
            "edge embed, pos -> a1.0.k -> out",
            ast.Edge(
                (
                    (ast.Target(ast.NodeRef("embed")), ast.Target(ast.NodeRef("pos"))),
                    (ast.Target(ast.NodeRef("a1", 0), ast.Ident("k")),),
                    (ast.Target(ast.NodeRef("out")),),
                )
            ),
        ),
        (
            "set completeness.sizes = [1, 2]",
            ast.SetStmt(
                ast.Ident("completeness.sizes"), ast.Literal("list", (ast.Literal("int", 1), ast.Literal("int", 2)))
            ),
        ),
        (
            "expect recovered.lower >= 0.6",
            ast.ExpectStmt(ast.Ident("recovered.lower"), ">=", ast.Literal("float", 0.6)),
        ),
    ],
)
def test_statement(text, expected):
    assert _one(text) == expected


def test_keywords_are_reserved_only_where_expected():
    s = _one("group model = a0.1")  # `model` as a group name
    assert s.name.text == "model"
    s = _one("node a0.1 depends on field token")
    assert s.feature == ast.FeatureExpr("field", ast.Ident("token"))


def test_continuation_lines_and_comments():
    text = "edge embed ->  # into the head\n   a0.1,\n\n   a0.2 -> out\nnode a0.1 depends on (\n  field x,  # c\n  field y\n)\n"
    m = parse_source(text, "t.circuit")
    assert len(m.statements) == 2
    edge = m.statements[0]
    assert [t.text for step in edge.steps for t in step] == ["embed", "a0.1", "a0.2", "out"]
    assert (edge.span.line, edge.span.end_line) == (1, 4)
    assert [c.text for c in m.comments] == ["# into the head", "# c"]


def test_spans_point_at_the_text():
    m = parse_source("model tiny\nedge embed -> a10.12.q\n", "t.circuit")
    target = m.statements[1].steps[1][0]
    assert (target.node.span.line, target.node.span.col, target.node.span.end_col) == (2, 15, 21)
    assert (target.port.span.col, target.port.span.end_col) == (22, 23)


def test_hash_inside_a_string_is_not_a_comment():
    m = parse_source('dataset d = "a#b.jsonl"  # real\n')
    assert m.statements[0].path == "a#b.jsonl"
    assert [c.text for c in m.comments] == ["# real"]


@pytest.mark.parametrize(
    "text, code, words",
    [
        ("edge a0.1 -> out extra\n", "E101", "expected `,`, `->`, `..`, `.`, `[` or end of line"),
        ("expect recovered => 1\n", "E101", "`>=`"),
        ("model tiny $\n", "E102", "unexpected character `$`"),
        ("edge a0.1 ->", "E103", "expected a name"),
        ('model "abc\n', "E104", "no closing"),
        ("nodes a0.1\n", "E105", "did you mean `node`?"),
        ("a0.1 -> out\n", "E105", "edge a0.1 -> out"),
        ('import "a\\qb"\n', "E106", "\\q"),
    ],
)
def test_syntax_errors(text, code, words):
    with pytest.raises(CircuitError) as info:
        parse_source(text, "t.circuit")
    (d,) = info.value.diagnostics
    assert d.code == code
    shown = f"{d.message} {d.label} {d.hint}"
    assert words in shown
    for lark_name in ("_NL", "NAME", "_ARROW", "$END", "Token", "RPAR", "COMMA"):
        assert lark_name not in shown
    assert d.span.file == "t.circuit"


def test_every_broken_statement_is_reported():
    # after an error the parser skips that statement (continuation lines included) and goes on
    text = (
        "model tiny\n"
        "dataset d = induction(n=8,\n"
        "    length=9 $)\n"
        "edge a0.1 -> out extra\n"
        "nodes a0.1\n"
        "node a1.0 depends on input\n"
        "expect recovered => 1\n"
        "edge embed ->"
    )
    with pytest.raises(CircuitError) as info:
        parse_source(text, "t.circuit")
    got = [(d.code, d.span.line, d.span.col) for d in info.value.diagnostics]
    assert got == [("E102", 3, 14), ("E101", 4, 18), ("E105", 5, 1), ("E101", 7, 18), ("E103", 8, 14)]


def test_error_recovery_is_bounded():
    from circuitdsl.parser import MAX_SYNTAX_ERRORS

    with pytest.raises(CircuitError) as info:
        parse_source("model tiny\n" + "edge a0.1 -> out extra\n" * (MAX_SYNTAX_ERRORS + 5), "t.circuit")
    assert len(info.value.diagnostics) == MAX_SYNTAX_ERRORS
