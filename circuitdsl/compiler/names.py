"""Resolving node names (`embed`, `pos`, `out`, `aL.H`, `mL`, group names) against a model shape."""

from __future__ import annotations

import re

from circuitdsl import ast
from circuitdsl.compiler.codes import diag
from circuitdsl.compiler.unit import did_you_mean
from circuitdsl.diagnostics import Diagnostic
from circuitdsl.ir import ModelRef, NodeId, NodeKind

__all__ = ["all_node_names", "resolve_builtin", "is_builtin_name", "resolve_ref", "resolve_range", "ref_group_name"]

_HEAD = re.compile(r"a([0-9]{1,18})")  # more digits: no layer of any model (and no int() past its digit limit)
_MLP = re.compile(r"m([0-9]{1,18})")


def is_builtin_name(name: str) -> bool:
    """Whether a bare name (no head index) spells, or could spell, a model node."""
    return name in ("embed", "pos", "out") or bool(_MLP.fullmatch(name) or _HEAD.fullmatch(name))


def all_node_names(model: ModelRef | None) -> list[str]:
    names = ["embed", "out"]
    if model is None:
        return names + ["pos"]
    s = model.shape
    if s.pos_embed == "learned":
        names.append("pos")
    for layer in range(s.n_layers):
        names += [f"a{layer}.{h}" for h in range(s.n_heads)]
        if s.has_mlp:
            names.append(f"m{layer}")
    return names


def _range(n: int) -> str:
    return f"0..{n - 1}" if n > 1 else "0"


def resolve_builtin(ref: ast.NodeRef, model: ModelRef | None) -> tuple[NodeId | None, list[Diagnostic]]:
    """A model node, or (None, []) if the name is not a built-in spelling at all. A part (`a9.6[s]`) resolves
    to the component's NodeId with `part` set; whether the component is split, and has that part, is checked
    once every claim is known (circuitdsl.compiler.splits.check_parts)."""
    node, diags = _resolve_whole(ref, model)
    if node is None or ref.part is None:
        return node, diags
    return NodeId(node.kind, node.layer, node.head, ref.part), diags


def _resolve_whole(ref: ast.NodeRef, model: ModelRef | None) -> tuple[NodeId | None, list[Diagnostic]]:
    name, head, sp = ref.name, ref.head, ref.span
    if head is not None:
        m = _HEAD.fullmatch(name)
        if not m:
            return None, []
        layer = int(m.group(1))
        if model is None:
            return NodeId(NodeKind.HEAD, layer, head), []
        s = model.shape
        if layer >= s.n_layers:
            cands = [f"a{s.n_layers - 1}.{h}" for h in range(s.n_heads)]
            return None, [
                diag(
                    "E202",
                    f"unknown layer in `{ref.text}`: the model has {s.n_layers} layers",
                    sp,
                    label=f"`{model.name}` has layers {_range(s.n_layers)}",
                    hint=did_you_mean(ref.text, cands, cutoff=0.0),
                )  # fmt: skip
            ]
        if head >= s.n_heads:
            cands = [f"a{layer}.{h}" for h in range(s.n_heads)]
            return None, [
                diag(
                    "E201",
                    f"unknown attention head `{ref.text}`",
                    sp,
                    label=f"layer {layer} has heads {_range(s.n_heads)}",
                    hint=did_you_mean(ref.text, cands, cutoff=0.0),
                )  # fmt: skip
            ]
        return NodeId(NodeKind.HEAD, layer, head), []
    if name in ("embed", "out"):
        return NodeId(NodeKind(name)), []
    if name == "pos":
        if model is not None and model.shape.pos_embed != "learned":
            return None, [
                diag(
                    "E204",
                    f"`pos` does not exist in `{model.name}`",
                    sp,
                    label=f"this model has {model.shape.pos_embed} positions, no position embedding",
                    hint="claim `embed` only: position information enters through the attention itself",
                )  # fmt: skip
            ]
        return NodeId(NodeKind.POS), []
    m = _MLP.fullmatch(name)
    if m:
        layer = int(m.group(1))
        if model is None:
            return NodeId(NodeKind.MLP, layer), []
        s = model.shape
        if not s.has_mlp:
            return None, [
                diag(
                    "E205",
                    f"`{name}` does not exist: `{model.name}` is attention-only",
                    sp,
                    label="this model has no MLPs",
                    hint="only heads `aL.H`, `embed`, `pos` and `out` exist",
                )  # fmt: skip
            ]
        if layer >= s.n_layers:
            return None, [
                diag(
                    "E202",
                    f"unknown layer in `{name}`: the model has {s.n_layers} layers",
                    sp,
                    label=f"`{model.name}` has layers {_range(s.n_layers)}",
                    hint=f"did you mean `m{s.n_layers - 1}`?",
                )  # fmt: skip
            ]
        return NodeId(NodeKind.MLP, layer), []
    m = _HEAD.fullmatch(name)
    if m:
        n_heads = model.shape.n_heads if model else None
        hint = (
            f"a head is written `{name}.H` with H in {_range(n_heads)}" if n_heads else f"a head is written `{name}.H`"
        )
        return None, [
            diag("E203", f"`{name}` is not a node: a head needs its index", sp, label="head index missing", hint=hint)
        ]
    return None, []


def ref_group_name(ref: ast.NodeSpec) -> str | None:
    """The name a reference could give to a group (a bare name), or None (a head, a range)."""
    if isinstance(ref, ast.NodeRef) and ref.head is None and ref.part is None:
        return ref.name
    return None


_KIND_WORD = {NodeKind.HEAD: "a head", NodeKind.MLP: "an MLP", NodeKind.EMBED: "an embedding",
              NodeKind.POS: "an embedding", NodeKind.OUT: "the output"}  # fmt: skip
_RANGE_HELP = "a range runs from head to head (`a8.0..a9.8`) or from MLP to MLP (`m3..m7`)"


def _endpoint(
    ref: ast.NodeRef, rng: ast.NodeRange, model: ModelRef | None, group_names
) -> tuple[NodeId | None, list[Diagnostic]]:
    node, diags = resolve_builtin(ref, model)
    if diags:
        d = diags[0]
        if d.code in ("E201", "E202", "E205"):  # the node does not exist in this model
            return None, [diag("E218", f"range `{rng.text}`: {d.message}", d.span, label=d.label, hint=d.hint)]
        return None, diags
    if node is None:
        what = "a group" if ref.name in group_names else "not a node name"
        return None, [diag("E216", f"range endpoint `{ref.text}` is not a head or an MLP", ref.span,
                           label=what, hint=_RANGE_HELP + (f"; a group goes in the list on its own: `{ref.name}`" if ref.name in group_names else ""))]  # fmt: skip
    if node.kind not in (NodeKind.HEAD, NodeKind.MLP):
        return None, [diag("E216", f"range endpoint `{ref.text}` is not a head or an MLP", ref.span,
                           label=f"`{ref.text}` is {_KIND_WORD[node.kind]}", hint=_RANGE_HELP + f"; list `{ref.text}` on its own, beside the range")]  # fmt: skip
    return node, []


def resolve_range(
    rng: ast.NodeRange, model: ModelRef | None, group_names=()
) -> tuple[tuple[NodeId, ...], list[Diagnostic]]:
    """Every node of `a8.0..a9.8` / `m3..m7` in model order (heads by layer then index), inclusive.
    Empty on error (E216 kinds, E217 reversed, E218 missing endpoint)."""
    a, da = _endpoint(rng.start, rng, model, group_names)
    b, db = _endpoint(rng.end, rng, model, group_names)
    if da or db:
        return (), da + db
    if a is None or b is None:
        return (), []
    if a.kind is not b.kind:
        return (), [diag("E216", f"range `{rng.text}` mixes {_KIND_WORD[a.kind]} and {_KIND_WORD[b.kind]}", rng.span,
                         label="both ends must be heads, or both MLPs", hint=_RANGE_HELP)]  # fmt: skip
    if b.sort_key() < a.sort_key():
        return (), [diag("E217", f"reversed range `{rng.text}`: `{rng.start.text}` comes after `{rng.end.text}`", rng.span,
                         label="ranges run forward, in model order", hint=f"write `{rng.end.text}..{rng.start.text}`")]  # fmt: skip
    if model is None:
        return (), []  # the model did not resolve (reported elsewhere): members unknown
    assert a.layer is not None and b.layer is not None  # (heads or MLPs: E216 otherwise)
    if a.kind is NodeKind.MLP:
        return tuple(NodeId(NodeKind.MLP, layer) for layer in range(a.layer, b.layer + 1)), []
    n_heads = model.shape.n_heads
    heads = [
        NodeId(NodeKind.HEAD, layer, h)
        for layer in range(a.layer, b.layer + 1)
        for h in range(n_heads)
        if (a.layer, a.head) <= (layer, h) <= (b.layer, b.head)
    ]
    return tuple(heads), []


def resolve_ref(
    ref: ast.NodeSpec, model: ModelRef | None, groups: dict[str, tuple[NodeId, ...]], group_names
) -> tuple[tuple[NodeId, ...], tuple[str, ...], list[Diagnostic]]:
    """(nodes, the group name if ref names a group, diagnostics). Nodes is empty on error.

    `group_names` holds every declared group, also those that failed to resolve (whose own
    errors were reported at their definition): a reference to such a group is not an error again.
    A range resolves to its members (no group name).
    """
    if isinstance(ref, ast.NodeRange):
        nodes, diags = resolve_range(ref, model, group_names)
        return nodes, (), diags
    node, diags = resolve_builtin(ref, model)
    if node is not None or diags:
        return ((node,) if node else ()), (), diags
    if ref.part is not None and ref.name in group_names:
        return (), (), [diag("E203", f"`{ref.text}`: a group has no parts", ref.span, label=f"`{ref.name}` is a group",
                             hint=f"name the parts of its members one by one (`a9.6[s]`), or write `{ref.whole_text}`")]  # fmt: skip
    if ref.head is None and ref.name in group_names:
        return groups.get(ref.name, ()), (ref.name,), []
    if ref.head is not None and ref.name in group_names:
        return (), (), [diag("E203", f"`{ref.text}`: a group has no head index", ref.span,
                             label=f"`{ref.name}` is a group", hint=f"write `{ref.name}`")]  # fmt: skip
    if ref.head is not None and is_builtin_name(ref.name):
        return (), (), [diag("E203", f"`{ref.text}` is not a node: only heads `aL.H` take an index", ref.span,
                             label="not a head", hint=f"write `{ref.name}`")]  # fmt: skip
    cands = list(group_names) + ["embed", "pos", "out"]
    hint = did_you_mean(ref.text, cands) or (
        "node names are `embed`, `pos`, `out`, `aL.H` (head H of layer L), `mL` (MLP of layer L) or a group name"
    )
    return (
        (),
        (),
        [
            diag(
                "E203",
                f"unknown node or group `{ref.text}`",
                ref.span,
                label="no node or group of this name",
                hint=hint,
            )
        ],
    )
