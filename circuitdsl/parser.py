"""Text -> frozen AST (circuitdsl.ast). Syntax errors become E1xx diagnostics.

No lark type ever leaves this module: lark's exceptions are turned into Diagnostics that show the
text the user should type (`->`, `,`, `end of line`), never terminal names.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace

from circuitdsl import ast
from circuitdsl.compiler.codes import diag
from circuitdsl.diagnostics import CircuitError
from circuitdsl.grammar import get_parser
from circuitdsl.ir import Span

__all__ = ["parse_source", "extract_comments", "describe_expected"]

_FRIENDLY = {
    "NAME": "a name",
    "MODEL_NAME": "a model name",
    "INT": "a head number",
    "NUMBER": "a number",
    "STRING": 'a string in double quotes ("...")',
    "_NL": "end of line",
    "_COMMA": "`,`",
    "_ARROW": "`->`",
    "_LPAR": "`(`",
    "_RPAR": "`)`",
    "_LBRACK": "`[`",
    "_RBRACK": "`]`",
    "OP": "a comparison (`>=`, `<=`, `>`, `<`)",
    "$END": "end of file",
}
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}


def _terminal_text(name: str) -> str:
    if name in _FRIENDLY:
        return _FRIENDLY[name]
    try:
        term = get_parser().get_terminal(name)
    except KeyError:
        return name.lower()
    if term.pattern.type == "str":
        return f"`{term.pattern.value}`"
    return name.lower()


def describe_expected(names) -> str:
    """Human text for a set of lark terminal names: "`->`, `,` or end of line"."""
    texts = sorted({_terminal_text(n) for n in names}, key=lambda t: (not t.startswith("`"), t))
    if not texts:
        return "nothing"
    if len(texts) == 1:
        return texts[0]
    return ", ".join(texts[:-1]) + " or " + texts[-1]


class _Builder:
    """lark Transformer callbacks (see `_transformer`), building AST nodes with spans."""

    def __init__(self, path: str):
        self.path = path

    def span(self, meta) -> Span:
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def tspan(self, tok) -> Span:
        return Span(self.path, tok.line, tok.column, tok.end_line, tok.end_column)

    def ident(self, tok) -> ast.Ident:
        return ast.Ident(str(tok), span=self.tspan(tok))

    def string(self, tok) -> str:
        body = str(tok)[1:-1]
        out, i = [], 0
        while i < len(body):
            c = body[i]
            if c == "\\":
                nxt = body[i + 1]
                if nxt not in _ESCAPES:
                    col = tok.column + 1 + i
                    sp = Span(self.path, tok.line, col, tok.line, col + 2)
                    raise CircuitError(
                        [
                            diag(
                                "E106",
                                f"unknown escape sequence `\\{nxt}` in a string",
                                sp,
                                label="not an escape",
                                hint='strings understand \\" \\\\ \\n \\t; write \\\\ for a backslash',
                            )
                        ]
                    )
                out.append(_ESCAPES[nxt])
                i += 2
            else:
                out.append(c)
                i += 1
        return "".join(out)

    # statements -----------------------------------------------------------------------------
    def start(self, meta, ch):
        return tuple(ch)

    def import_stmt(self, meta, ch):
        return ast.Import(self.string(ch[0]), span=self.span(meta))

    def model_name(self, meta, ch):
        return ast.Model(str(ch[0]), False, span=self.span(meta))

    def model_path(self, meta, ch):
        return ast.Model(self.string(ch[0]), True, span=self.span(meta))

    def dataset_gen(self, meta, ch):
        args = tuple(c for c in ch[2:] if c is not None)
        return ast.DatasetGen(self.ident(ch[0]), self.ident(ch[1]), args, span=self.span(meta))

    def dataset_file(self, meta, ch):
        return ast.DatasetFile(self.ident(ch[0]), self.string(ch[1]), path_span=self.tspan(ch[1]), span=self.span(meta))

    def arg(self, meta, ch):
        return ast.Arg(self.ident(ch[0]), ch[1], span=self.span(meta))

    def on_stmt(self, meta, ch):
        return ast.On(self.ident(ch[0]), span=self.span(meta))

    def metric_stmt(self, meta, ch):
        return ast.MetricStmt(self.ident(ch[0]), span=self.span(meta))

    def ablate_stmt(self, meta, ch):
        return replace(ch[0], span=self.span(meta))

    def ab_resample(self, meta, ch):
        return ast.Ablate("resample", span=self.span(meta))

    def ab_resample_from(self, meta, ch):
        return ast.Ablate("resample from", self.ident(ch[0]), span=self.span(meta))

    def ab_paired(self, meta, ch):
        return ast.Ablate("paired", self.ident(ch[0]), span=self.span(meta))

    def ab_mean(self, meta, ch):
        return ast.Ablate("mean", span=self.span(meta))

    def ab_mean_over(self, meta, ch):
        return ast.Ablate("mean over", self.ident(ch[0]), span=self.span(meta))

    def ab_zero(self, meta, ch):
        return ast.Ablate("zero", span=self.span(meta))

    def group_stmt(self, meta, ch):
        return ast.Group(self.ident(ch[0]), ch[1], span=self.span(meta))

    def node_stmt(self, meta, ch):
        return ast.NodeStmt(ch[0], ch[1], ch[2], span=self.span(meta))

    def noderefs(self, meta, ch):
        return tuple(ch)

    def names(self, meta, ch):
        return tuple(self.ident(t) for t in ch)

    def noderef(self, meta, ch):
        head = int(ch[1]) if len(ch) > 1 else None
        return ast.NodeRef(str(ch[0]), head, span=self.span(meta))

    def _ref_from(self, toks) -> ast.NodeRef:
        """NAME [INT] tokens -> NodeRef spanning them."""
        name = toks[0]
        head = int(toks[1]) if len(toks) > 1 else None
        end = toks[-1]
        return ast.NodeRef(str(name), head, span=Span(self.path, name.line, name.column, end.end_line, end.end_column))

    def _range_from(self, meta, toks) -> ast.NodeRange:
        """NAME [INT] NAME [INT] tokens (the `..` is dropped by the grammar) -> NodeRange."""
        split = 2 if len(toks) > 1 and toks[1].type == "INT" else 1
        start, end = self._ref_from(toks[:split]), self._ref_from(toks[split:])
        return ast.NodeRange(start, end, span=self.span(meta))

    def noderange(self, meta, ch):
        return self._range_from(meta, ch)

    def target_range(self, meta, ch):
        rng = self._range_from(meta, ch)
        return ast.Target(rng, None, span=rng.span)

    def wire_stmt(self, meta, ch):
        return ast.Wire(ch[0], span=self.span(meta))

    def edge_stmt(self, meta, ch):
        return ast.Edge(tuple(ch), span=self.span(meta))

    def targets(self, meta, ch):
        return tuple(ch)

    def target(self, meta, ch):
        name, rest = ch[0], list(ch[1:])
        head = int(rest.pop(0)) if rest and rest[0].type == "INT" else None
        end = ch[1] if head is not None else ch[0]
        ref = ast.NodeRef(str(name), head, span=Span(self.path, name.line, name.column, end.end_line, end.end_column))
        port = self.ident(rest[0]) if rest else None
        return ast.Target(ref, port, span=self.span(meta))

    def set_stmt(self, meta, ch):
        return ast.SetStmt(ch[0], ch[1], span=self.span(meta))

    def expect_stmt(self, meta, ch):
        return ast.ExpectStmt(ch[0], str(ch[1]), self.number(ch[2]), span=self.span(meta))

    def dotted(self, meta, ch):
        return ast.Ident(".".join(str(t) for t in ch), span=self.span(meta))

    # features ---------------------------------------------------------------------------------
    def f_input(self, meta, ch):
        return ast.FeatureExpr("input", span=self.span(meta))

    def f_nothing(self, meta, ch):
        return ast.FeatureExpr("nothing", span=self.span(meta))

    def f_field(self, meta, ch):
        return ast.FeatureExpr("field", self.ident(ch[0]), span=self.span(meta))

    def f_token(self, meta, ch):
        return ast.FeatureExpr("token", self.ident(ch[0]), span=self.span(meta))

    def f_function(self, meta, ch):
        text = ".".join(str(t) for t in ch[:-1]) + ":" + str(ch[-1])
        sp = self.span(meta)
        return ast.FeatureExpr("function", ast.Ident(text, span=sp), span=sp)

    def f_tuple(self, meta, ch):
        return ast.FeatureExpr("tuple", None, tuple(ch), span=self.span(meta))

    # values -----------------------------------------------------------------------------------
    def number(self, tok) -> ast.Literal:
        text = str(tok)
        if re.fullmatch(r"[+-]?[0-9]+", text):
            return ast.Literal("int", int(text), text, span=self.tspan(tok))
        return ast.Literal("float", float(text), text, span=self.tspan(tok))

    def v_number(self, meta, ch):
        return self.number(ch[0])

    def v_string(self, meta, ch):
        return ast.Literal("string", self.string(ch[0]), span=self.span(meta))

    def v_name(self, meta, ch):
        return ast.Literal("name", str(ch[0]), span=self.span(meta))

    def v_list(self, meta, ch):
        return ast.Literal("list", tuple(c for c in ch if c is not None), span=self.span(meta))


def _transformer(path: str):
    from lark import Transformer, v_args

    builder = _Builder(path)
    methods = {
        name: v_args(meta=True)(_bind(builder, name))
        for name in dir(_Builder)
        if not name.startswith("_") and name not in ("span", "tspan", "ident", "string", "number")
    }
    cls = type("_CircuitTransformer", (Transformer,), methods)
    return cls()


def _bind(builder, name):
    method = getattr(builder, name)

    def callback(self, meta, children):
        return method(meta, children)

    callback.__name__ = name
    return callback


def extract_comments(text: str, path: str = "<string>") -> tuple[tuple[ast.Comment, ...], frozenset[int]]:
    """Comments (with whether code precedes them on their line) and the blank line numbers."""
    comments, blanks = [], set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            blanks.add(n)
            continue
        in_str, i = False, 0
        while i < len(line):
            c = line[i]
            if in_str and c == "\\":
                i += 2
                continue
            if c == '"':
                in_str = not in_str
            elif c == "#" and not in_str:
                trailing = bool(line[:i].strip())
                sp = Span(path, n, i + 1, n, len(line) + 1)
                comments.append(ast.Comment(line[i:].rstrip(), trailing, span=sp))
                break
            i += 1
    return tuple(comments), frozenset(blanks)


MAX_SYNTAX_ERRORS = 20
"""Syntax errors reported per file at most (each later one after skipping the statement that failed)."""


def parse_source(text: str, path: str = "<string>") -> ast.Module:
    """Parse one file's text. Raises CircuitError (E1xx) on syntax errors: after an error the parser
    skips the statement it was in (the statement's lines, continuations included, read as blank) and
    goes on, so one run reports every broken statement (up to MAX_SYNTAX_ERRORS)."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

    work = text if text.endswith("\n") else text + "\n"
    found = []
    tree = None
    while len(found) < MAX_SYNTAX_ERRORS:
        try:
            tree = get_parser().parse(work)
            break
        except UnexpectedInput as e:
            d = _syntax_diagnostic(e, work, path, UnexpectedCharacters, UnexpectedToken, UnexpectedEOF)
            found.append(d)
            skipped = None if d.code == "E103" else _skip_statement(work, d.span.line)
            if skipped is None or skipped == work:
                break
            work = skipped
    if found:
        raise CircuitError(found)
    try:
        statements = _transformer(path).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, CircuitError):
            raise e.orig_exc from None
        raise
    comments, blanks = extract_comments(text, path)
    lines = text.count("\n") + 1
    return ast.Module(
        tuple(statements), comments, path=path, blank_lines=blanks, span=Span(path, 1, 1, lines, 1)
    )


def _skip_statement(text: str, line: int) -> str | None:
    """`text` with the lines of the statement holding `line` made blank (line numbers and the columns of
    every other line unchanged); None if there is no such line."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    start = _statement_start(lines, line)
    end = line
    while end < len(lines):
        nxt = end  # 0-based index of the line after `end`
        while nxt < len(lines) and (not lines[nxt].strip() or lines[nxt].lstrip().startswith("#")):
            nxt += 1
        if nxt < len(lines) and (_continues(lines[end - 1]) or lines[nxt].lstrip().startswith((")", "]"))):
            end = nxt + 1
        else:
            break
    for i in range(start - 1, end):
        lines[i] = ""
    return "\n".join(lines)


def _continues(line: str) -> bool:
    code = line.split("#", 1)[0].rstrip()
    return code.endswith((",", "->", "(", "["))


def _statement_start(lines: list[str], n: int) -> int:
    """The line (1-based) where the statement holding line n starts (following continuations)."""
    while n > 1:
        prev = n - 1
        while prev >= 1 and (not lines[prev - 1].strip() or lines[prev - 1].lstrip().startswith("#")):
            prev -= 1
        if prev >= 1 and (_continues(lines[prev - 1]) or lines[n - 1].lstrip().startswith((")", "]"))):
            n = prev
        else:
            break
    return n


def _unknown_statement(text: str, line: int, path: str):
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    start = _statement_start(lines, line)
    src = lines[start - 1]
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", src)
    if not m or m.group(1) in ast.STATEMENT_KEYWORDS:
        return None
    word = m.group(1)
    sp = Span(path, start, m.start(1) + 1, start, m.end(1) + 1)
    close = difflib.get_close_matches(word, ast.STATEMENT_KEYWORDS, n=1)
    if close:
        hint = f"did you mean `{close[0]}`?"
    elif "->" in src:
        hint = f"an edge is written `edge {src.strip()}`"
    else:
        hint = "a statement starts with one of: " + ", ".join(f"`{k}`" for k in ast.STATEMENT_KEYWORDS)
    return diag("E105", f"unknown statement `{word}`", sp, label="not a statement keyword", hint=hint)


def _syntax_diagnostic(e, text, path, UnexpectedCharacters, UnexpectedToken, UnexpectedEOF):
    line = getattr(e, "line", 0) or 0
    col = getattr(e, "column", 0) or 0
    if isinstance(e, UnexpectedCharacters):
        char = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else ""
        if char == '"':
            end = text.find("\n", e.pos_in_stream)
            end = len(text) if end < 0 else end
            sp = Span(path, line, col, line, col + max(1, end - e.pos_in_stream))
            return diag("E104", "unterminated string", sp, label="this string has no closing `\"`",
                        hint='close the string with `"` on the same line')  # fmt: skip
        unknown = _unknown_statement(text, line, path)
        if unknown is not None:
            return unknown
        sp = Span(path, line, col, line, col + 1)
        shown = repr(char)[1:-1] if char else "end of file"
        return diag(
            "E102",
            f"unexpected character `{shown}`",
            sp,
            label=f"expected {describe_expected(e.allowed or ())}",
        )
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        lines = text.splitlines() or [""]
        last = len(lines)
        sp = Span(path, last, len(lines[-1]) + 1, last, len(lines[-1]) + 2)
        return diag(
            "E103",
            "the file ends in the middle of a statement",
            sp,
            label=f"expected {describe_expected(getattr(e, 'expected', ()) or ())}",
            hint="a line ending in `,`, `->`, `(` or `[` continues on the next line",
        )
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    unknown = _unknown_statement(text, tok.line, path)
    if unknown is not None:
        return unknown
    if tok.type == "_NL":
        what, width = "end of line", 1
    else:
        first = str(tok).split("\n", 1)[0].strip() or str(tok).strip()
        what, width = f"`{first}`", max(1, len(str(tok).split("\n", 1)[0]))
    sp = Span(path, tok.line, tok.column, tok.line, tok.column + width)
    expected = describe_expected(e.expected or ())
    return diag("E101", f"unexpected {what}", sp, label=f"expected {expected}", hint=_syntax_hint(tok, e.expected or ()))


def _syntax_hint(tok, expected) -> str:
    if str(tok) == "." and "_RANGE" not in expected and ("_ARROW" in expected or "_COMMA" in expected):
        return "a range has no port: name the range in a group (`group g = a1.0..a1.3`) and write `g.k`"
    if tok.type == "_NL" and "_ARROW" in expected:
        return "an edge needs a receiver after `->`"
    if tok.type == "_NL" and "_DEPENDS" not in expected and ("NAME" in expected or "NUMBER" in expected):
        return "the statement stops too early"
    if tok.type == "NUMBER" and "INT" not in expected and "NAME" in expected:
        return "node names are `embed`, `pos`, `out`, `aL.H` (head H of layer L) and `mL` (the MLP of layer L)"
    return ""
