"""Passes that build the claim set: `node` statements (features, positions) and claimed edges."""

from __future__ import annotations

from dataclasses import replace

from circuitdsl import ast
from circuitdsl.compiler.codes import diag
from circuitdsl.compiler.names import ref_group_name, resolve_ref
from circuitdsl.compiler.unit import Unit, base_dir, did_you_mean
from circuitdsl.diagnostics import Diagnostic, Label
from circuitdsl.features import FeatureFunctionError
from circuitdsl.features import resolve as resolve_function
from circuitdsl.ir import IDENTITY, Claim, EdgeId, Feature, FeatureKind, NodeId, NodeKind, Port, Span

__all__ = ["resolve_nodes", "resolve_edges", "upstream_ok", "edge_key"]


def _feature(u: Unit, f: ast.FeatureExpr, diags: list[Diagnostic]) -> Feature | None:
    schema = u.schema(u.main_dataset)
    fields = schema[1] if schema else None
    positions = schema[2] if schema else None
    where = f"dataset `{u.main_dataset}`"
    if f.kind == "input":
        return IDENTITY
    if f.kind == "nothing":
        return Feature(FeatureKind.CONSTANT)
    if f.kind == "field":
        assert f.arg is not None  # (the grammar gives field, token and function an argument)
        name = f.arg.text
        if fields is not None and name not in fields:
            diags.append(diag("E208", f"{where} has no field `{name}`", f.arg.span, label="unknown field",
                              hint=did_you_mean(name, fields) or _listing("fields", fields)))  # fmt: skip
            return None
        return Feature(FeatureKind.FIELD, (name,))
    if f.kind == "token":
        assert f.arg is not None
        name = f.arg.text
        if positions is not None and name not in positions:
            diags.append(_unknown_position(f.arg, positions, where))
            return None
        return Feature(FeatureKind.TOKEN_AT, (name,))
    if f.kind == "function":
        assert f.arg is not None
        try:
            _, origin = resolve_function(f.arg.text, base_dir(f.span.file))
        except FeatureFunctionError as e:
            diags.append(diag("E210", f"feature function `{f.arg.text}` cannot be used", f.arg.span, label=str(e),
                              hint="write `module.path:function`: the module file next to this .circuit file "
                              "(`module/path.py`), else an installed module"))  # fmt: skip
            return None
        return Feature(FeatureKind.FUNCTION, (f.arg.text, origin))
    parts = [_feature(u, p, diags) for p in f.parts]
    done = [p for p in parts if p is not None]
    if len(done) != len(parts):
        return None
    return Feature(FeatureKind.TUPLE, (), tuple(done))


def _listing(what: str, names) -> str:
    return f"its {what}: " + ", ".join(f"`{n}`" for n in names) if names else f"it has no {what}"


def _unknown_position(ident: ast.Ident, positions, where: str) -> Diagnostic:
    return diag("E209", f"{where} has no position `{ident.text}`", ident.span, label="unknown named position",
                hint=did_you_mean(ident.text, positions) or _listing("named positions", positions))  # fmt: skip


def resolve_nodes(u: Unit) -> Unit:
    """`node` statements -> claims; E302 when one node is claimed twice differently."""
    diags: list[Diagnostic] = []
    groups = u.group_map()
    group_names = tuple(n for n, _ in u.group_spans)
    claims: dict[NodeId, Claim] = {}
    schema = u.schema(u.main_dataset)
    for s in u.of(ast.NodeStmt):
        feature = IDENTITY if s.feature is None else _feature(u, s.feature, diags)
        positions = None
        if s.positions is not None:
            known = schema[2] if schema else None
            ok = True
            for p in s.positions:
                if known is not None and p.text not in known:
                    diags.append(_unknown_position(p, known, f"dataset `{u.main_dataset}`"))
                    ok = False
            positions = tuple(sorted({p.text for p in s.positions})) if ok else None
            if not ok:
                feature = None
        for ref in s.nodes:
            nodes, via, ds = resolve_ref(ref, u.model, groups, group_names)
            diags.extend(ds)
            if feature is None:
                continue
            if OUT in nodes and (feature != IDENTITY or positions is not None):
                diags.append(_claim_on_out(ref, s))
                continue
            for n in nodes:
                new = Claim(n, feature, positions, via, ref.span)
                old = claims.get(n)
                if old is None:
                    claims[n] = new
                elif (old.feature, old.positions) != (new.feature, new.positions):
                    diags.append(_conflict(n, old, new))
                else:
                    claims[n] = replace(old, groups=tuple(dict.fromkeys(old.groups + via)))
    return u.add(*diags, claims=tuple(claims.values()))


OUT = NodeId(NodeKind.OUT)


def _claim_on_out(ref, s: ast.NodeStmt) -> Diagnostic:
    """E309: `out` sees the example itself at its scored positions; a feature or positions there change nothing."""
    gname = ref_group_name(ref)
    through = f" (through group `{gname}`)" if gname is not None and gname != "out" else ""
    what = "a feature" if s.positions is None else ("positions" if s.feature is None else "a feature and positions")
    return diag(
        "E309",
        f"`node {ref.text}` claims {what} for `out`{through}, which would change nothing",
        ref.span,
        label="`out` always reads the example itself, at its scored positions",
        hint="claim the feature or positions on the nodes that feed `out` (`edge X -> out` with `node X ...`)"
        + ("; leave `out` out of the group" if through else ""),
    )


def _describe(c: Claim) -> str:
    at = f" at {', '.join(c.positions)}" if c.positions else ""
    return f"{at} depends on {c.feature}".strip()


def _conflict(n: NodeId, old: Claim, new: Claim) -> Diagnostic:
    return diag(
        "E302",
        f"`{n.name}` is claimed twice with different features or positions",
        new.span,
        label=f"here: {_describe(new)}",
        hint="one node has one feature: remove one claim, or claim the node once with a tuple feature `(A, B)`",
        related=(Label(old.span, f"first claimed here: {_describe(old)}"),) if old.span is not None else (),
    )


def upstream_ok(sender: NodeId, receiver: NodeId, parallel: bool) -> bool:
    """Whether receiver reads sender (SEMANTICS.md section 1)."""
    if sender.kind in (NodeKind.EMBED, NodeKind.POS):
        return receiver.kind in (NodeKind.HEAD, NodeKind.MLP, NodeKind.OUT)
    if sender.kind is NodeKind.OUT or receiver.kind in (NodeKind.EMBED, NodeKind.POS):
        return False
    if receiver.kind is NodeKind.OUT:
        return True
    assert sender.layer is not None and receiver.layer is not None  # (heads and MLPs, whole or parts)
    if receiver.kind is NodeKind.HEAD:
        return sender.layer < receiver.layer
    # receiver is an MLP
    if sender.kind is NodeKind.HEAD and sender.layer == receiver.layer:
        return not parallel
    return sender.layer < receiver.layer


def edge_key(e: EdgeId):
    """Model order: sender, then receiver, then port q, k, v, in."""
    return (e.sender.sort_key(), e.receiver.sort_key(), ("q", "k", "v", "in").index(e.port.value))


_HEAD_PORTS = {"q": Port.Q, "k": Port.K, "v": Port.V}


def _ports(node: NodeId, port: ast.Ident | None, target: ast.Target, diags: list[Diagnostic]) -> tuple[Port, ...]:
    if node.kind in (NodeKind.EMBED, NodeKind.POS):
        diags.append(diag("E304", f"`{node.name}` cannot receive an edge", target.span,
                          label=f"`{node.name}` reads nothing", hint="embeddings only send: write them on the left of `->`"))  # fmt: skip
        return ()
    if node.kind is NodeKind.HEAD:
        if port is None:
            return (Port.Q, Port.K, Port.V)
        if port.text in _HEAD_PORTS:
            return (_HEAD_PORTS[port.text],)
        diags.append(diag("E206", f"a head has no port `{port.text}`", port.span, label="a head has ports q, k, v",
                          hint=did_you_mean(port.text, _HEAD_PORTS) or f"write `{target.node.text}.q`, `.k` or `.v`, or no port for all three"))  # fmt: skip
        return ()
    if port is None or port.text == "in":
        return (Port.IN,)
    diags.append(diag("E206", f"`{node.name}` has no port `{port.text}`", port.span, label=f"`{node.name}` has one port, `in`",
                      hint=f"write `{target.node.text}` (or `{target.node.text}.in`)"))  # fmt: skip
    return ()


def resolve_edges(u: Unit) -> Unit:
    """`edge` statements -> claimed EdgeIds (ports expanded); E206/E303/E304 errors."""
    diags: list[Diagnostic] = []
    groups = u.group_map()
    group_names = tuple(n for n, _ in u.group_spans)
    parallel = u.model.shape.parallel_attn_mlp if u.model else False
    claims = {c.node: c for c in u.claims}
    edges: dict[EdgeId, Span] = {}
    rejected: dict[EdgeId, Span] = {}
    mentioned: dict[NodeId, Span] = {}
    receiver_spans: dict[EdgeId, Span] = {}
    for s in u.of(ast.Edge):
        resolved: list[list[tuple[ast.Target, tuple[NodeId, ...], tuple[str, ...]]]] = []
        for step in s.steps:
            row = []
            for t in step:
                nodes, via, ds = resolve_ref(t.node, u.model, groups, group_names)
                diags.extend(ds)
                row.append((t, nodes, via))
                for n in nodes:
                    mentioned.setdefault(n, t.node.span)
            resolved.append(row)
        for t, _nodes, _ in resolved[0]:
            if t.port is not None:
                diags.append(diag("E206", f"`{t.text}`: a sender has no port", t.port.span, label="ports belong to receivers",
                                  hint=f"write `{t.node.text}` on the left of `->`"))  # fmt: skip
        for left, right in zip(resolved, resolved[1:]):
            for rt, receivers, _ in right:
                ports_of = {r: _ports(r, rt.port, rt, diags) for r in receivers}
                for lt, senders, _ in left:
                    bad: list[tuple[NodeId, NodeId]] = []
                    sp = Span(lt.span.file, lt.span.line, lt.span.col, rt.span.end_line, rt.span.end_col)
                    for snd in senders:
                        if snd.kind is NodeKind.OUT:
                            diags.append(diag("E304", "`out` cannot send an edge", lt.span, label="`out` writes nothing",
                                              hint="`out` only receives: write it on the right of `->`"))  # fmt: skip
                            break
                        for r in receivers:
                            for p in ports_of[r]:
                                e = EdgeId(snd, r, p)
                                if upstream_ok(snd, r, parallel):
                                    edges.setdefault(e, sp)
                                    receiver_spans.setdefault(e, rt.span)
                                else:
                                    rejected.setdefault(e, sp)
                                    if (snd, r) not in bad:
                                        bad.append((snd, r))
                    if bad:
                        diags.append(_backwards(bad, sp, parallel))
    for e in list(edges) + list(rejected):
        for n in (e.sender, e.receiver):
            if n not in claims:
                claims[n] = Claim(n, IDENTITY, None, (), mentioned[n])
    for s in u.of(ast.Edge):  # group names used in edges are recorded on claims (for drawing)
        for step in s.steps:
            for t in step:
                gname = ref_group_name(t.node)
                if gname is not None and gname in groups:
                    for n in groups[gname]:
                        if n in claims and gname not in claims[n].groups:
                            claims[n] = replace(claims[n], groups=claims[n].groups + (gname,))
    claims_sorted = tuple(sorted(claims.values(), key=lambda c: c.node.sort_key()))
    return u.add(
        *diags,
        claims=claims_sorted,
        edges=tuple(sorted(edges, key=edge_key)),
        rejected_edges=tuple(rejected.items()),
        edge_spans=tuple(edges.items()),
        receiver_spans=tuple(receiver_spans.items()),
    )


def _where(n: NodeId) -> str:
    if n.kind in (NodeKind.EMBED, NodeKind.POS):
        return "an embedding"
    if n.kind is NodeKind.OUT:
        return "the output"
    return f"layer {n.layer}"


def _backwards(bad: list[tuple[NodeId, NodeId]], sp: Span, parallel: bool) -> Diagnostic:
    s, r = bad[0]
    more = f" (and {len(bad) - 1} more pairs)" if len(bad) > 1 else ""
    if r.kind is NodeKind.MLP:
        rule = "the MLP of layer L reads embeddings, layers < L" + ("" if parallel else " and the heads of layer L")
    else:
        rule = "a head of layer L reads embeddings and layers < L"
    return diag(
        "E303",
        f"backwards edge `{s.name} -> {r.name}`{more}",
        sp,
        label=f"`{r.name}` ({_where(r)}) does not read `{s.name}` ({_where(s)})",
        hint=f"{rule}; did you mean `{r.name} -> {s.name}`?" if upstream_ok(r, s, parallel) else rule,
    )
