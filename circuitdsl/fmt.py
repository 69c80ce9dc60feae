"""The canonical formatter: AST -> text, keeping every comment and single blank lines; statements
longer than LINE_WIDTH are wrapped after a `,` or `->`.

`format_source(text)` parses, prints each statement in canonical spelling, and checks its own
work: the result must re-parse to an equal AST with the same comments, else it raises instead of
returning text that would lose something the user wrote.
"""

from __future__ import annotations

from circuitdsl import ast
from circuitdsl.diagnostics import CircuitError

__all__ = ["format_module", "format_source", "format_statement", "FormatterBug"]


class FormatterBug(RuntimeError):
    """The formatter produced text that does not mean the same as its input (never written)."""


def _string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _literal(v: ast.Literal) -> str:
    if v.kind in ("int", "float"):
        return v.text or repr(v.value)
    if v.kind == "string":
        return _string(v.value)
    if v.kind == "name":
        return v.value
    return "[" + ", ".join(_literal(x) for x in v.value) + "]"


def _feature(f: ast.FeatureExpr) -> str:
    if f.kind in ("input", "nothing"):
        return f.kind
    if f.kind == "tuple" or f.arg is None:
        return "(" + ", ".join(_feature(p) for p in f.parts) + ")"
    if f.kind == "field":
        return f"field {f.arg.text}"
    if f.kind == "token":
        return f"token at {f.arg.text}"
    if f.kind == "function":
        return f.arg.text
    return "(" + ", ".join(_feature(p) for p in f.parts) + ")"


LINE_WIDTH = 100
"""Statements longer than this are wrapped after a `,` or `->` (the grammar continues a statement after
them), continuation lines indented by INDENT. Comments are never wrapped."""
INDENT = "    "


def _list(items) -> list[str]:
    """Pieces of a comma list: every item but the last keeps its comma."""
    items = list(items)
    return [x + "," for x in items[:-1]] + items[-1:]


def _literal_pieces(v: ast.Literal) -> list[str]:
    """A literal cut after the commas of its lists (joined by spaces: `_literal(v)`)."""
    if v.kind != "list" or not v.value:
        return [_literal(v)]
    out: list[str] = []
    for k, x in enumerate(v.value):
        ps = _literal_pieces(x)
        if k < len(v.value) - 1:
            ps[-1] += ","
        out += ps
    out[0] = "[" + out[0]
    out[-1] += "]"
    return out


def _pieces(s: ast.Statement) -> list[str]:
    """The statement's canonical text cut at its break opportunities: joined by single spaces, the
    pieces are the one-line form; a line may end after any piece."""
    if isinstance(s, ast.DatasetGen):
        head = f"dataset {s.name.text} = {s.generator.text}("
        if not s.args:
            return [head + ")"]
        args: list[str] = []
        for k, a in enumerate(s.args):
            ps = _literal_pieces(a.value)
            ps[0] = f"{a.key.text} = " + ps[0]
            if k < len(s.args) - 1:
                ps[-1] += ","
            args += ps
        args[0] = head + args[0]
        args[-1] += ")"
        return args
    if isinstance(s, ast.Group):
        parts = _list(r.text for r in s.members)
        parts[0] = f"group {s.name.text} = " + parts[0]
        return parts
    if isinstance(s, ast.NodeStmt):
        parts = _list(r.text for r in s.nodes)
        parts[0] = "node " + parts[0]
        if s.positions is not None:
            pos = _list(p.text for p in s.positions)
            parts[-1] += " at " + pos[0]
            parts += pos[1:]
        if s.feature is not None:
            parts[-1] += " depends on " + _feature(s.feature)
        return parts
    if isinstance(s, ast.Edge):
        parts = []
        for k, step in enumerate(s.steps):
            items = _list(t.text for t in step)
            if k < len(s.steps) - 1:
                items[-1] += " ->"
            parts += items
        parts[0] = "edge " + parts[0]
        return parts
    if isinstance(s, ast.Wire):
        parts = _list(r.text for r in s.nodes)
        parts[0] = "wire " + parts[0]
        return parts
    if isinstance(s, ast.Split):
        head = f"split {s.node.text} by "
        if s.kind == "subspace":
            assert s.name is not None
            return [head + f"subspace {s.name.text} from {_string(s.source)}"]
        head += f"sae {_string(s.source)}"
        if not s.latents:
            return [head]
        parts = _list(_literal(x) for x in s.latents)
        parts[0] = head + " latents " + parts[0]
        return parts
    return [_simple(s)]


def format_statement(s: ast.Statement, width: int | None = None) -> str:
    """One statement in canonical spelling: on one line, or wrapped to `width` columns (where a line can
    break) when it is longer."""
    pieces = _pieces(s)
    one = " ".join(pieces)
    if width is None or len(one) <= width:
        return one
    lines: list[str] = []
    line = ""
    for p in pieces:
        if not line:
            line = p if not lines else INDENT + p
        elif len(line) + 1 + len(p) <= width:
            line += " " + p
        else:
            lines.append(line)
            line = INDENT + p
    lines.append(line)
    return "\n".join(lines)


def _one_line(s: ast.Statement) -> str:
    return " ".join(_pieces(s))


def _simple(s: ast.Statement) -> str:
    """A statement that has no list in it (nowhere to break a line)."""
    if isinstance(s, ast.Import):
        return f"import {_string(s.path)}"
    if isinstance(s, ast.Model):
        return f"model {_string(s.ref) if s.is_path else s.ref}"
    if isinstance(s, ast.DatasetFile):
        return f"dataset {s.name.text} = {_string(s.path)}"
    if isinstance(s, ast.On):
        return f"on {s.dataset.text}"
    if isinstance(s, ast.MetricStmt):
        return f"metric {s.name.text}"
    if isinstance(s, ast.Ablate):
        return f"ablate unclaimed by {s.kind}" + (f" {s.dataset.text}" if s.dataset else "")
    if isinstance(s, ast.SetStmt):
        return f"set {s.key.text} = {_literal(s.value)}"
    if isinstance(s, ast.ExpectStmt):
        return f"expect {s.score.text} {s.op} {_literal(s.value)}"
    raise TypeError(f"not a statement: {type(s).__name__}")


def format_module(m: ast.Module) -> str:
    """Canonical text of a parsed file (comments kept; runs of blank lines become one)."""
    stmts = list(m.statements)
    leading: dict[int, list[ast.Comment]] = {}
    trailing: dict[int, ast.Comment] = {}
    items: list[tuple[int, int, int | ast.Comment]] = []  # (start line, end line, statement index or Comment)
    line_owner: dict[int, int] = {}  # line -> the statement spanning it (one lookup per comment, not a scan)
    for i, s in enumerate(stmts):
        items.append((s.span.line, s.span.end_line, i))
        for n in range(s.span.line, s.span.end_line + 1):
            line_owner.setdefault(n, i)
    for c in m.comments:
        owner = line_owner.get(c.span.line)
        if owner is None:
            items.append((c.span.line, c.span.line, c))
        elif c.trailing and c.span.line == stmts[owner].span.end_line and owner not in trailing:
            trailing[owner] = c
        else:
            leading.setdefault(owner, []).append(c)
    items.sort(key=lambda it: (it[0], 0 if isinstance(it[2], ast.Comment) else 1))
    lines: list[str] = []
    prev_end = None
    for start, end, item in items:
        if prev_end is not None and any(n in m.blank_lines for n in range(prev_end + 1, start)):
            lines.append("")
        if isinstance(item, ast.Comment):
            lines.append(item.text)
        else:
            lines.extend(c.text for c in leading.get(item, ()))
            text = format_statement(stmts[item], LINE_WIDTH)
            if item in trailing:
                text += "  " + trailing[item].text
            lines.append(text)
        prev_end = end
    return "\n".join(lines) + "\n" if lines else ""


def format_source(text: str, path: str = "<string>") -> str:
    """Canonical text for `text`. Raises CircuitError on a syntax error, FormatterBug if the
    result would not mean the same (so callers never write it). Lines end as the file's first line
    does (`\n`, or `\r\n`); comments and strings are kept character for character."""
    from circuitdsl.parser import parse_source

    module = parse_source(text, path)
    out = format_module(module)
    first_break = text.find("\n")
    if first_break > 0 and text[first_break - 1] == "\r":  # a CRLF file stays CRLF (as Black does)
        out = out.replace("\n", "\r\n")
    try:
        again = parse_source(out, path)
    except CircuitError as e:
        raise FormatterBug(f"formatted text does not parse: {e}") from None
    if again != module:
        raise FormatterBug("formatted text does not mean the same as the input")
    return out
