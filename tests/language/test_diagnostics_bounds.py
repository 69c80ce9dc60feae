"""Diagnostics stay small whatever the file (issue 18: a 20 KB file printed 151 MB, a 400 KB file grew to
21.9 GB): a source line is shown once per diagnostic and at most SHOWN_COLUMNS characters of it, as a
window around the span with its caret under the span's own text; messages quoting a huge name are
clipped; a file keeps its first MAX_DIAGNOSTICS diagnostics and one note counting the rest."""

from __future__ import annotations

import json

from circuitdsl.compiler import compile_source
from circuitdsl.diagnostics import MAX_DIAGNOSTICS, SHOWN_COLUMNS, Diagnostic, render, render_one
from circuitdsl.ir import Span


def _picture(rendered: str) -> tuple[str, str]:
    """(the shown source text, the caret line) of a full rendering."""
    lines = rendered.split("\n")
    src = next(x for x in lines if x.startswith("7 | "))
    caret = lines[lines.index(src) + 1]
    return src[len("7 | ") :], caret[len("  | ") :]


def test_a_span_in_a_100000_character_line_is_shown_in_a_window_with_its_caret_under_it():
    words = [f"w{i:06d}" for i in range(11200)]  # 9 characters each with the ", "
    line = ", ".join(words)
    assert len(line) > 100_000
    col = line.index("w006000") + 1
    d = Diagnostic("E203", "unknown node or group `w006000`", Span("x.circuit", 7, col, 7, col + 7), label="here")
    sources = {"x.circuit": "\n" * 6 + line + "\n"}
    out = render_one(d, sources)
    shown, caret = _picture(out)
    assert len(out) < 2 * SHOWN_COLUMNS + 200
    assert len(shown) <= SHOWN_COLUMNS + 6 and shown.startswith("...") and shown.endswith("...")
    start = caret.index("^")
    assert shown[start : start + 7] == "w006000" and caret[start:].startswith("^" * 7 + " here")
    # at the line's very end and start, the window stays inside the line
    for word in (words[-1], words[0]):
        c = line.index(word) + 1
        shown, caret = _picture(render_one(Diagnostic("E203", "x", Span("x.circuit", 7, c, 7, c + 7)), sources))
        assert shown[caret.index("^") : caret.index("^") + 7] == word


def test_a_huge_name_in_a_message_is_clipped():
    name = "n" * 100_000
    out = render_one(Diagnostic("E203", f"unknown node or group `{name}`", None, hint=f"did you mean `{name}`?"), {})
    assert len(out) < 1200 and " ... " in out


def test_thousands_of_errors_on_one_long_line_print_the_cap_and_a_count():
    n = 3000
    src = (
        "model tiny\ndataset d = induction(n = 8)\ngroup big = "
        + ", ".join(f"x{i}" for i in range(n))
        + "\nedge big -> out\n"
    )
    r = compile_source(src, "x.circuit")
    assert len(r.diagnostics) == MAX_DIAGNOSTICS + 1
    note = r.diagnostics[-1]
    assert note.code == "N001" and f"{n - MAX_DIAGNOSTICS} more errors not shown" in note.message
    full = r.render("full")
    assert len(full) < (MAX_DIAGNOSTICS + 1) * (SHOWN_COLUMNS + 400)  # not 3000 copies of a 20 KB line
    shown = [x for x in full.split("\n") if x.startswith("3 | ")]  # the long line, once per diagnostic shown
    assert len(shown) == MAX_DIAGNOSTICS and all(len(x) <= len("3 | ") + SHOWN_COLUMNS + 6 for x in shown)
    doc = json.loads(render(r.diagnostics, "json"))
    assert len(doc) == MAX_DIAGNOSTICS + 1 and doc[-1]["code"] == "N001"
