"""Text -> frozen AST (circuitdsl.ast). Syntax errors become E1xx diagnostics.

No lark type ever leaves this module: lark's exceptions are turned into Diagnostics that show the
text the user should type (`->`, `,`, `end of line`), never terminal names.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import replace

from circuitdsl import ast
from circuitdsl.compiler.codes import diag
from circuitdsl.diagnostics import CircuitError, source_lines
from circuitdsl.grammar import get_parser
from circuitdsl.ir import Span

__all__ = ["parse_source", "extract_comments", "describe_expected", "source_lines"]

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
_NUMBER_HINT = "integers run from -9223372036854775808 to 9223372036854775807; floats must be finite"


MAX_PATH_BYTES = 1024
"""A path in a `.circuit` file is at most this long (UTF-8), each of its names at most 255 bytes."""
_PATH_HINT = "paths are relative to this file; a name holds at most 255 bytes, a path 1024, and no NUL character"


def _unusable_path(value: str) -> str:
    """Why `value` cannot name a file on any common file system ('' when it can)."""
    if not value:
        return "it is empty"
    if "\x00" in value:
        return "it contains a NUL character"
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    if len(raw) > MAX_PATH_BYTES:
        return f"it is {len(raw)} bytes long"
    longest = max(len(part) for part in raw.replace(b"\\", b"/").split(b"/"))
    if longest > 255:
        return f"one of its names is {longest} bytes long"
    return ""


def _shorten(text: str, keep: int = 24) -> str:
    """`text`, or its start and end around an ellipsis when it is long (a 10,000-digit number)."""
    return text if len(text) <= 2 * keep + 3 else f"{text[:keep]}...{text[-keep:]}"


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

    def path_string(self, tok) -> str:
        """A string that names a file (import, model directory, JSONL dataset): E110 when no file system
        could hold it, so that later stages never hand the operating system an impossible path."""
        value = self.string(tok)
        why = _unusable_path(value)
        if why:
            raise CircuitError([diag("E110", f"`{_shorten(value)}` cannot name a file: {why}", self.tspan(tok),
                                     label="not a usable path", hint=_PATH_HINT)])  # fmt: skip
        return value

    # statements -----------------------------------------------------------------------------
    def start(self, meta, ch):
        return tuple(ch)

    def import_stmt(self, meta, ch):
        return ast.Import(self.path_string(ch[0]), span=self.span(meta))

    def model_name(self, meta, ch):
        return ast.Model(str(ch[0]), False, span=self.span(meta))

    def model_path(self, meta, ch):
        return ast.Model(self.path_string(ch[0]), True, span=self.span(meta))

    def dataset_gen(self, meta, ch):
        args = tuple(c for c in ch[2:] if c is not None)
        return ast.DatasetGen(self.ident(ch[0]), self.ident(ch[1]), args, span=self.span(meta))

    def dataset_file(self, meta, ch):
        return ast.DatasetFile(
            self.ident(ch[0]), self.path_string(ch[1]), path_span=self.tspan(ch[1]), span=self.span(meta)
        )

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
        part = ch.pop() if isinstance(ch[-1], ast.Ident) else None
        head = self.int64(ch[1]) if len(ch) > 1 else None
        return ast.NodeRef(str(ch[0]), head, None if part is None else part.text, span=self.span(meta))

    def part(self, meta, ch):
        return ast.Ident("".join(str(t) for t in ch), span=self.span(meta))

    def component(self, meta, ch):
        head = self.int64(ch[1]) if len(ch) > 1 else None
        return ast.NodeRef(str(ch[0]), head, span=self.span(meta))

    def split_subspace(self, meta, ch):
        node, name, source = ch
        return ast.Split(node, "subspace", self.path_string(source), self.ident(name),
                         source_span=self.tspan(source), span=self.span(meta))  # fmt: skip

    def split_sae(self, meta, ch):
        node, source, *latents = ch
        lits = tuple(ast.Literal("int", self.int64(t), str(t), span=self.tspan(t)) for t in latents if t is not None)
        return ast.Split(node, "sae", self.path_string(source), None, lits, source_span=self.tspan(source),
                         span=self.span(meta))  # fmt: skip

    def _ref_from(self, toks) -> ast.NodeRef:
        """NAME [INT] tokens -> NodeRef spanning them."""
        name = toks[0]
        head = self.int64(toks[1]) if len(toks) > 1 else None
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
        head = (
            self.int64(rest.pop(0)) if rest and not isinstance(rest[0], ast.Ident) and rest[0].type == "INT" else None
        )
        part = rest.pop(0) if rest and isinstance(rest[0], ast.Ident) else None
        if part is not None:
            end_line, end_col = part.span.end_line, part.span.end_col
        else:
            end = ch[1] if head is not None else ch[0]
            end_line, end_col = end.end_line, end.end_column
        ref = ast.NodeRef(str(name), head, None if part is None else part.text,
                          span=Span(self.path, name.line, name.column, end_line, end_col))  # fmt: skip
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
            return ast.Literal("int", self.int64(tok), text, span=self.tspan(tok))
        value = float(text)
        if not math.isfinite(value):
            raise CircuitError([diag("E107", f"number `{_shorten(text)}` is too large", self.tspan(tok),
                                     label="beyond the largest float (about 1.8e308)", hint=_NUMBER_HINT)])  # fmt: skip
        return ast.Literal("float", value, text, span=self.tspan(tok))

    def int64(self, tok) -> int:
        """The value of an integer token; E107 outside the 64-bit range (checked before converting, so a
        10,000-digit number costs nothing and hits no conversion limit)."""
        text = str(tok)
        digits = text.lstrip("+-").lstrip("0")
        if len(digits) <= 19:
            value = int(text)
            if -(2**63) <= value < 2**63:
                return value
        raise CircuitError([diag("E107", f"integer `{_shorten(text)}` is out of range", self.tspan(tok),
                                 label=f"{len(digits)} digits; integers are 64-bit", hint=_NUMBER_HINT)])  # fmt: skip

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
        if not name.startswith("_")
        and name not in ("span", "tspan", "ident", "string", "number", "int64", "path_string")
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
    """Comments (with whether code precedes them on their line) and the blank line numbers. A comment
    is kept character for character up to the end of its line, less trailing spaces, tabs and `\r`."""
    comments, blanks = [], set()
    for n, line in enumerate(source_lines(text), start=1):
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
                comments.append(ast.Comment(line[i:].rstrip(" \t\r"), trailing, span=sp))
                break
            i += 1
    return tuple(comments), frozenset(blanks)


MAX_SYNTAX_ERRORS = 20
"""Syntax errors reported per file at most (each later one after skipping the statement that failed)."""

MAX_SOURCE_CHARS = 256 * 1024
"""A `.circuit` file holds at most this many characters (E109). Parsing costs about 30 s of CPU per
megabyte (lark's LALR parser in Python); the largest real hypotheses are a few kilobytes."""

MAX_NESTING = 64
"""Parentheses and brackets nest at most this deep (a feature tuple, a list value): deeper nesting is
E108, found before parsing, so no stage of the compiler recurses without bound."""


def _too_deep(text: str, path: str):
    """E108 at the first `(` or `[` nested deeper than MAX_NESTING (outside strings and comments)."""
    depth = 0
    line, col = 1, 0
    in_str = in_comment = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col += 1
        if c == "\n":
            line, col, in_str, in_comment = line + 1, 0, False, False
        elif in_comment:
            pass
        elif in_str:
            if c == "\\":
                i += 1
                col += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "#":
            in_comment = True
        elif c in "([":
            depth += 1
            if depth > MAX_NESTING:
                return diag("E108", f"parentheses and brackets nest more than {MAX_NESTING} deep", Span(path, line, col, line, col + 1),
                            label=f"level {depth}", hint="a feature tuple or a list this deep is not meant: flatten it")  # fmt: skip
        elif c in ")]":
            depth = max(0, depth - 1)
        i += 1
    return None


def parse_source(text: str, path: str = "<string>") -> ast.Module:
    """Parse one file's text. Raises CircuitError (E1xx) on syntax errors: after an error the parser
    skips the statement it was in (the statement's lines, continuations included) and goes on from the
    line after it, so one run reports every broken statement (up to MAX_SYNTAX_ERRORS). Each part of
    the text is parsed once: a file with 20 errors costs about what a file with none does."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

    if len(text) > MAX_SOURCE_CHARS:
        raise CircuitError([diag("E109", f"the file holds {len(text):,} characters; a `.circuit` file holds at most {MAX_SOURCE_CHARS:,}",
                                 Span(path, 1, 1, 1, 2), label="file too large",
                                 hint="a hypothesis this large is not meant: split it with `import`, or use `wire` and groups")])  # fmt: skip
    work = text if text.endswith("\n") else text + "\n"
    deep = _too_deep(work, path)
    if deep is not None:
        raise CircuitError([deep])
    found: list = []
    tree = None
    lines: list[str] | None = None
    start = 1  # the first line of the text still to parse
    while len(found) < MAX_SYNTAX_ERRORS:
        # statements start fresh at a line (lines: split when start first moved)
        chunk = work if start == 1 or lines is None else "\n".join(lines[start - 1 :])
        try:
            tree = get_parser().parse(chunk)
            break
        except UnexpectedInput as e:
            d = _shift(
                _syntax_diagnostic(e, chunk, path, UnexpectedCharacters, UnexpectedToken, UnexpectedEOF), start - 1
            )
            found.append(d)
            if d.code == "E103":
                break
            if lines is None:
                lines = work.split("\n")
            start = _statement_end(lines, max(d.span.line, start)) + 1
            if start > len(lines):
                break
    if found:
        raise CircuitError(found)
    try:
        statements = _transformer(path).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, CircuitError):
            raise e.orig_exc from None
        raise
    comments, blanks = extract_comments(text, path)
    lines_n = text.count("\n") + 1
    return ast.Module(tuple(statements), comments, path=path, blank_lines=blanks, span=Span(path, 1, 1, lines_n, 1))


def _shift(d, by: int):
    """A diagnostic found in a part of the text that starts `by` lines into the file, in file lines."""
    if not by or d.span is None:
        return d
    sp = d.span
    return replace(d, span=Span(sp.file, sp.line + by, sp.col, sp.end_line + by, sp.end_col))


def _statement_end(lines: list[str], line: int) -> int:
    """The last line (1-based) of the statement holding `line`: its continuation lines (after a line
    ending in `,` `->` `(` `[`, or before a line starting with `)` `]`) included."""
    end = line
    while end < len(lines):
        nxt = end  # 0-based index of the line after `end`
        while nxt < len(lines) and (not lines[nxt].strip() or lines[nxt].lstrip().startswith("#")):
            nxt += 1
        if nxt < len(lines) and (_continues(lines[end - 1]) or lines[nxt].lstrip().startswith((")", "]"))):
            end = nxt + 1
        else:
            break
    return end


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
    lines = source_lines(text)
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
        lines = source_lines(text.removesuffix("\n")) or [""]
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
    return diag(
        "E101", f"unexpected {what}", sp, label=f"expected {expected}", hint=_syntax_hint(tok, e.expected or ())
    )


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
