"""The frozen syntax tree of a `.circuit` file (docs/LANGUAGE.md).

Every node carries a `span` (circuitdsl.ir.Span). Spans do not take part in equality, so two
trees compare equal when they say the same thing however they were laid out (the formatter's
round-trip property relies on this).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from circuitdsl.ir import Span

__all__ = [
    "NO_SPAN",
    "Ident",
    "NodeRef",
    "NodeRange",
    "NodeSpec",
    "Target",
    "Literal",
    "Arg",
    "FeatureExpr",
    "Import",
    "Model",
    "DatasetGen",
    "DatasetFile",
    "On",
    "MetricStmt",
    "Ablate",
    "Group",
    "NodeStmt",
    "Edge",
    "Wire",
    "SetStmt",
    "ExpectStmt",
    "Split",
    "Statement",
    "Comment",
    "Module",
    "KEYWORDS",
    "STATEMENT_KEYWORDS",
]

NO_SPAN = Span("<none>", 0, 0, 0, 0)

STATEMENT_KEYWORDS = (
    "import",
    "model",
    "dataset",
    "on",
    "metric",
    "ablate",
    "group",
    "node",
    "edge",
    "wire",
    "set",
    "expect",
    "split",
)
KEYWORDS = STATEMENT_KEYWORDS + (
    "unclaimed", "by", "from", "paired", "mean", "over", "zero", "resample",
    "at", "depends", "input", "nothing", "field", "token", "subspace", "sae", "latents",
)  # fmt: skip


@dataclass(frozen=True)
class _Node:
    span: Span = field(default=NO_SPAN, compare=False, kw_only=True, repr=False)


@dataclass(frozen=True)
class Ident(_Node):
    """A name as written (a dataset, group, field, position, port, setting or score name)."""

    text: str


@dataclass(frozen=True)
class NodeRef(_Node):
    """A node or group reference: `embed`, `m3`, `a9.6` (name `a9`, head 6), `induction`; with `part`, a
    part of a split component: `a9.6[s]` (part `s`), `a9.6[~s]` (part `~s`), `m0[f17]`, `m0[err]`."""

    name: str
    head: int | None = None
    part: str | None = None

    @property
    def whole_text(self) -> str:
        """The reference without its part: `a9.6` for `a9.6[s]`."""
        return self.name if self.head is None else f"{self.name}.{self.head}"

    @property
    def text(self) -> str:
        return self.whole_text if self.part is None else f"{self.whole_text}[{self.part}]"


@dataclass(frozen=True)
class NodeRange(_Node):
    """`m3..m7` or `a8.0..a9.8`: every node from `start` to `end` (inclusive) in model order.
    Kept as written (not expanded) so that the formatter prints it back as a range."""

    start: NodeRef
    end: NodeRef

    @property
    def text(self) -> str:
        return f"{self.start.text}..{self.end.text}"


NodeSpec = NodeRef | NodeRange
"""What a node list holds: a single node or group name, or a range."""


@dataclass(frozen=True)
class Target(_Node):
    """One end of an edge: a node reference with an optional port (`a1.0.k`, `out`), or a range
    (which never has a port)."""

    node: NodeSpec
    port: Ident | None = None

    @property
    def text(self) -> str:
        return self.node.text + (f".{self.port.text}" if self.port else "")


@dataclass(frozen=True)
class Literal(_Node):
    """A value: kind is `int`, `float`, `string`, `name` (a bare identifier such as true) or `list`."""

    kind: str
    value: Any
    """int, float, str, or a tuple of Literal for lists."""
    text: str = field(default="", compare=False)
    """The number exactly as written (kept so the formatter does not reword numbers)."""


@dataclass(frozen=True)
class Arg(_Node):
    key: Ident
    value: Literal


@dataclass(frozen=True)
class FeatureExpr(_Node):
    """`depends on ...`: kind is input, nothing, field, token, function or tuple."""

    kind: str
    arg: Ident | None = None
    """The field name, position name, or `module.path:function`."""
    parts: tuple[FeatureExpr, ...] = ()


@dataclass(frozen=True)
class Import(_Node):
    path: str


@dataclass(frozen=True)
class Model(_Node):
    ref: str
    is_path: bool = False


@dataclass(frozen=True)
class DatasetGen(_Node):
    name: Ident
    generator: Ident
    args: tuple[Arg, ...] = ()


@dataclass(frozen=True)
class DatasetFile(_Node):
    name: Ident
    path: str
    path_span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class On(_Node):
    dataset: Ident


@dataclass(frozen=True)
class MetricStmt(_Node):
    name: Ident


@dataclass(frozen=True)
class Ablate(_Node):
    kind: str
    """resample, resample from, paired, mean, mean over, zero (ir.AblationKind values + `mean over`)."""
    dataset: Ident | None = None


@dataclass(frozen=True)
class Group(_Node):
    name: Ident
    members: tuple[NodeSpec, ...]


@dataclass(frozen=True)
class NodeStmt(_Node):
    nodes: tuple[NodeSpec, ...]
    positions: tuple[Ident, ...] | None = None
    feature: FeatureExpr | None = None


@dataclass(frozen=True)
class Edge(_Node):
    """`edge A -> B -> C`: steps[i] are the targets between arrows i-1 and i."""

    steps: tuple[tuple[Target, ...], ...]


@dataclass(frozen=True)
class Wire(_Node):
    """`wire A, B, ...`: claims every forward edge among the listed nodes (each into every port)."""

    nodes: tuple[NodeSpec, ...]


@dataclass(frozen=True)
class SetStmt(_Node):
    key: Ident
    value: Literal


@dataclass(frozen=True)
class ExpectStmt(_Node):
    score: Ident
    op: str
    value: Literal


@dataclass(frozen=True)
class Split(_Node):
    """`split C by subspace NAME from "file"` (kind `subspace`) or `split C by sae "dir" [latents I, J]`
    (kind `sae`): component C's output rewritten as a sum of parts (docs/FEATURES.md)."""

    node: NodeRef
    kind: str
    source: str
    """The basis file or SAE directory as written (relative to the file)."""
    name: Ident | None = None
    """subspace: the subspace's name (parts `[name]` and `[~name]`)."""
    latents: tuple[Literal, ...] = ()
    """sae: the latents named as parts, as written (int literals, with their spans)."""
    source_span: Span = field(default=NO_SPAN, compare=False, repr=False)


Statement = (
    Import
    | Model
    | DatasetGen
    | DatasetFile
    | On
    | MetricStmt
    | Ablate
    | Group
    | NodeStmt
    | Edge
    | Wire
    | SetStmt
    | ExpectStmt
    | Split
)


@dataclass(frozen=True)
class Comment(_Node):
    """A `#` comment; `trailing` when code precedes it on its line."""

    text: str
    trailing: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Module(_Node):
    """One parsed file: its statements in order, and its comments (kept for the formatter)."""

    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = ()
    path: str = field(default="<string>", compare=False)
    blank_lines: frozenset[int] = field(default=frozenset(), compare=False, repr=False)
    """Line numbers (1-based) that are empty or whitespace only."""
