"""Resolving node names (`embed`, `pos`, `out`, `aL.H`, `mL`, group names) against a model shape."""

from __future__ import annotations

import re

from circuitdsl import ast
from circuitdsl.compiler.codes import diag
from circuitdsl.compiler.unit import did_you_mean
from circuitdsl.diagnostics import Diagnostic
from circuitdsl.ir import ModelRef, NodeId, NodeKind

__all__ = ["all_node_names", "resolve_builtin", "is_builtin_name", "resolve_ref"]

_HEAD = re.compile(r"a([0-9]+)")
_MLP = re.compile(r"m([0-9]+)")


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
    """A model node, or (None, []) if the name is not a built-in spelling at all."""
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
                diag("E202", f"unknown layer in `{ref.text}`: the model has {s.n_layers} layers", sp,
                     label=f"`{model.name}` has layers {_range(s.n_layers)}",
                     hint=did_you_mean(ref.text, cands, cutoff=0.0))  # fmt: skip
            ]
        if head >= s.n_heads:
            cands = [f"a{layer}.{h}" for h in range(s.n_heads)]
            return None, [
                diag("E201", f"unknown attention head `{ref.text}`", sp,
                     label=f"layer {layer} has heads {_range(s.n_heads)}",
                     hint=did_you_mean(ref.text, cands, cutoff=0.0))  # fmt: skip
            ]
        return NodeId(NodeKind.HEAD, layer, head), []
    if name in ("embed", "out"):
        return NodeId(NodeKind(name)), []
    if name == "pos":
        if model is not None and model.shape.pos_embed != "learned":
            return None, [
                diag("E204", f"`pos` does not exist in `{model.name}`", sp,
                     label=f"this model has {model.shape.pos_embed} positions, no position embedding",
                     hint="claim `embed` only: position information enters through the attention itself")  # fmt: skip
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
                diag("E205", f"`{name}` does not exist: `{model.name}` is attention-only", sp,
                     label="this model has no MLPs", hint="only heads `aL.H`, `embed`, `pos` and `out` exist")  # fmt: skip
            ]
        if layer >= s.n_layers:
            return None, [
                diag("E202", f"unknown layer in `{name}`: the model has {s.n_layers} layers", sp,
                     label=f"`{model.name}` has layers {_range(s.n_layers)}",
                     hint=f"did you mean `m{s.n_layers - 1}`?")  # fmt: skip
            ]
        return NodeId(NodeKind.MLP, layer), []
    m = _HEAD.fullmatch(name)
    if m:
        n_heads = model.shape.n_heads if model else None
        hint = f"a head is written `{name}.H` with H in {_range(n_heads)}" if n_heads else f"a head is written `{name}.H`"
        return None, [diag("E203", f"`{name}` is not a node: a head needs its index", sp, label="head index missing", hint=hint)]
    return None, []


def resolve_ref(
    ref: ast.NodeRef, model: ModelRef | None, groups: dict[str, tuple[NodeId, ...]], group_names
) -> tuple[tuple[NodeId, ...], tuple[str, ...], list[Diagnostic]]:
    """(nodes, the group name if ref names a group, diagnostics). Nodes is empty on error.

    `group_names` holds every declared group, also those that failed to resolve (whose own
    errors were reported at their definition): a reference to such a group is not an error again.
    """
    node, diags = resolve_builtin(ref, model)
    if node is not None or diags:
        return ((node,) if node else ()), (), diags
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
    return (), (), [diag("E203", f"unknown node or group `{ref.text}`", ref.span, label="no node or group of this name", hint=hint)]
