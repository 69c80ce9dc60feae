"""Diagnostics: errors carry data (code, message, span, hint); rendering is separate.

Every user-facing problem (language, dataset rows, models, usage) is a Diagnostic.
Raising: `raise CircuitError([diag, ...])`. Rendering: `render(diags, fmt, sources)`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field

from circuitdsl.ir import Span

__all__ = [
    "Severity",
    "Label",
    "Diagnostic",
    "CircuitError",
    "render",
    "render_one",
    "has_errors",
    "source_lines",
    "visible",
    "cap",
    "MAX_DIAGNOSTICS",
]


class Severity(enum.Enum):
    ERROR = "error"
    """The file cannot be checked."""
    WARNING = "warning"
    """Checkable, but probably not what the author meant."""
    NOTE = "note"
    """Information the author should know (e.g. a GQA k/v edge shared by a group)."""


@dataclass(frozen=True)
class Label:
    """A secondary span with a message (e.g. 'first defined here')."""

    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    """E1xx syntax, E2xx names/resolution, E3xx structure, E4xx datasets, E5xx models, E9xx usage; W for warnings, N for notes."""
    message: str
    span: Span | None = None
    label: str = ""
    """Short text printed under the caret."""
    hint: str = ""
    severity: Severity = Severity.ERROR
    related: tuple[Label, ...] = ()

    def to_json(self) -> dict:
        d: dict = {"code": self.code, "severity": self.severity.value, "message": self.message}
        if self.span is not None:
            d.update(
                file=self.span.file,
                line=self.span.line,
                column=self.span.col,
                end_line=self.span.end_line,
                end_column=self.span.end_col,
            )
        if self.label:
            d["label"] = self.label
        if self.hint:
            d["hint"] = self.hint
        if self.related:
            d["related"] = [
                {"file": r.span.file, "line": r.span.line, "column": r.span.col, "message": r.message}
                for r in self.related
            ]
        return d


class CircuitError(Exception):
    """One or more diagnostics, at least one of them an error."""

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]):
        self.diagnostics = tuple(diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(render_one(first, {}, "concise") if first else "circuitdsl error")


def has_errors(diags) -> bool:
    return any(d.severity is Severity.ERROR for d in diags)


SHOWN_COLUMNS = 120
"""A source line longer than this is shown as a window around the span, with `...` for what is cut."""


def source_lines(text: str) -> list[str]:
    """Lines as the grammar and the JSONL reader see them: a line ends only at `\n` (with an optional
    `\r` before it). Form feeds, vertical tabs, `\x1c`-`\x1e`, `\x85`, U+2028 and U+2029 are
    characters inside a line, as they are for lark and for JSON, not line breaks as for
    `str.splitlines` (which would shift every line number after them)."""
    lines = text.split("\n")
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def visible(text: str) -> str:
    """`text` with each control or line-separator character replaced by one visible character (C0
    controls by their Unicode control pictures, others by U+FFFD), so that a diagnostic stays one
    line per line and its caret columns stay aligned. Tabs are kept."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c == "\t" or c.isprintable() or c == " ":
            out.append(c)
        elif ord(c) < 0x20:
            out.append(chr(0x2400 + ord(c)))
        elif c == "\x7f":
            out.append("\u2421")
        else:
            out.append("\ufffd")
    return "".join(out)


@dataclass
class _Sources:
    texts: dict[str, str] = field(default_factory=dict)
    _lines: dict[str, list[str] | None] = field(default_factory=dict)

    def line(self, file: str, n: int) -> str | None:
        if file not in self._lines:
            text = self.texts.get(file)
            if text is None:
                try:
                    with open(file, encoding="utf-8", newline="") as f:
                        text = f.read()
                except (OSError, UnicodeDecodeError, ValueError):
                    text = None
            self._lines[file] = source_lines(text) if text is not None else None
        lines = self._lines[file]
        if lines is None:
            return None
        return lines[n - 1] if 1 <= n <= len(lines) else None


def _window(text: str, col: int, width: int) -> tuple[str, int, int]:
    """(shown text, caret column, caret width) for a span starting at 1-based `col`, `width` long."""
    if len(text) <= SHOWN_COLUMNS:
        return text, col, width
    before = 40
    start = max(0, min(col - 1 - before, len(text) - SHOWN_COLUMNS))
    end = min(len(text), start + SHOWN_COLUMNS)
    shown = text[start:end]
    lead = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    caret_col = len(lead) + (col - 1 - start) + 1
    caret_width = max(1, min(width, end - (col - 1)))
    return lead + shown + tail, caret_col, caret_width


MAX_MESSAGE = 400
"""Messages and hints longer than this (a 5,000-character name quoted in one) keep their start and end."""


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def render_one(d: Diagnostic, sources: dict[str, str] | _Sources, fmt: str = "full") -> str:
    src = sources if isinstance(sources, _Sources) else _Sources(dict(sources))
    message = visible(_clip(d.message))
    hint = visible(_clip(d.hint))
    if fmt == "concise":
        where = f"{visible(d.span.file)}:{d.span.line}:{d.span.col}: " if d.span else ""
        tail = f" (help: {hint})" if hint else ""
        return f"{where}{d.code} {message}{tail}"
    out = [f"{d.severity.value}[{d.code}]: {message}"]
    if d.span is not None:
        s = d.span
        gutter = " " * len(str(s.line))
        out.append(f"{gutter}--> {visible(s.file)}:{s.line}:{s.col}")
        text = src.line(s.file, s.line)
        if text is not None:
            width = max(1, (s.end_col - s.col) if s.end_line == s.line else len(text) - s.col + 1)
            shown, col, width = _window(text, s.col, width)
            out.append(f"{gutter} |")
            out.append(f"{s.line} | {visible(shown)}")
            caret = " " * (col - 1) + "^" * width
            out.append(f"{gutter} | {caret}" + (f" {visible(_clip(d.label))}" if d.label else ""))
            out.append(f"{gutter} |")
    for r in d.related:
        out.append(f"note: {visible(_clip(r.message))}")
        out.append(f"  --> {visible(r.span.file)}:{r.span.line}:{r.span.col}")
    if hint:
        out.append(f"help: {hint}")
    return "\n".join(out)


MAX_DIAGNOSTICS = 50
"""Diagnostics kept per file (`cap`); the rest are counted in one note."""


def cap(diags, limit: int = MAX_DIAGNOSTICS) -> tuple[Diagnostic, ...]:
    """The first `limit` diagnostics, and if there were more, a note N001 counting the rest (a file
    with 100,000 mistakes gets 50 and a count, not gigabytes of output)."""
    diags = tuple(diags)
    if len(diags) <= limit:
        return diags
    rest = diags[limit:]
    errors = sum(d.severity is Severity.ERROR for d in rest)
    others = len(rest) - errors
    parts = [
        f"{errors} more error{'s' * (errors != 1)}" if errors else "",
        f"{others} more warning(s) or note(s)" if others else "",
    ]
    first = next((d.span.file for d in diags if d.span is not None), None)
    where = f" in {first}" if first else ""
    note = Diagnostic("N001", f"{' and '.join(p for p in parts if p)} not shown{where}", None,
                      hint=f"the first {limit} are shown; fix them and run again", severity=Severity.NOTE)  # fmt: skip
    return diags[:limit] + (note,)


def render(diags, fmt: str = "full", sources: dict[str, str] | None = None) -> str:
    """Render diagnostics as `full` (caret pictures), `concise` (path:line:col: CODE msg) or `json`."""
    diags = list(diags)
    if fmt == "json":
        return json.dumps([d.to_json() for d in diags], indent=2)
    src = _Sources(dict(sources or {}))
    sep = "\n\n" if fmt == "full" else "\n"
    return sep.join(render_one(d, src, fmt) for d in diags)
