"""Edge rankings and MIB circuit-track JSON (Mueller et al. 2025), without torch.

**MIB's graph** (its `Graph.to_json`): `{"cfg": {"n_layers", "n_heads", "parallel_attn_mlp", "d_model"},
"nodes": {name: {"in_graph": bool}}, "edges": {name: {"score": float, "in_graph": bool}}}`. Node names
are `input`, `a{L}.h{H}`, `m{L}` and `logits`; an edge is `parent->child`, with `<q>`, `<k>` or `<v>`
appended when the child is a head (`input->a0.h1<q>`, `a0.h1->m0`, `m11->logits`). MIB's `input` is the
residual stream before layer 0, which in circuitdsl's graph is two nodes when the model has learned
positions: `embed` and `pos`. Importing, an `input` edge becomes the same edge from `embed` and from
`pos` (same score, same flag); exporting, the two are merged into one `input` edge, in the graph when
either is, with the score of larger magnitude (embed's on a tie). `logits` is `out`.

**Edge rankings** (`circuitdsl curve --scores`) are read from:
* MIB JSON (the edges' scores);
* a JSON object of `"edge": score` or `"node": score` (edges in circuitdsl's spelling `a0.1 -> a1.2.k`,
  `embed -> out`, or MIB's), or a list of `{"edge"|"node": ..., "score": ...}`;
* CSV with a header `edge,score` or `node,score`;
* the JSON of `circuitdsl patch --json` (per-head or per-MLP sweeps: node scores = the patching effect;
  path sweeps: edge scores from each sender into each receiver port).
Node scores rank edges as MIB's node-level scores do: an edge scores min(|score(sender)|, |score(receiver)|)
over its endpoints that have a score; an endpoint without one (embed, pos, out, any node no file scored)
constrains nothing, and an edge with no scored endpoint ranks first (MIB keeps unscored nodes in the graph).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuitdsl.ir import EdgeId, ModelShape, NodeId, NodeKind, Port

__all__ = [
    "RankingError",
    "Ranking",
    "parse_node",
    "parse_edge",
    "mib_node_name",
    "mib_edge_name",
    "read_ranking",
    "read_rankings",
    "load_mib",
    "to_mib",
    "circuit_text",
    "model_edges",
]


class RankingError(ValueError):
    """A scores or MIB file that cannot be read as asked (the message names the file and the entry)."""


def model_edges(shape: ModelShape) -> tuple[EdgeId, ...]:
    """Every edge of the model graph (SEMANTICS.md section 1), in model order."""
    from circuitdsl.engine import derive  # torch-free: derive imports only circuitdsl.ir
    from circuitdsl.engine.randcirc import forward_edges

    return forward_edges(derive.model_nodes(shape), shape)


# ---- names ------------------------------------------------------------------------------------------------

_OURS = re.compile(r"^(?:embed|pos|out|a(\d+)\.(\d+)|m(\d+))$")
_MIB = re.compile(r"^(?:input|logits|a(\d+)\.h(\d+)|m(\d+))$")


def parse_node(text: str, shape: ModelShape) -> tuple[NodeId, ...]:
    """A node in circuitdsl's spelling (`a3.1`, `m2`, `embed`, `pos`, `out`) or MIB's (`a3.h1`, `input`,
    `logits`). MIB's `input` is embed and, in models with learned positions, pos. Raises RankingError."""
    t = text.strip()
    m = _OURS.match(t) or _MIB.match(t)
    if not m:
        raise RankingError(f"`{text}` is not a node (write a3.1, m2, embed, pos, out, or MIB's a3.h1, input, logits)")
    if t in ("embed", "input"):
        nodes = [NodeId(NodeKind.EMBED)] + (
            [NodeId(NodeKind.POS)] if t == "input" and shape.pos_embed == "learned" else []
        )
        return tuple(nodes)
    if t == "pos":
        if shape.pos_embed != "learned":
            raise RankingError("`pos`: the model has no learned position embedding")
        return (NodeId(NodeKind.POS),)
    if t in ("out", "logits"):
        return (NodeId(NodeKind.OUT),)
    if m.group(1) is not None:
        L, H = int(m.group(1)), int(m.group(2))
        if not (0 <= L < shape.n_layers and 0 <= H < shape.n_heads):
            raise RankingError(
                f"`{text}`: the model has layers 0..{shape.n_layers - 1} and heads 0..{shape.n_heads - 1}"
            )
        return (NodeId(NodeKind.HEAD, L, H),)
    L = int(m.group(3))
    if not shape.has_mlp:
        raise RankingError(f"`{text}`: the model has no MLPs")
    if not 0 <= L < shape.n_layers:
        raise RankingError(f"`{text}`: the model has layers 0..{shape.n_layers - 1}")
    return (NodeId(NodeKind.MLP, L),)


def parse_edge(text: str, shape: ModelShape) -> tuple[EdgeId, ...]:
    """An edge in circuitdsl's spelling (`a0.1 -> a1.2.k`, `a0.1 -> a1.2` for q, k and v, `m3 -> out`) or
    MIB's (`a0.h1->a1.h2<k>`, `input->m0`, `m3->logits`). Raises RankingError for anything else,
    including an edge the model graph does not have (a later node into an earlier one)."""
    from circuitdsl.engine import derive

    t = text.strip()
    if "->" not in t:
        raise RankingError(f"`{text}` is not an edge (write `a0.1 -> a1.2.k` or MIB's `a0.h1->a1.h2<k>`)")
    left, right = (x.strip() for x in t.split("->", 1))
    ports: tuple[Port, ...] | None = None
    m = re.fullmatch(r"(.+)<([qkv])>", right)
    if m:
        right, ports = m.group(1), (Port(m.group(2)),)
    else:
        m = re.fullmatch(r"(a\d+\.\d+)\.([qkv])", right) or re.fullmatch(r"(m\d+|out)\.(in)", right)
        if m:
            right, ports = m.group(1), (Port(m.group(2)),)
    senders = parse_node(left, shape)
    (receiver,) = parse_node(right, shape) if right not in ("input", "embed", "pos") else (None,)
    if receiver is None or any(s.kind is NodeKind.OUT for s in senders):
        raise RankingError(
            f"`{text}`: edges run from a node into a later node or out, not into an embedding or out of out"
        )
    if ports is None:
        ports = (Port.Q, Port.K, Port.V) if receiver.kind is NodeKind.HEAD else (Port.IN,)
    if (
        receiver.kind is NodeKind.HEAD
        and Port.IN in ports
        or receiver.kind is not NodeKind.HEAD
        and Port.IN not in ports
    ):
        raise RankingError(f"`{text}`: a head has ports q, k and v; an MLP and out have one (in)")
    edges = []
    for s in senders:
        if s not in derive.upstream(receiver, shape):
            raise RankingError(f"`{text}`: {receiver.name} does not read {s.name} (SEMANTICS.md section 1)")
        edges += [EdgeId(s, receiver, p) for p in ports]
    return tuple(edges)


def mib_node_name(v: NodeId) -> str:
    if v.kind in (NodeKind.EMBED, NodeKind.POS):
        return "input"
    if v.kind is NodeKind.OUT:
        return "logits"
    if v.kind is NodeKind.HEAD:
        return f"a{v.layer}.h{v.head}"
    return f"m{v.layer}"


def mib_edge_name(e: EdgeId) -> str:
    base = f"{mib_node_name(e.sender)}->{mib_node_name(e.receiver)}"
    return base + (f"<{e.port.value}>" if e.receiver.kind is NodeKind.HEAD else "")


# ---- rankings ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranking:
    """Scores for ranking the edges of a model graph: explicit edge scores, node scores, or both."""

    edges: dict[EdgeId, float] = field(default_factory=dict)
    nodes: dict[NodeId, float] = field(default_factory=dict)
    in_graph: frozenset[EdgeId] = frozenset()
    """Edges flagged in the graph (MIB JSON only)."""
    sources: tuple[str, ...] = ()

    def merged(self, other: Ranking) -> Ranking:
        return Ranking(
            {**self.edges, **other.edges},
            {**self.nodes, **other.nodes},
            self.in_graph | other.in_graph,
            self.sources + other.sources,
        )

    def edge_score(self, e: EdgeId) -> float:
        """The score an edge is ranked by (absolute: MIB's default), per the module docstring."""
        if e in self.edges:
            return abs(self.edges[e])
        ends = [abs(self.nodes[v]) for v in (e.sender, e.receiver) if v in self.nodes]
        if ends:
            return min(ends)
        return math.inf if self.nodes else 0.0

    def ranked(self, edges: Iterable[EdgeId], signed: bool = False) -> list[EdgeId]:
        """Edges by decreasing score (|score|, or the signed score with `signed`), ties in model order.
        An edge with no score of its own and no scored endpoint scores 0 (or ranks first under node scores)."""
        from circuitdsl.engine import derive

        def key(e: EdgeId):
            s = self.edges[e] if signed and e in self.edges else self.edge_score(e)
            return (-s, derive.edge_key(e))

        return sorted(edges, key=key)


def _num(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        raise RankingError(f"{where}: the score {v!r} is not a finite number")
    return float(v)


def _from_pairs(pairs: Iterable[tuple[object, Any]], shape: ModelShape, where: str) -> Ranking:
    edges: dict[EdgeId, float] = {}
    nodes: dict[NodeId, float] = {}
    for name, v in pairs:
        try:
            if "->" in str(name):
                for e in parse_edge(str(name), shape):
                    edges[e] = _num(v, f"{where}: `{name}`")
            else:
                for n in parse_node(str(name), shape):
                    nodes[n] = _num(v, f"{where}: `{name}`")
        except RankingError as e:
            raise RankingError(f"{where}: {e}") from None
    return Ranking(edges, nodes, frozenset(), (where,))


def _patch_sweep(d: dict, shape: ModelShape, where: str) -> Ranking:
    rows = [(r["node"], r["effect"]) for r in d.get("ranked", []) if r.get("effect") is not None]
    if d.get("kind") != "path":
        return _from_pairs(rows, shape, where)
    edges: dict[EdgeId, float] = {}
    for rec in d.get("receivers", []):
        m = re.fullmatch(r"a(\d+)\.(\d+)\.([qkv])", str(rec))
        if not m:
            raise RankingError(f"{where}: receiver `{rec}` is not a head port such as a21.3.q")
        for name, v in rows:
            for s in parse_node(name, shape):
                edges[EdgeId(s, NodeId(NodeKind.HEAD, int(m.group(1)), int(m.group(2))), Port(m.group(3)))] = _num(
                    v, where
                )
    return Ranking(edges, {}, frozenset(), (where,))


def read_ranking(path: str | Path, shape: ModelShape) -> Ranking:
    """One scores file (module docstring), checked against the model's shape. Raises RankingError."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RankingError(f"cannot read `{path}`: {getattr(e, 'strerror', None) or e}") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or [c.strip().lower() for c in rows[0][:2]] not in (["edge", "score"], ["node", "score"]):
            raise RankingError(f"{where}: a CSV of scores starts with the header `edge,score` or `node,score`")
        pairs = []
        for i, row in enumerate(rows[1:], start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise RankingError(f"{where}:{i}: expected two columns")
            try:
                pairs.append((row[0], float(row[1])))
            except ValueError:
                raise RankingError(f"{where}:{i}: the score {row[1]!r} is not a number") from None
        return _from_pairs(pairs, shape, where)
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise RankingError(f"{where}: not JSON ({e.msg} at line {e.lineno})") from None
    if (
        isinstance(d, dict)
        and isinstance(d.get("edges"), dict)
        and all(isinstance(v, dict) for v in d["edges"].values())
    ):
        return load_mib(d, shape, where)
    if isinstance(d, dict) and "ranked" in d and "kind" in d:
        return _patch_sweep(d, shape, where)
    if isinstance(d, dict):
        return _from_pairs(d.items(), shape, where)
    if isinstance(d, list):
        entries: list[tuple[object, Any]] = []
        for i, x in enumerate(d):
            if not isinstance(x, dict) or "score" not in x or not ({"edge", "node"} & set(x)):
                raise RankingError(f'{where}: entry {i} is not {{"edge" or "node": ..., "score": ...}}')
            entries.append((x.get("edge", x.get("node")), x["score"]))
        return _from_pairs(entries, shape, where)
    raise RankingError(
        f"{where}: expected MIB JSON, an object of scores, a list of scores or a `circuitdsl patch` JSON"
    )


def read_rankings(paths: Iterable[str | Path], shape: ModelShape) -> Ranking:
    """Several scores files merged (a later file's score of an edge or node wins)."""
    out = Ranking()
    for p in paths:
        out = out.merged(read_ranking(p, shape))
    return out


# ---- MIB JSON ---------------------------------------------------------------------------------------------


def load_mib(d: dict, shape: ModelShape, where: str = "MIB JSON") -> Ranking:
    """MIB circuit-track JSON -> edge scores and in-graph flags, checked against the model's shape
    (cfg n_layers and n_heads must match when given). An edge into or out of an MLP in a model without
    MLPs is skipped when it is not in the graph (MIB's graphs always have MLP nodes), an error otherwise."""
    cfg = d.get("cfg") or {}
    for key, have in (("n_layers", shape.n_layers), ("n_heads", shape.n_heads)):
        if key in cfg and int(cfg[key]) != have:
            raise RankingError(f"{where}: cfg {key} = {cfg[key]}, but the model has {have}")
    if "parallel_attn_mlp" in cfg and bool(cfg["parallel_attn_mlp"]) != bool(shape.parallel_attn_mlp) and shape.has_mlp:
        raise RankingError(
            f"{where}: cfg parallel_attn_mlp = {cfg['parallel_attn_mlp']}, the model's is {shape.parallel_attn_mlp}"
        )
    edges: dict[EdgeId, float] = {}
    flagged: set[EdgeId] = set()
    for name, v in d["edges"].items():
        if not isinstance(v, dict):
            raise RankingError(f"{where}: edge `{name}` is not an object with score and in_graph")
        try:
            es = parse_edge(name, shape)
        except RankingError as e:
            if not shape.has_mlp and re.search(r"(^|->)m\d+", name) and not v.get("in_graph"):
                continue
            raise RankingError(f"{where}: {e}") from None
        score = v.get("score")
        for edge in es:
            edges[edge] = 0.0 if score is None else _num(score, f"{where}: `{name}`")
            if v.get("in_graph"):
                flagged.add(edge)
    return Ranking(edges, {}, frozenset(flagged), (where,))


def to_mib(shape: ModelShape, in_graph: Iterable[EdgeId], scores: dict[EdgeId, float] | None = None) -> dict:
    """MIB circuit-track JSON for the model graph: every edge with its score (`scores`, else 1.0 for an
    edge in the graph and 0.0 otherwise) and in-graph flag. embed and pos merge into `input` (module
    docstring). A node is in the graph when an in-graph edge leaves it and one enters it (`input` needs
    none entering; `logits` always is), as after MIB's `prune`."""
    flagged = set(in_graph)
    merged: dict[str, tuple[float, bool, float]] = {}  # name -> (score, in graph, |score| for the merge)
    for e in model_edges(shape):
        s = scores.get(e, 0.0) if scores is not None else (1.0 if e in flagged else 0.0)
        name = mib_edge_name(e)
        old = merged.get(name)
        if old is None:
            merged[name] = (float(s), e in flagged, abs(s))
        else:
            keep = (float(s), abs(s)) if abs(s) > old[2] else (old[0], old[2])
            merged[name] = (keep[0], old[1] or e in flagged, keep[1])
    out_edges = {name: {"score": s, "in_graph": bool(g)} for name, (s, g, _) in merged.items()}
    has_out, has_in = set(), {"input"}
    for name, v in out_edges.items():
        if v["in_graph"]:
            src, dst = name.split("->")
            has_out.add(src)
            has_in.add(re.sub(r"<[qkv]>$", "", dst))
    node_names = (
        ["input"]
        + [
            n
            for L in range(shape.n_layers)
            for n in [f"a{L}.h{H}" for H in range(shape.n_heads)] + ([f"m{L}"] if shape.has_mlp else [])
        ]
        + ["logits"]
    )
    nodes = {n: {"in_graph": n == "logits" or (n in has_out and n in has_in)} for n in node_names}
    cfg = {
        "n_layers": shape.n_layers,
        "n_heads": shape.n_heads,
        "parallel_attn_mlp": bool(shape.parallel_attn_mlp),
        "d_model": shape.d_model,
    }
    return {"cfg": cfg, "nodes": nodes, "edges": out_edges}


# ---- a .circuit file from edges ------------------------------------------------------------------------

_SETUP = ("Model", "DatasetGen", "DatasetFile", "On", "MetricStmt", "Ablate", "SetStmt")


def circuit_text(edges: Iterable[EdgeId], template_text: str, template_path: str, *, comment: str = "") -> str:
    """A `.circuit` file claiming exactly `edges` (identity features), with the setup statements
    (model, datasets, on, metric, ablate, set) copied from a template file (its own statements, not
    those it imports; relative paths in them are relative to the template's folder)."""
    from circuitdsl import ast
    from circuitdsl.parser import parse_source

    mod = parse_source(template_text, template_path)
    lines = template_text.splitlines()
    setup = []
    for s in mod.statements:
        if type(s).__name__ in _SETUP and getattr(s, "span", None) is not None and s.span.line > 0:
            if isinstance(s, ast.SetStmt) and s.key.text.startswith("tests."):
                continue
            setup.append("\n".join(lines[s.span.line - 1 : s.span.end_line]).strip())
    by_pair: dict[tuple[NodeId, NodeId], set[Port]] = {}
    for e in edges:
        by_pair.setdefault((e.sender, e.receiver), set()).add(e.port)
    body = []
    for (snd, rcv), ports in sorted(by_pair.items()):
        if rcv.kind is not NodeKind.HEAD or ports == {Port.Q, Port.K, Port.V}:
            body.append(f"edge {snd.name} -> {rcv.name}")
        else:
            body.append(f"edge {snd.name} -> " + ", ".join(f"{rcv.name}.{p.value}" for p in sorted(ports)))
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + "\n".join(setup) + "\n\n" + "\n".join(body) + "\n"
