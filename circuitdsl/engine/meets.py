"""Edges whose sender and receiver positions never meet (SEMANTICS.md section 6, and the appendix's
position masks), found once the dataset's named positions are known. No torch.

For one example x, with P(v) the indices where v is claimed (every position if v is unrestricted):
- `s -> t.q` and `s -> t.in` (t an MLP) carry s at P(s) ∩ P(t): nothing when that is empty;
- `s -> out` carries s at P(s), but `out` reads only x's scored positions: nothing when P(s) holds none;
- `s -> t.k` / `t.v` carry s at P(s), read by t's queries at P(t); under causal attention a key at j is
  read by a query at i only when j <= i: nothing when every position of P(s) is after every one of P(t).
An edge that carries nothing on every example is an error (E242) when an `edge` statement claims it,
a note when only `wire` does (wire claims every forward edge among its nodes); an edge that carries
nothing on some examples only is a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from circuitdsl.datasets.core import Example
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import EdgeId, Hypothesis, NodeKind, Port

__all__ = ["DeadEdge", "dead_edges", "check_edges"]


@dataclass(frozen=True)
class DeadEdge:
    edge: EdgeId
    n_dead: int
    """Examples on which the edge carries nothing."""
    n: int
    example: str
    """The id of the first such example."""
    why: str
    """Why, on that example (positions by name and index)."""


def _indices(e: Example, names: tuple[str, ...] | None) -> tuple[frozenset[int], str] | None:
    """(indices, description) of the named positions on e; None if a name is not a position of e."""
    if names is None:
        return frozenset(range(len(e.tokens))), "every position"
    out: set[int] = set()
    for n in names:
        try:
            out.update(i % len(e.tokens) for i in e.position(n))
        except KeyError:
            return None
    return frozenset(out), f"{', '.join(names)} ({', '.join(map(str, sorted(out)))})"


def _why_dead(edge: EdgeId, ps, pt, e: Example, causal: bool) -> str | None:
    (s_idx, s_desc), (t_idx, t_desc) = ps, pt
    s, t = edge.sender.name, edge.receiver.name
    if edge.receiver.kind is NodeKind.OUT:
        scored = frozenset(e.scored_positions)
        if s_idx & scored:
            return None
        return f"{s} is claimed at {s_desc}, and `out` reads only the scored positions ({', '.join(map(str, sorted(scored)))})"
    if edge.port in (Port.Q, Port.IN):
        if s_idx & t_idx:
            return None
        return f"{s} is claimed at {s_desc} and {t} at {t_desc}: a {edge.port.value} edge carries {s} only where both are claimed"
    if not causal or not s_idx or not t_idx or min(s_idx) <= max(t_idx):
        return None
    return (
        f"{s} is claimed at {s_desc}, after every query position of {t} ({t_desc}): under causal attention "
        f"a {edge.port.value} edge is read only by queries at or after the key"
    )


def dead_edges(h: Hypothesis, examples: Sequence[Example], *, causal: bool = True) -> list[DeadEdge]:
    """The claimed edges that carry nothing on at least one example, in the hypothesis's edge order."""
    positions = {c.node: c.positions for c in h.claims}
    out = []
    for edge in h.edges:
        ps_names, pt_names = positions.get(edge.sender), positions.get(edge.receiver)
        if ps_names is None and pt_names is None:
            continue
        n_dead, first = 0, None
        for e in examples:
            ps, pt = _indices(e, ps_names), _indices(e, pt_names)
            if ps is None or pt is None:
                break  # a position name the dataset lacks: E240 reports it
            why = _why_dead(edge, ps, pt, e, causal)
            if why is not None:
                n_dead += 1
                first = first or (e.id, why)
        else:
            if first is not None:  # (set with the first dead example)
                out.append(DeadEdge(edge, n_dead, len(examples), first[0], first[1]))
    return out


def check_edges(h: Hypothesis, examples: Sequence[Example], *, causal: bool = True) -> tuple[str, ...]:
    """Raise E242 for `edge`-claimed edges that carry nothing on every example; return notes for the rest."""
    origins = {e: (span, how) for e, span, how in h.edge_origins}
    errors, notes = [], []
    for d in dead_edges(h, examples, causal=causal):
        span, how = origins.get(d.edge, (None, "edge"))
        if d.n_dead == d.n and how != "wire":
            errors.append(
                Diagnostic(
                    "E242",
                    f"edge `{d.edge}` never carries anything: {d.why} (on every example; e.g. `{d.example}`)",
                    span,
                    hint="claim the two nodes at positions that meet, or remove the edge (SEMANTICS.md, appendix: position masks)",
                )
            )
        else:
            where = "every example" if d.n_dead == d.n else f"{d.n_dead} of {d.n} examples"
            via = " (claimed by `wire`)" if how == "wire" else ""
            notes.append(f"edge {d.edge}{via} carries nothing on {where}: {d.why} (e.g. example `{d.example}`)")
    if errors:
        raise CircuitError(errors)
    return tuple(notes)
