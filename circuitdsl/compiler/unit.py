"""The value the compiler passes hand to one another: a frozen `Unit`.

Each pass is a pure function `Unit -> Unit` (circuitdsl.compiler.passes); it reads what earlier
passes resolved and returns a copy with its own results and diagnostics added.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from circuitdsl import ast
from circuitdsl.diagnostics import Diagnostic
from circuitdsl.ir import (
    Ablation,
    Claim,
    DatasetSpec,
    EdgeId,
    Expect,
    Metric,
    ModelRef,
    NodeId,
    Span,
    Split,
)

__all__ = ["Unit", "did_you_mean", "base_dir", "Schema"]

Schema = tuple[str, tuple[str, ...] | None, tuple[str, ...] | None]
"""(dataset name, field names or None if unknown, position names or None if unknown)."""


@dataclass(frozen=True)
class Unit:
    path: str
    """The root file as the user named it (`<string>` for unnamed source)."""
    sources: tuple[tuple[str, str], ...]
    """Text of every file read (root and imports), for rendering diagnostics."""
    statements: tuple[ast.Statement, ...]
    """Every statement of the root file and its imports, imports inlined where they stand."""
    diagnostics: tuple[Diagnostic, ...] = ()
    model: ModelRef | None = None
    datasets: tuple[DatasetSpec, ...] = ()
    schemas: tuple[Schema, ...] = ()
    main_dataset: str | None = None
    metric: Metric = Metric()
    ablation: Ablation = Ablation()
    groups: tuple[tuple[str, tuple[NodeId, ...]], ...] = ()
    """Resolved groups (only those that resolved)."""
    group_spans: tuple[tuple[str, Span], ...] = ()
    claims: tuple[Claim, ...] = ()
    edges: tuple[EdgeId, ...] = ()
    """Valid claimed edges."""
    rejected_edges: tuple[tuple[EdgeId, Span], ...] = ()
    """Edges that are errors (backwards); kept so that the cycle check sees what the user wrote."""
    edge_spans: tuple[tuple[EdgeId, Span], ...] = ()
    """Each valid edge's first `sender -> receiver` text."""
    receiver_spans: tuple[tuple[EdgeId, Span], ...] = ()
    """Each valid edge's first receiver target (`a3.4.k`)."""
    wired_only: tuple[EdgeId, ...] = ()
    """Edges claimed by `wire` statements and by no `edge` statement."""
    splits: tuple[Split, ...] = ()
    """Every `split` whose component resolved (its parts known), in file order; those whose files were
    refused too (with their errors), so that naming their parts causes no second error."""
    settings: tuple[tuple[str, Any], ...] = ()
    expects: tuple[Expect, ...] = ()

    def add(self, *diags: Diagnostic, **changes) -> Unit:
        return replace(self, diagnostics=self.diagnostics + tuple(diags), **changes)

    def of(self, *types) -> tuple:
        return tuple(s for s in self.statements if isinstance(s, types))

    def schema(self, name: str | None) -> Schema | None:
        for s in self.schemas:
            if s[0] == name:
                return s
        return None

    def group_map(self) -> dict[str, tuple[NodeId, ...]]:
        return dict(self.groups)

    def first_span(self) -> Span:
        """Where file-level diagnostics point: the root file's first statement (else 1:1)."""
        for s in self.statements:
            if s.span.file == self.path:
                return Span(self.path, s.span.line, s.span.col, s.span.line, s.span.col + 1)
        return Span(self.path, 1, 1, 1, 2)


def base_dir(file: str) -> Path:
    """The directory relative paths in `file` are resolved against (cwd for `<string>`)."""
    if file.startswith("<"):
        return Path.cwd()
    return Path(file).resolve().parent


def did_you_mean(word: str, candidates, *, cutoff: float = 0.6) -> str:
    """`did you mean `x`?` over candidates (difflib), preferring a candidate that is a prefix."""
    cands = sorted(set(candidates))
    close = difflib.get_close_matches(word, cands, n=6, cutoff=cutoff)
    if not close:
        return ""
    prefixed = [c for c in close if word.startswith(c) or c.startswith(word)]
    best = prefixed[0] if prefixed else close[0]
    return f"did you mean `{best}`?"
