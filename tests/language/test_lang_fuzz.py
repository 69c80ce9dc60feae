"""Grammar fuzzing (as vyper does): every text generated from the grammar parses, compiling it
never raises (only diagnostics come back), and the formatter round-trips it."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from circuitdsl.ast import KEYWORDS
from circuitdsl.compiler import compile_source
from circuitdsl.diagnostics import Diagnostic, has_errors
from circuitdsl.fmt import format_module, format_source
from circuitdsl.grammar import get_parser
from circuitdsl.parser import parse_source

from .conftest import FIXTURES, register_fake

register_fake()  # hypothesis tests cannot use function-scoped fixtures

NAMES = ["a0", "a1", "a9", "m0", "m1", "embed", "pos", "out", "g", "d", "q", "k", "v", "in",
         "end", "prev", "answer", "parity", "fakegen", "seed", "recovered", "x_1"]  # fmt: skip
assert not set(NAMES) & set(KEYWORDS)


def _explicit():
    lit = {
        "NAME": st.sampled_from(NAMES),
        "MODEL_NAME": st.sampled_from(["smollm2-135m", "tiny", "nosuch-1.0"]),
        "INT": st.sampled_from(["0", "1", "3", "12"]),
        "NUMBER": st.sampled_from(["0", "1", "-2", "0.5", "1e-3", "+4"]),
        "STRING": st.sampled_from(['"native2l"', '"shared/datasets.circuit"', '"x.jsonl"', '"a\\"b"', '"#"']),
        "OP": st.sampled_from([">=", "<=", ">", "<"]),
        "_NL": st.sampled_from(["\n", "\n\n", "  # note\n"]),
        "_COMMA": st.sampled_from([",", ", ", ",\n    ", ",  # c\n  "]),
        "_ARROW": st.sampled_from(["->", " -> ", "->\n  "]),
        "_LPAR": st.sampled_from(["(", "(\n  "]),
        "_RPAR": st.sampled_from([")", "\n)"]),
        "_LBRACK": st.sampled_from(["[", "[\n "]),
        "_RBRACK": st.sampled_from(["]", "\n]"]),
        "COMMENT": st.just(" "),
        "WS": st.sampled_from([" ", "\t"]),
    }
    for term in get_parser().terminals:
        if term.pattern.type == "str" and term.name not in lit:
            lit[term.name] = st.just(f" {term.pattern.value} ")
    return lit


TEXTS = from_lark(get_parser(), start="start", explicit=_explicit())
PATH = str(FIXTURES / "fuzz.circuit")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(TEXTS)
def test_generated_text_parses_compiles_and_formats(text):
    module = parse_source(text, PATH)
    result = compile_source(text, PATH)
    assert all(isinstance(d, Diagnostic) for d in result.diagnostics)
    assert (result.hypothesis is None) == has_errors(result.diagnostics)
    out = format_source(text, PATH)
    again = parse_source(out, PATH)
    assert again == module  # spans ignored by AST equality
    assert format_module(again) == out  # idempotent


def test_fmt_fixtures_round_trip_and_keep_comments():
    for f in FIXTURES.glob("*.circuit"):
        text = f.read_text()
        out = format_source(text, str(f))
        assert parse_source(out) == parse_source(text)
        assert format_source(out) == out
        assert [c.text for c in parse_source(out).comments] == [c.text for c in parse_source(text).comments]
    messy = "model   tiny# m\n\n\n\ndataset d=fakegen( n=4 ,)\nedge embed->a0.1,  # first\n  a0.2\n"
    assert format_source(messy) == (
        "model tiny  # m\n\ndataset d = fakegen(n = 4)\n# first\nedge embed -> a0.1, a0.2\n"
    )


def test_long_statements_wrap_at_commas_and_arrows():
    from circuitdsl.fmt import LINE_WIDTH, _one_line, _pieces

    heads = [f"a{L}.{H}" for L in range(12) for H in range(4)]
    text = (
        "model tiny\n"
        f"dataset d = induction(n = 64, length = 12, seed = 3, names = [{', '.join(str(i) for i in range(30))}])\n"
        f"group g = {', '.join(heads)}\n"
        f"node {', '.join(heads[:30])} at A1, B1 depends on (token at A1, token at B1)\n"
        f"edge embed, pos -> {', '.join(heads[:25])} -> {', '.join(heads[25:40])} -> out\n"
        f"wire embed, {', '.join(heads)}, out\n"
    )
    module = parse_source(text)
    for s in module.statements:
        assert " ".join(_pieces(s)) == _one_line(s)
    out = format_source(text)
    assert all(len(line) <= LINE_WIDTH for line in out.splitlines())
    assert len(out.splitlines()) > len(text.splitlines())
    assert parse_source(out) == module
    assert format_source(out) == out
    # continuation lines are indented; short statements stay on one line
    assert all(
        line.startswith("    ")
        for line in out.splitlines()
        if line.split(" ", 1)[0] not in ("model", "dataset", "group", "node", "edge", "wire")
    )
    assert format_source("model tiny\nedge embed -> a0.0.q\n") == "model tiny\nedge embed -> a0.0.q\n"
