"""Diagnostics: errors carry data (code, message, span, hint); rendering is separate.

Every user-facing problem (language, dataset rows, models, usage) is a Diagnostic.
Raising: `raise CircuitError([diag, ...])`. Rendering: `render(diags, fmt, sources)`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path

from circuitdsl.ir import Span

__all__ = [
    "Severity",
    "Label",
    "Diagnostic",
    "CircuitError",
    "render",
    "render_one",
    "has_errors",
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


@dataclass
class _Sources:
    texts: dict[str, str] = field(default_factory=dict)

    def line(self, file: str, n: int) -> str | None:
        text = self.texts.get(file)
        if text is None:
            try:
                text = Path(file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
            self.texts[file] = text
        lines = text.splitlines()
        return lines[n - 1] if 1 <= n <= len(lines) else None


def render_one(d: Diagnostic, sources: dict[str, str] | _Sources, fmt: str = "full") -> str:
    src = sources if isinstance(sources, _Sources) else _Sources(dict(sources))
    if fmt == "concise":
        where = f"{d.span.file}:{d.span.line}:{d.span.col}: " if d.span else ""
        tail = f" (help: {d.hint})" if d.hint else ""
        return f"{where}{d.code} {d.message}{tail}"
    out = [f"{d.severity.value}[{d.code}]: {d.message}"]
    if d.span is not None:
        s = d.span
        gutter = " " * len(str(s.line))
        out.append(f"{gutter}--> {s.file}:{s.line}:{s.col}")
        text = src.line(s.file, s.line)
        if text is not None:
            width = max(1, (s.end_col - s.col) if s.end_line == s.line else len(text) - s.col + 1)
            out.append(f"{gutter} |")
            out.append(f"{s.line} | {text}")
            caret = " " * (s.col - 1) + "^" * width
            out.append(f"{gutter} | {caret}" + (f" {d.label}" if d.label else ""))
            out.append(f"{gutter} |")
    for r in d.related:
        out.append(f"note: {r.message}")
        out.append(f"  --> {r.span.file}:{r.span.line}:{r.span.col}")
    if d.hint:
        out.append(f"help: {d.hint}")
    return "\n".join(out)


def render(diags, fmt: str = "full", sources: dict[str, str] | None = None) -> str:
    """Render diagnostics as `full` (caret pictures), `concise` (path:line:col: CODE msg) or `json`."""
    diags = list(diags)
    if fmt == "json":
        return json.dumps([d.to_json() for d in diags], indent=2)
    src = _Sources(dict(sources or {}))
    sep = "\n\n" if fmt == "full" else "\n"
    return sep.join(render_one(d, src, fmt) for d in diags)
