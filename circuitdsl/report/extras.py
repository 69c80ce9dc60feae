"""The model-dependent parts of a report: attention patterns and direct logit attribution.

`compute_extras(h, result)` loads the hypothesis' model through `circuitdsl.backends.loader` and
returns plain frozen data (tuples of floats and strings), so that `circuitdsl.report.html` renders
it without torch. torch is imported only inside `compute_extras`.

Direct logit attribution (DLA) of a head h at a scored position p of example x:
    dla(h, x) = (r_h(x, p) / s(x, p)) . (W_U[:, answer] - W_U[:, wrong])
where r_h is the head's output (`Site.RESULT`, head H, position p), s the final norm's scale
on the clean run (1 for models without a final norm), averaged over x's scored positions. Without
a wrong token the direction is W_U[:, answer] minus the mean column of W_U. For a model without a
final norm, dla of a last-layer head equals exactly the change in logit difference when that
head's output is removed (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AttentionMap", "HeadAttribution", "Extras", "compute_extras", "ExtrasError"]


class ExtrasError(Exception):
    """The model-dependent sections cannot be computed (message says why)."""


@dataclass(frozen=True)
class AttentionMap:
    """The attention pattern of one head on one example: `pattern[q][k]` (rows sum to 1)."""

    head: str
    example_id: str
    role: str
    """Why this example was chosen, e.g. 'worst |delta|' or 'first example'."""
    tokens: tuple[str, ...]
    positions: tuple[tuple[str, tuple[int, ...]], ...]
    """The example's named positions."""
    claimed_at: tuple[str, ...] | None
    """The named positions the head is claimed at (None: everywhere)."""
    pattern: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class HeadAttribution:
    """Direct logit attribution of one head (or one part of a split head) to the answer direction, per
    example (model units: logits)."""

    head: str
    claimed: bool
    mean: float
    values: tuple[float, ...]
    component: str = ""
    """For a part of a split head (`a1.0[s]`): the head it is a part of (`a1.0`); the parts' values sum to
    the head's."""


@dataclass(frozen=True)
class Extras:
    model: str
    direction: str
    """The logit direction attributed to, in words."""
    n_dla_examples: int
    total: float
    """Mean over the same examples of the clean logit difference along the direction."""
    heads: tuple[HeadAttribution, ...]
    """Every head of the model, in model order."""
    rest: float
    """total minus every head's mean: embeddings, MLPs and biases together."""
    attention: tuple[AttentionMap, ...]
    token_strings: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Decoded tokens of the examples shown in the report, by example id."""
    notes: tuple[str, ...] = ()
    parts: tuple[HeadAttribution, ...] = ()
    """The parts of the file's split heads (`split a1.0 by ...`), each head's parts in order."""

    def tokens_of(self, example_id: str) -> tuple[str, ...] | None:
        for k, v in self.token_strings:
            if k == example_id:
                return v
        return None


def _decoder(backend) -> Any:
    vocab = getattr(backend, "input_vocab", None) or backend.vocab_strings
    if vocab:
        vocab = tuple(str(v) for v in vocab)
        return lambda t: vocab[t] if 0 <= t < len(vocab) else f"<{t}>"
    if backend.tokenizer is not None:
        return lambda t: backend.tokenizer.decode([t])
    return lambda t: str(t)


def _unembed_matrix(backend):
    try:
        return backend.unembed_matrix()
    except (AttributeError, NotImplementedError):
        raise ExtrasError(f"model `{backend.name}` exposes no unembedding matrix W_U") from None


def _run(backend, toks, capture: list, what: str):
    from circuitdsl.backends.base import BackendError

    try:
        return backend.run(toks, capture=capture)
    except BackendError as e:
        raise ExtrasError(f"model `{backend.name}` records no {what}: {e}") from None


def compute_extras(
    h,
    result=None,
    *,
    n_attention: int = 2,
    max_heads: int = 8,
    n_dla: int = 64,
    worst: int = 10,
    device: str = "cpu",
) -> Extras:
    """Attention patterns of the claimed heads on `n_attention` examples (the worst example of
    `result` first, then the dataset's first examples), and DLA of every head on the first `n_dla`
    examples of the hypothesis' dataset. Raises ExtrasError with a reason when it cannot."""
    for name, v, lo in (
        ("n_attention", n_attention, 0),
        ("max_heads", max_heads, 0),
        ("n_dla", n_dla, 1),
        ("worst", worst, 0),
    ):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    import torch

    from circuitdsl.backends.base import BackendError
    from circuitdsl.backends.loader import load_backend
    from circuitdsl.backends.protocol import Site, SiteKey
    from circuitdsl.diagnostics import CircuitError
    from circuitdsl.engine import data as data_mod
    from circuitdsl.ir import Claim, NodeId, NodeKind
    from circuitdsl.models.shapes import ShapeError
    from circuitdsl.splits.parts import part_outputs

    try:
        backend = load_backend(h.model, device)
        ds = data_mod.materialise(h.dataset(h.main_dataset), backend.tokenizer)
    except (BackendError, ShapeError) as err:
        raise ExtrasError(f"model `{h.model.name}` cannot be loaded: {err}") from None
    except CircuitError as err:
        raise ExtrasError(f"dataset `{h.main_dataset}` cannot be built: {err.diagnostics[0].message}") from None
    if len(ds) == 0:
        raise ExtrasError(f"dataset `{h.main_dataset}` is empty")
    decode = _decoder(backend)
    shape = backend.shape
    heads = [c for c in h.claims if c.node.kind is NodeKind.HEAD]
    # one attention pattern per head: the parts of a split head share its pattern (a part maps its output)
    by_head: dict[NodeId, list[Claim]] = {}
    for c in heads:
        by_head.setdefault(c.node.whole, []).append(c)
    notes: list[str] = []
    if len(by_head) > max_heads:
        notes.append(f"attention patterns shown for the first {max_heads} of {len(by_head)} claimed heads")
    shown_heads = list(by_head.items())[:max_heads]

    # ---- which examples ------------------------------------------------------------------------
    by_id = {e.id: e for e in ds.examples}
    chosen: list[tuple[Any, str]] = []
    rows = sorted(result.examples, key=lambda r: -r.abs_delta) if result is not None else []
    if rows and rows[0].id in by_id and n_attention:
        chosen.append((by_id[rows[0].id], "worst |m(scrubbed) - m(model)|"))
    for k, e in enumerate(ds.examples):
        if len(chosen) >= n_attention:
            break
        if all(e.id != c.id for c, _ in chosen):
            chosen.append((e, f"example {k} of the dataset"))
    token_ids = {e.id for e, _ in chosen} | {r.id for r in rows[:worst]}
    token_strings = tuple((i, tuple(decode(t) for t in by_id[i].tokens)) for i in sorted(token_ids) if i in by_id)

    attention: list[AttentionMap] = []
    with torch.no_grad():
        layers = sorted({L for hv, _ in shown_heads if (L := hv.layer) is not None})
        for e, role in chosen:
            if not shown_heads:
                break
            toks = backend.tokens([e.tokens])
            _, cache = _run(backend, toks, [(Site.PATTERN, L) for L in layers], "attention pattern")
            strs = tuple(decode(t) for t in e.tokens)
            for hv, cs in shown_heads:
                pat = cache[(Site.PATTERN, hv.layer)][0, hv.head].float().cpu()
                at = [c.positions for c in cs]  # (a split head: where any of its parts is claimed)
                attention.append(
                    AttentionMap(
                        head=hv.name
                        if len(cs) == 1 and cs[0].node == hv
                        else f"{hv.name} ({', '.join(c.node.name for c in cs)})",
                        example_id=e.id,
                        role=role,
                        tokens=strs,
                        positions=e.positions,
                        claimed_at=None
                        if any(p is None for p in at)
                        else tuple(dict.fromkeys(n for p in at if p for n in p)),
                        pattern=tuple(tuple(float(x) for x in row) for row in pat.tolist()),
                    )
                )

        # ---- direct logit attribution -------------------------------------------------------------
        W_U = _unembed_matrix(backend)
        dla_examples = list(ds.examples[:n_dla])
        have_wrong = all(len(e.wrongs) == len(e.scored_positions) for e in dla_examples)
        direction = "logit(answer) - logit(wrong)" if have_wrong else "logit(answer) - mean logit"
        norm = backend.final_norm != "none"
        want: list[SiteKey] = [(Site.RESULT, L) for L in range(shape.n_layers)]
        if norm:
            want.append((Site.FINAL_SCALE, None))
        per_head: list[list[float]] = [[] for _ in range(shape.n_layers * shape.n_heads)]
        head_splits = [s for s in h.splits if s.node.kind is NodeKind.HEAD]
        per_part: dict[NodeId, list[float]] = {p: [] for s in head_splits for p in s.parts}
        totals: list[float] = []
        groups: dict[int, list] = {}
        for e in dla_examples:
            groups.setdefault(len(e.tokens), []).append(e)
        order: list[str] = []
        for _, group in sorted(groups.items()):
            toks = backend.tokens([e.tokens for e in group])
            logits, cache = _run(backend, toks, want, "head outputs or final-norm scale: no DLA")
            logits = logits.float()
            for b, e in enumerate(group):
                order.append(e.id)
                pos = list(e.scored_positions)
                answers = torch.tensor(list(e.answers), dtype=torch.long)
                d = W_U[:, answers].cpu()  # [D, S]
                if have_wrong:
                    d = d - W_U[:, torch.tensor(list(e.wrongs), dtype=torch.long)].cpu()
                    lg = logits[b, pos].cpu()
                    tot = lg.gather(1, answers[:, None]) - lg.gather(1, torch.tensor(list(e.wrongs))[:, None])
                else:
                    d = d - W_U.mean(dim=1, keepdim=True).cpu()
                    lg = logits[b, pos].cpu()
                    tot = lg.gather(1, answers[:, None]) - lg.mean(dim=1, keepdim=True)
                totals.append(float(tot.mean()))
                scale = cache[(Site.FINAL_SCALE, None)][b, pos].float().cpu() if norm else torch.ones(len(pos), 1)
                for L in range(shape.n_layers):
                    raw = cache[(Site.RESULT, L)][b, pos].float().cpu()  # [S, H, D]
                    r = raw - raw.mean(dim=-1, keepdim=True) if backend.final_norm == "layernorm" else raw
                    contrib = torch.einsum("shd,ds->sh", r / scale.reshape(len(pos), 1, 1), d)  # [S, H]
                    for H in range(shape.n_heads):
                        per_head[L * shape.n_heads + H].append(float(contrib[:, H].mean()))
                    for sp in head_splits:
                        if sp.node.layer != L:
                            continue
                        for p, o in part_outputs(sp, raw[:, sp.node.head]).items():  # [S, D] each
                            if backend.final_norm == "layernorm":
                                o = o - o.mean(dim=-1, keepdim=True)
                            per_part[p].append(float(((o / scale.reshape(len(pos), 1)) * d.T).sum(-1).mean()))
    # results are in dataset order again
    idx = {i: k for k, i in enumerate(order)}
    perm = [idx[e.id] for e in dla_examples]
    claimed = {c.node.name for c in heads}
    head_rows = []
    for L in range(shape.n_layers):
        for H in range(shape.n_heads):
            vals = tuple(per_head[L * shape.n_heads + H][k] for k in perm)
            name = f"a{L}.{H}"
            head_rows.append(HeadAttribution(name, name in claimed, sum(vals) / len(vals), vals))
    part_rows = []
    for p, got in per_part.items():
        vals = tuple(got[k] for k in perm)
        part_rows.append(HeadAttribution(p.name, p.name in claimed, sum(vals) / len(vals), vals, p.whole.name))
    total = sum(totals) / len(totals)
    rest = total - sum(r.mean for r in head_rows)
    if norm:
        notes.append("the final norm's scale is frozen at its value on the clean run")
    return Extras(
        model=h.model.name,
        direction=direction,
        n_dla_examples=len(dla_examples),
        total=total,
        heads=tuple(head_rows),
        rest=rest,
        attention=tuple(attention),
        token_strings=token_strings,
        notes=tuple(notes),
        parts=tuple(part_rows),
    )
