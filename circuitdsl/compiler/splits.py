"""Split components (docs/FEATURES.md): `split` statements -> ir.Split, and the check that every part
named anywhere belongs to a split, and every split component is named only through its parts.

    split a9.6 by subspace s from "bases/ioi_s.npy"     # parts a9.6[s], a9.6[~s]
    split m0 by sae "saes/tiny_m0" latents 3, 17, 42    # parts m0[f3], m0[f17], m0[f42], m0[rest], m0[err]

The basis file and the SAE are read by the loaders of circuitdsl.splits (the same code the engine uses),
so a file the compiler accepts is one the engine can use; what the loaders cannot know (the model's
d_model, the component the SAE must sit on, the latents named) is checked here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from circuitdsl import ast
from circuitdsl.compiler.codes import CODES, diag
from circuitdsl.compiler.names import resolve_builtin
from circuitdsl.compiler.unit import Unit, base_dir, did_you_mean
from circuitdsl.diagnostics import CircuitError, Diagnostic, Label
from circuitdsl.ir import NodeId, NodeKind, Span, Split, SplitKind

__all__ = ["resolve_splits", "check_parts", "split_parts", "sae_hook_point", "file_digest"]

_SPLITTABLE = (NodeKind.HEAD, NodeKind.MLP, NodeKind.EMBED)


def split_parts(node: NodeId, kind: SplitKind, name: str = "", latents: tuple[int, ...] = ()) -> tuple[NodeId, ...]:
    """The parts of a split, in the order ir.Split lists them: `[s]`, `[~s]`; or `[f<i>]` by latent, `[rest]`,
    `[err]`."""
    if kind is SplitKind.SUBSPACE:
        names = [name, f"~{name}"]
    else:
        names = [f"f{i}" for i in sorted(latents)] + ["rest", "err"]
    return tuple(NodeId(node.kind, node.layer, node.head, p) for p in names)


def sae_hook_point(node: NodeId) -> str | None:
    """The SAELens hook point an SAE must be attached at to split `node`'s output (None: no SAE can)."""
    if node.kind is NodeKind.MLP:
        return f"blocks.{node.layer}.hook_mlp_out"
    if node.kind is NodeKind.EMBED:
        return "hook_embed"
    return None


def file_digest(*paths: Path) -> str:
    """blake2b (16 bytes, hex) of the files' bytes, in order: the weights a result was computed with."""
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _shown(s: ast.Split) -> str:
    """The path as the user will recognise it (relative to where they ran the command)."""
    if s.span.file.startswith("<"):
        return s.source
    return os.path.normpath(os.path.join(os.path.dirname(s.span.file), s.source))


_LABELS = {"E704": "unreadable", "E705": "wrong shape", "E706": "rank-deficient", "E709": "unsupported SAE"}


def _reanchored(e: CircuitError, s: ast.Split, path: Path, fallback: str) -> list[Diagnostic]:
    """A loader's diagnostics pointed at the path in the `split` statement (a loader knows no .circuit
    file), the path named as the user wrote it; a code outside E7xx becomes `fallback`, keeping its
    message and hint."""
    out = []
    for d in e.diagnostics:
        code = d.code if d.code in CODES and d.code.startswith("E7") else fallback
        message = d.message.replace(str(path), s.source)
        label = d.label or _LABELS.get(code, "refused")
        out.append(diag(code, message, s.source_span, label=label, hint=d.hint))
    return out


def _check_basis(s: ast.Split, path: Path, d_model: int | None) -> tuple[str, list[Diagnostic]]:
    """(digest, diagnostics) for a subspace split's basis file."""
    sp = s.source_span
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        return "", [diag("E703", f"basis file `{s.source}` {why}", sp, label=f"looked for {_shown(s)}",
                         hint="a basis is an npy or safetensors file of shape [d_model, k], its path relative to "
                         "this .circuit file; `circuitdsl subspace fit` writes one")]  # fmt: skip
    from circuitdsl.splits.basis import load_basis

    try:
        basis: Any = load_basis(path)
    except CircuitError as e:
        return "", _reanchored(e, s, path, "E704")
    except Exception as e:
        return "", [diag("E704", f"cannot read basis file `{s.source}`: {e}", sp, label="unreadable",
                         hint="a basis is one finite tensor of shape [d_model, k] in an npy or safetensors file")]  # fmt: skip
    shape = tuple(getattr(basis, "shape", ()))
    if d_model is not None and (len(shape) != 2 or shape[0] != d_model):
        return "", [diag("E705", f"basis `{s.source}` has shape {list(shape)}; the model's d_model is {d_model}", sp,
                         label=f"expected [{d_model}, k]",
                         hint="rows are the model's residual dimensions, columns the k directions spanning the subspace"
                         + ("; transpose it" if len(shape) == 2 and shape[1] == d_model else ""))]  # fmt: skip
    if d_model is not None and shape[1] >= d_model:
        return "", [diag("E707", f"basis `{s.source}` spans all {d_model} dimensions: `[~{s.name.text if s.name else ''}]` "
                         "would always be zero", sp, label=f"k = {shape[1]}, d_model = {d_model}",
                         hint="a subspace split needs k < d_model; to claim the whole output, do not split it")]  # fmt: skip
    return file_digest(path), []


def _sae_files(path: Path) -> list[Path]:
    return [p for p in (path / "cfg.json", path / "sae_weights.safetensors") if p.is_file()]


def _check_sae(s: ast.Split, path: Path, node: NodeId, d_model: int | None) -> tuple[str, list[Diagnostic]]:
    """(digest, diagnostics) for an SAE split: the directory, its hook point, widths and the latents named."""
    sp = s.source_span
    if not path.is_dir():
        why = "is a file, not a directory" if path.exists() else "does not exist"
        return "", [diag("E708", f"SAE directory `{s.source}` {why}", sp, label=f"looked for {_shown(s)}",
                         hint="an SAE is a directory in SAELens' layout (cfg.json, sae_weights.safetensors), its "
                         "path relative to this .circuit file")]  # fmt: skip
    from circuitdsl.splits.sae import load_sae

    try:
        sae: Any = load_sae(path)
    except CircuitError as e:
        return "", _reanchored(e, s, path, "E709")
    except Exception as e:
        return "", [diag("E709", f"cannot read the SAE in `{s.source}`: {e}", sp, label="unreadable",
                         hint="SAELens' layout: cfg.json and sae_weights.safetensors (W_enc, b_enc, W_dec, b_dec)")]  # fmt: skip
    diags: list[Diagnostic] = []
    want = sae_hook_point(node)
    hook = str(getattr(sae, "hook_name", "") or "")
    if want is None or hook != want:
        supported = "`blocks.L.hook_mlp_out` (split of `mL`) and `hook_embed` (split of `embed`)"
        what = f"`{node.name}`'s output is `{want}`" if want else f"no SAE hook point is `{node.name}`'s output"
        diags.append(diag("E710", f"the SAE in `{s.source}` reads `{hook or '?'}`: {what}", sp,
                          label=f"attached at {hook or 'an unnamed hook'}",
                          hint=f"an SAE splits the output it was trained on; supported: {supported}"
                          + ("; split a head by a subspace instead" if node.kind is NodeKind.HEAD else "")))  # fmt: skip
    d_in, d_sae = int(getattr(sae, "d_in", 0)), int(getattr(sae, "d_sae", 0))
    if d_model is not None and d_in != d_model:
        diags.append(diag("E711", f"the SAE in `{s.source}` reads vectors of width {d_in}; the model's d_model is {d_model}",
                          sp, label=f"d_in = {d_in}", hint="the SAE was trained on another model"))  # fmt: skip
    for lit in s.latents:
        if lit.value >= d_sae:
            diags.append(diag("E712", f"latent {lit.text} does not exist: the SAE in `{s.source}` has {d_sae} latents",
                              lit.span, label=f"latents run 0..{d_sae - 1}", hint="latent indices count from 0"))  # fmt: skip
    if diags:
        return "", diags
    return file_digest(*_sae_files(path)), []


def _duplicate_latents(s: ast.Split) -> list[Diagnostic]:
    first: dict[int, ast.Literal] = {}
    diags = []
    for lit in s.latents:
        if lit.value in first:
            diags.append(diag("E713", f"latent {lit.text} is named twice", lit.span, label="named again",
                              hint="name each latent once", related=(Label(first[lit.value].span, "first named here"),)))  # fmt: skip
        else:
            first[lit.value] = lit
    return diags


def resolve_splits(u: Unit) -> Unit:
    """`split` statements -> ir.Split (E701-E713). A split whose component resolves is kept even when its
    file is refused, so that its parts resolve (the file's error is reported once, not at every part)."""
    diags: list[Diagnostic] = []
    splits: list[Split] = []
    first: dict[NodeId, ast.Split] = {}
    d_model = u.model.shape.d_model if u.model is not None else None
    for s in u.of(ast.Split):
        node, ds = resolve_builtin(s.node, u.model)
        diags.extend(ds)
        if ds:
            continue
        if node is None or node.kind not in _SPLITTABLE:
            what = "a group or an unknown name" if node is None else f"`{node.name}`"
            diags.append(diag("E701", f"`{s.node.text}` cannot be split", s.node.span, label="not a head, an MLP or `embed`" if node is not None else f"{what}",
                              hint="split one head `aL.H`, one MLP `mL` or `embed`; `out` and `pos` write no part of "
                              "the residual stream that can be divided"))  # fmt: skip
            continue
        if node in first:
            prev = first[node]
            diags.append(diag("E702", f"`{node.name}` is split twice", s.span, label="second split",
                              hint="a component is split once per hypothesis: keep one `split` statement",
                              related=(Label(prev.span, f"first split here ({prev.span.file}:{prev.span.line})"),)))  # fmt: skip
            continue
        first[node] = s
        path = (base_dir(s.span.file) / s.source).resolve()
        if s.kind == "subspace":
            assert s.name is not None
            kind, name, latents = SplitKind.SUBSPACE, s.name.text, ()
            digest, ds = _check_basis(s, path, d_model)
        else:
            kind, name = SplitKind.SAE, ""
            dup = _duplicate_latents(s)
            latents = tuple(sorted({lit.value for lit in s.latents}))
            digest, ds = ("", []) if node.kind not in _SPLITTABLE else _check_sae(s, path, node, d_model)
            ds = dup + ds
        diags.extend(ds)
        parts = split_parts(node, kind, name, latents)
        splits.append(Split(node, kind, str(path), parts, name, latents, digest, s.span))
    return u.add(*diags, splits=tuple(splits))


def _parts_text(split: Split) -> str:
    return ", ".join(f"`{p.name}`" for p in split.parts)


def check_parts(u: Unit) -> Unit:
    """Every claimed node (from `node`, `edge`, `wire`) and group member against the splits: E219 unknown part,
    E220 a part of a component that is not split, E221 a split component named whole; W304 a split none of
    whose parts is claimed."""
    by_node = {s.node: s for s in u.splits}
    diags: list[Diagnostic] = []
    seen: set[NodeId] = set()

    def check(n: NodeId, span: Span | None, via: str) -> None:
        if n in seen:
            return
        whole = n.whole
        split = by_node.get(whole)
        if n.part is None:
            if split is None:
                return
            seen.add(n)
            diags.append(diag("E221", f"`{n.name}` is split: name its parts{via}", span, label="a split component",
                              hint=f"its parts: {_parts_text(split)}",
                              related=(Label(split.span, "split here"),) if split.span else ()))  # fmt: skip
            return
        seen.add(n)
        if split is None:
            if whole.kind in _SPLITTABLE:
                hint = f"add a `split {whole.name} by ...` statement, or write `{whole.name}`"
            else:
                hint = f"`{whole.name}` cannot be split: write `{whole.name}`"
            diags.append(diag("E220", f"`{n.name}`: `{whole.name}` is not split{via}", span, label="no such part",
                              hint=hint))  # fmt: skip
            return
        if n not in split.parts:
            names = {p.part: p.name for p in split.parts if p.part is not None}
            dm = did_you_mean(n.part or "", names)
            best = f"did you mean `{names[dm.split('`')[1]]}`? " if dm else ""
            diags.append(diag("E219", f"`{whole.name}` has no part `{n.part}`{via}", span, label="unknown part",
                              hint=f"{best}its parts: {_parts_text(split)}",
                              related=(Label(split.span, "split here"),) if split.span else ()))  # fmt: skip

    for c in u.claims:
        check(c.node, c.span, f" (in group `{c.groups[0]}`)" if c.groups else "")
    group_spans = dict(u.group_spans)
    for gname, members in u.groups:
        for n in members:
            check(n, group_spans.get(gname), f" (in group `{gname}`)")
    claimed = {c.node for c in u.claims}
    for split in u.splits:
        if not any(p in claimed for p in split.parts):
            diags.append(diag("W304", f"no part of `{split.node.name}` is claimed: the split changes nothing",
                              split.span, label="parts never claimed",
                              hint=f"claim some of its parts ({_parts_text(split)}), or remove the split"))  # fmt: skip
    return u.add(*diags)
