"""A tiny syntax highlighter for `.circuit` files (docs/LANGUAGE.md, Lexical): HTML spans, no pygments.

Classes: `c` comment, `s` string, `n` number, `k` keyword, `m` model node name (embed, pos, out,
aL.H, mL), `g` group name (declared by `group NAME = ...` in the same text), `p` port (.q .k .v .in),
`o` operator. Everything is HTML-escaped.
"""

from __future__ import annotations

import html
import re

from circuitdsl.diagnostics import source_lines

__all__ = ["highlight_circuit", "KEYWORDS"]

KEYWORDS = frozenset(
    "model dataset metric ablate unclaimed by from paired mean over zero resample group node at depends on "
    "edge set expect import input nothing field token true false".split()
)

_TOKEN = re.compile(
    r"""
    (?P<c>\#[^\n]*)
  | (?P<s>"(?:[^"\\\n]|\\.)*"?)
  | (?P<p>\.(?:q|k|v|in)\b)
  | (?P<m>\b(?:a\d+\.\d+|m\d+|embed|pos|out)\b)
  | (?P<n>(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b)
  | (?P<w>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<o>->|>=|<=|[=<>,()\[\]])
    """,
    re.VERBOSE,
)
_GROUP_DECL = re.compile(r"^[ \t\f]*group[ \t\f]+([A-Za-z_][A-Za-z0-9_]*)[ \t\f]*=", re.MULTILINE)


def _span(cls: str, text: str) -> str:
    return f'<span class="{cls}">{html.escape(text)}</span>'


def highlight_circuit(text: str) -> list[str]:
    """One HTML string per source line (the caller numbers them)."""
    groups = set(_GROUP_DECL.findall(text))
    lines = []
    for line in source_lines(text):  # lines end at "\n" only, as for the grammar (U+2028 & co stay inside)
        out: list[str] = []
        pos = 0
        for mt in _TOKEN.finditer(line):
            out.append(html.escape(line[pos : mt.start()]))
            kind = mt.lastgroup
            assert kind is not None  # every alternative of the pattern is a named group
            tok = mt.group()
            if kind == "w":
                head, _, rest = tok.partition(".")
                if head in groups:
                    out.append(_span("g", head) + (_span("p", "." + rest) if rest else ""))
                elif tok in KEYWORDS:
                    out.append(_span("k", tok))
                else:
                    out.append(html.escape(tok))
            else:
                out.append(_span(kind, tok))
            pos = mt.end()
        out.append(html.escape(line[pos:]))
        lines.append("".join(out))
    return lines
