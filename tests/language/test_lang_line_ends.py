"""`fmt` never drops or changes a character of a comment or a string (issue 18), and every reader of a
`.circuit` source agrees with the grammar on where lines end: only at "\\n" (an "\\r" before it is part
of the line ending). \\f, \\v, \\x1c-\\x1e, \\x85, U+2028 and U+2029 -- where `str.splitlines` would break
-- are characters inside a line for the parser, `fmt`, diagnostics and the HTML highlighter alike."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from circuitdsl.compiler import compile_source
from circuitdsl.diagnostics import source_lines
from circuitdsl.fmt import format_source
from circuitdsl.grammar import get_parser
from circuitdsl.parser import extract_comments, parse_source
from circuitdsl.report.highlight import highlight_circuit

BREAKERS = "\f\v\x1c\x1d\x1e\x85\u2028\u2029"

# any character a file can hold except the line feed that ends the comment (no lone surrogates: a
# UTF-8 file cannot hold them)
COMMENT_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=60)
LEANING = st.text(
    st.sampled_from(list(BREAKERS) + ["\r", "\t", " ", "#", '"', "\\", "a", "\x00", "é", "\ufeff"]), max_size=20
)


def _expected(comment: str) -> str:
    return ("#" + comment).rstrip(" \t\r")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(COMMENT_TEXT, LEANING), st.one_of(COMMENT_TEXT, LEANING), st.one_of(COMMENT_TEXT, LEANING))
@example("keep\u2028this", "and\x85this", "\f\v\x1c\x1d\x1e\u2029 end")
@example("a\rb", "\r", "tail\r\r")
def test_fmt_keeps_every_comment_character(own_line, trailing, inside):
    src = (f"#{own_line}\nmodel   tiny  #{trailing}\n"
           f"edge embed ->  # {inside}\n    a0.0,\n    a0.1\n")  # fmt: skip
    out = format_source(src)
    got = [c.text for c in parse_source(out).comments]
    assert sorted(got) == sorted([_expected(own_line), _expected(trailing), _expected(" " + inside)])
    assert format_source(out) == out  # idempotent


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='\n"\\'), max_size=40))
def test_fmt_keeps_every_string_character(body):
    """A string keeps its value character for character; fmt only spells a raw tab as `\\t`."""
    src = f'model tiny\ndataset d = "{body}.jsonl"\n'
    try:
        module = parse_source(src)
    except Exception:
        return
    out = format_source(src)
    again = parse_source(out)
    assert again == module and again.statements[1].path == body + ".jsonl"  # the value, character for character
    assert out == src or "\t" in body  # and its spelling (a raw tab is written `\t`)


@pytest.mark.parametrize("ch", list(BREAKERS))
def test_every_reader_ends_lines_where_the_grammar_does(ch):
    src = (f"# a comment with {ch} inside\nmodel tiny  # and {ch} here\n"
           f"dataset d = induction(n = 8)\nset seed = 0  # {ch}\nedge embed -> a9.9 -> out\n")  # fmt: skip
    lines = source_lines(src)
    assert len(lines) == src.count("\n") + 1
    # the grammar: the token `a9` is on line 5
    tree = get_parser().parse(src)
    a9 = next(t for t in tree.scan_values(lambda v: getattr(v, "type", "") == "NAME" and str(v) == "a9"))
    assert a9.line == 5 and lines[a9.line - 1].startswith("edge embed -> a9.9")
    # comments: where fmt finds them
    comments, _ = extract_comments(src)
    assert [c.span.line for c in comments] == [1, 2, 4] and all(ch in c.text for c in comments)
    # diagnostics: the caret picture shows line 5 itself
    r = compile_source(src, "x.circuit")
    (d,) = [d for d in r.diagnostics if d.code == "E202"]
    assert d.span.line == 5
    rendered = r.render("full")
    assert "5 | edge embed -> a9.9 -> out" in rendered
    assert len(rendered.splitlines()) == len(rendered.split("\n"))  # no line breaker printed raw
    # the highlighter: one HTML line per source line, in the same order
    html = highlight_circuit(src)
    assert len(html) == len(lines) and "a9.9" in html[4] and "seed" in html[3]


def test_crlf_files_stay_crlf_and_their_comments_lose_only_the_line_ending():
    src = "model   tiny  # one\r\nedge embed -> out # two \r\n"
    out = format_source(src)
    assert out == "model tiny  # one\r\nedge embed -> out  # two\r\n"
    assert [c.text for c in parse_source(out).comments] == ["# one", "# two"]
    assert highlight_circuit(src)[0].endswith('<span class="c"># one</span>')


@pytest.mark.parametrize("opener", ["(", "["])
def test_crlf_comment_lines_inside_brackets_do_not_hang_the_lexer(tmp_path, opener):
    """Found by the 10,000-file fuzz run: a 4 KB CRLF file took 11 s to lint. The continuation terminals
    (`)` or `]` after comment lines) could end a comment line's "\\r" two ways (inside `#...` or as the
    line end's "\\r?"), so a run of k CRLF comment lines before a missing `)` backtracked 2^k times: 20
    lines took 2 s per attempt, 40 would take days. Here 40 lines must lint (an error: unclosed) at once."""
    import subprocess
    import sys

    f = tmp_path / "h.circuit"
    lines = [
        "model tiny",
        f"dataset d = induction{opener}n = 8" if opener == "(" else f"set completeness.sizes = {opener}1",
    ]
    lines += [f"  # a comment line {i} of a Windows file" for i in range(40)] + ["edge embed -> out", ""]
    f.write_bytes("\r\n".join(lines).encode())
    try:
        r = subprocess.run(
            [sys.executable, "-m", "circuitdsl", "lint", str(f)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("lint of 40 CRLF comment lines inside an open bracket ran for over 60 s")
    assert r.returncode == 2 and "Traceback" not in r.stderr
