"""Activation patching and path patching sweeps (a researcher's tools for finding a circuit).

All sweeps patch from a corrupted batch into the clean batch, paired row by row (row i of the
corrupted dataset is the corruption of row i of the clean one, with the same layout), and score
the mean logit difference (answer - wrong) at each example's scored positions:

- `head_sweep`: for every head L.H, the clean run with the head's output (`Site.RESULT`, head H, at
  positions P) replaced by the corrupted run's (P: the named positions, or all).
- `mlp_sweep`: the same for each MLP's output (`Site.MLP_OUT`).
- `path_sweep`: for every sender head (and MLP) upstream of the receivers, the clean run with the
  sender's delta (corrupted - clean output, at positions P) added to the q, k or v input of the
  receiver heads only (`Site.Q_INPUT`, head H; k/v inputs are per key/value group in GQA models,
  patched once per group). Every other path from the sender stays clean.

The model is a `ModelBackend` (backends/protocol.py), loaded by `boot_model` and verified against the
model contract: this module names no hook.

Effects are normalised: (patched - clean) / (corrupt - clean): 0 = no effect, 1 = the patch alone
moves the metric all the way to the corrupted run's value.

Speed: the variants of one layer (its heads) are stacked along the batch, so one forward pass
patches all heads of a layer (chunked to `max_rows` rows), and each pass starts from the clean
run's cached residual stream at the first layer the patch can change: only the blocks from there on
run (`ModelBackend.run_from`: the blocks are called alone with the arguments each received in the
clean run, as the engine does). Hooks are removed in `finally`. torch is imported by this module:
import it lazily.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from circuitdsl.backends.protocol import Site
from circuitdsl.datasets.core import Example

__all__ = [
    "PatchingError",
    "Receiver",
    "SweepResult",
    "boot_model",
    "head_sweep",
    "mlp_sweep",
    "path_sweep",
    "mean_logit_diff",
    "parse_receiver",
]


class PatchingError(ValueError):
    """Bad sweep input (unpaired datasets, unknown positions, bad receivers); the message says which."""


# --------------------------------------------------------------------------------------------
# model


def boot_model(model: str | Path, device: str = "cpu") -> Any:
    """The model as a `ModelBackend` that passed the model contract (the engine's loader).

    `model` is a registry name (`smollm2-135m`, `tiny`) or a local model directory. Raises
    PatchingError (its `code` is the loader's diagnostic code: E510, E540) when it cannot be used.
    """
    from circuitdsl.backends.base import BackendError
    from circuitdsl.backends.loader import load_path
    from circuitdsl.models.shapes import ShapeError

    if str(model) not in ("smollm2-135m", "tiny") and not (Path(model) / "config.json").is_file():
        raise PatchingError(f"unknown model `{model}`: use smollm2-135m or a Hugging Face directory")
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        return load_path(model, device)
    except (BackendError, ShapeError) as e:
        err = PatchingError(str(e))
        err.code = getattr(e, "code", "E510")  # type: ignore[attr-defined]
        err.hint = getattr(e, "hint", "")  # type: ignore[attr-defined]
        raise err from None


# --------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class _Group:
    """Rows of one layout: clean and corrupted tokens, answers, and the patched positions."""

    rows: tuple[int, ...]
    clean: Any  # LongTensor [B, T]
    corrupt: Any  # LongTensor [B, T]
    scored: tuple[int, ...]
    answers: Any  # LongTensor [B, S]
    wrongs: Any  # LongTensor [B, S]
    positions: tuple[int, ...] | None  # None: every position


def _device(model: Any) -> Any:
    return model.device


def _groups(
    clean: Sequence[Example], corrupt: Sequence[Example], positions: Sequence[str] | None, device: Any = "cpu"
) -> list[_Group]:
    if len(clean) != len(corrupt):
        raise PatchingError(f"the clean and corrupted datasets differ in size ({len(clean)} vs {len(corrupt)})")
    if not clean:
        raise PatchingError("the clean dataset is empty")
    by_layout: dict[Any, list[int]] = {}
    for i, (x, y) in enumerate(zip(clean, corrupt, strict=True)):
        if x.layout != y.layout:
            raise PatchingError(
                f"row {i}: the corrupted example's layout differs from the clean one's "
                f"({len(y.tokens)} vs {len(x.tokens)} tokens or other named positions): they cannot be paired"
            )
        if not x.wrongs or len(x.wrongs) != len(x.answers):
            raise PatchingError(f"row {i} has no wrong-answer token for each answer: logit_diff needs one")
        by_layout.setdefault(x.layout, []).append(i)
    out = []
    for rows in by_layout.values():
        first = clean[rows[0]]
        pos: tuple[int, ...] | None = None
        if positions:
            idx: set[int] = set()
            for name in positions:
                try:
                    idx.update(first.position(name))
                except KeyError:
                    known = ", ".join(k for k, _ in first.positions) or "none"
                    raise PatchingError(f"unknown position `{name}` (this dataset names: {known})") from None
            pos = tuple(sorted(idx))
        out.append(
            _Group(
                rows=tuple(rows),
                clean=torch.tensor([clean[i].tokens for i in rows], dtype=torch.long, device=device),
                corrupt=torch.tensor([corrupt[i].tokens for i in rows], dtype=torch.long, device=device),
                scored=first.scored_positions,
                answers=torch.tensor([clean[i].answers for i in rows], dtype=torch.long, device=device),
                wrongs=torch.tensor([clean[i].wrongs for i in rows], dtype=torch.long, device=device),
                positions=pos,
            )
        )
    return out


def _logit_diff(logits: Any, g: _Group, reps: int, *, scored_only: bool = False) -> Any:
    """Per-row logit difference, averaged over scored positions: [reps * B]. scored_only: `logits`
    holds the scored positions only ([R, S, V], as `_from_layer` returns them)."""
    lg = logits if scored_only else logits[:, list(g.scored), :]  # [R, S, V]
    ans = g.answers.repeat(reps, 1)
    wr = g.wrongs.repeat(reps, 1)
    a = lg.gather(-1, ans.unsqueeze(-1)).squeeze(-1)
    w = lg.gather(-1, wr.unsqueeze(-1)).squeeze(-1)
    return (a - w).double().mean(-1)


def mean_logit_diff(model: Any, examples: Sequence[Example]) -> float:
    """The model's mean logit difference over examples (no patching)."""
    groups = _groups(examples, examples, None, _device(model))
    total = 0.0
    with torch.inference_mode():
        for g in groups:
            total += float(_logit_diff(model.run(g.clean)[0], g, 1).sum())
    return total / len(examples)


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Receiver:
    """A receiver port of a path-patching sweep: head `layer.head`, port q, k or v."""

    layer: int
    head: int
    port: str

    @property
    def name(self) -> str:
        return f"a{self.layer}.{self.head}.{self.port}"


def parse_receiver(text: str, n_layers: int | None = None, n_heads: int | None = None) -> tuple[Receiver, ...]:
    """`a21.3.q` -> one receiver; `a21.3` -> q, k and v; comma-separated lists allowed."""
    out: list[Receiver] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        bits = part.split(".")
        ok = len(bits) in (2, 3) and bits[0][:1] == "a" and bits[0][1:].isdigit() and bits[1].isdigit()
        if not ok or (len(bits) == 3 and bits[2] not in ("q", "k", "v")):
            raise PatchingError(f"bad receiver `{part}`: write a head port like a21.3.q (ports q, k, v)")
        layer, head = int(bits[0][1:]), int(bits[1])
        if n_layers is not None and not 0 <= layer < n_layers:
            raise PatchingError(f"receiver `{part}`: the model has layers 0..{n_layers - 1}")
        if n_heads is not None and not 0 <= head < n_heads:
            raise PatchingError(f"receiver `{part}`: layer {layer} has heads 0..{n_heads - 1}")
        ports = (bits[2],) if len(bits) == 3 else ("q", "k", "v")
        out.extend(Receiver(layer, head, p) for p in ports)
    if not out:
        raise PatchingError("no receiver given")
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class SweepResult:
    """One sweep's numbers. `patched[L][j]` is the mean logit diff with variant j of layer L patched
    (j: the head, or 0 for the MLP); NaN where the variant is not swept (no direct path)."""

    kind: str  # "heads", "mlps", "path"
    metric: str
    dataset: str
    corruption: str
    n: int
    positions: tuple[str, ...]
    receivers: tuple[str, ...]
    clean: float
    corrupt: float
    patched: tuple[tuple[float, ...], ...]
    seconds: float
    mlp_patched: tuple[float, ...] = field(default=())
    """Path sweeps only: the MLP senders (NaN where not upstream)."""

    def effect(self, value: float) -> float:
        denom = self.corrupt - self.clean
        if math.isnan(value) or abs(denom) < 1e-9:
            return math.nan
        return (value - self.clean) / denom

    @property
    def effects(self) -> tuple[tuple[float, ...], ...]:
        return tuple(tuple(self.effect(v) for v in row) for row in self.patched)

    def node_name(self, layer: int, j: int) -> str:
        return f"m{layer}" if self.kind == "mlps" else f"a{layer}.{j}"

    def ranked(self) -> list[tuple[str, float, float]]:
        """(node, patched, effect), strongest |effect| first; MLP senders of path sweeps included."""
        rows = [
            (self.node_name(L, j), v, self.effect(v))
            for L, row in enumerate(self.patched)
            for j, v in enumerate(row)
            if not math.isnan(v)
        ]
        rows += [(f"m{L}", v, self.effect(v)) for L, v in enumerate(self.mlp_patched) if not math.isnan(v)]
        return sorted(rows, key=lambda r: -abs(r[2]) if not math.isnan(r[2]) else 0.0)

    def to_json(self) -> dict:
        def clean_nan(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 6)

        return {
            "kind": self.kind,
            "metric": self.metric,
            "dataset": self.dataset,
            "corruption": self.corruption,
            "n": self.n,
            "positions": list(self.positions),
            "receivers": list(self.receivers),
            "clean": self.clean,
            "corrupt": self.corrupt,
            "seconds": round(self.seconds, 2),
            "patched": [[clean_nan(v) for v in row] for row in self.patched],
            "effect": [[clean_nan(v) for v in row] for row in self.effects],
            "mlp_patched": [clean_nan(v) for v in self.mlp_patched],
            "ranked": [{"node": n, "patched": clean_nan(p), "effect": clean_nan(e)} for n, p, e in self.ranked()],
        }


# --------------------------------------------------------------------------------------------
# the sweeps


def _from_layer(model: Any, resid: Any, layer: int, edits: dict, scored: Sequence[int]) -> Any:
    """Logits at positions `scored` ([R, S, V]) of the run whose residual entering block `layer` is
    `resid`, with `edits` applied: only blocks layer.. run (`ModelBackend.run_from`), and only the scored
    positions are unembedded (the final norm is per position; the unembedding costs about four blocks
    per position on SmolLM2)."""
    # lean (where the backend offers it): blocks compute per-head results and split q/k/v inputs only
    # where an edit needs them; equal to a plain run to float rounding (tests/ioi/test_patching_tiny.py)
    lean = {"lean": True} if getattr(model, "can_run_lean", False) else {}
    return model.run_from(layer, resid, edits=edits, positions=list(scored), **lean)


def _chunks(n_variants: int, batch: int, max_rows: int) -> list[list[int]]:
    per = max(1, max_rows // max(batch, 1))
    return [list(range(i, min(i + per, n_variants))) for i in range(0, n_variants, per)]


def _pos_index(g: _Group, T: int) -> Any:
    dev = g.clean.device
    return (
        torch.arange(T, device=dev) if g.positions is None else torch.tensor(g.positions, dtype=torch.long, device=dev)
    )


def _check_layers(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    if layers is None:
        return list(range(n_layers))
    bad = [L for L in layers if not 0 <= int(L) < n_layers]
    if bad:
        raise PatchingError(f"layer {bad[0]} is not in this model (layers 0..{n_layers - 1})")
    return sorted({int(L) for L in layers})


def _activation_sweep(
    model: Any,
    clean: Sequence[Example],
    corrupt: Sequence[Example],
    *,
    kind: str,
    positions: Sequence[str] | None,
    max_rows: int,
    progress: Callable[[int, int], None] | None,
    layers: Sequence[int] | None = None,
) -> tuple[list[list[float]], float, float, int]:
    n_layers, n_heads = model.shape.n_layers, model.shape.n_heads
    swept = _check_layers(layers, n_layers)
    n_var = n_heads if kind == "heads" else 1
    groups = _groups(clean, corrupt, positions, _device(model))
    sums = [[0.0 if L in swept else math.nan] * n_var for L in range(n_layers)]
    clean_sum = corrupt_sum = 0.0
    site = Site.RESULT if kind == "heads" else Site.MLP_OUT
    done, total = 0, len(swept) * len(groups)
    with torch.inference_mode():
        for g in groups:
            B, T = g.clean.shape
            # the clean run also records the arguments each block receives, for run_from
            clean_logits, resid = model.run(g.clean, capture=[(Site.RESID_PRE, L) for L in swept])
            clean_sum += float(_logit_diff(clean_logits, g, 1).sum())
            del clean_logits
            corrupt_logits, cache = model.run(g.corrupt, capture=[(site, L) for L in swept])
            corrupt_sum += float(_logit_diff(corrupt_logits, g, 1).sum())
            del corrupt_logits
            pos = _pos_index(g, T)
            for L in swept:
                src = cache[(site, L)]
                for variants in _chunks(n_var, B, max_rows):
                    # layers before L compute the clean run: start from its residual at layer L
                    start = resid[(Site.RESID_PRE, L)].repeat(len(variants), 1, 1)

                    def hook(act, variants=variants, src=src, B=B, pos=pos):
                        for k, j in enumerate(variants):
                            rows = slice(k * B, (k + 1) * B)
                            if kind == "heads":
                                act[rows, pos, j] = src[:, pos, j]
                            else:
                                act[rows, pos] = src[:, pos]
                        return act

                    logits = _from_layer(model, start, L, {(site, L): hook}, g.scored)
                    ld = _logit_diff(logits, g, len(variants), scored_only=True).view(len(variants), B).sum(-1)
                    for k, j in enumerate(variants):
                        sums[L][j] += float(ld[k])
                    del logits
                done += 1
                if progress:
                    progress(done, total)
            del cache, resid
    n = len(clean)
    return [[s / n for s in row] for row in sums], clean_sum / n, corrupt_sum / n, n


def head_sweep(
    model: Any,
    clean: Sequence[Example],
    corrupt: Sequence[Example],
    *,
    positions: Sequence[str] | None = None,
    dataset: str = "",
    corruption: str = "",
    max_rows: int = 96,
    progress: Callable[[int, int], None] | None = None,
    layers: Sequence[int] | None = None,
) -> SweepResult:
    """Patch each head's output (at `positions`, or everywhere) from the corrupted run."""
    return _sweep_result("heads", model, clean, corrupt, positions, dataset, corruption, max_rows, progress, layers)


def mlp_sweep(
    model: Any,
    clean: Sequence[Example],
    corrupt: Sequence[Example],
    *,
    positions: Sequence[str] | None = None,
    dataset: str = "",
    corruption: str = "",
    max_rows: int = 96,
    progress: Callable[[int, int], None] | None = None,
    layers: Sequence[int] | None = None,
) -> SweepResult:
    """Patch each MLP's output (at `positions`, or everywhere) from the corrupted run."""
    return _sweep_result("mlps", model, clean, corrupt, positions, dataset, corruption, max_rows, progress, layers)


def _sweep_result(
    kind, model, clean, corrupt, positions, dataset, corruption, max_rows, progress, layers
) -> SweepResult:
    t0 = time.perf_counter()
    patched, c, k, n = _activation_sweep(
        model, clean, corrupt, kind=kind, positions=positions, max_rows=max_rows, progress=progress, layers=layers
    )
    return SweepResult(
        kind, "logit_diff", dataset, corruption, n, tuple(positions or ()), (), c, k,
        tuple(tuple(r) for r in patched), time.perf_counter() - t0,
    )  # fmt: skip


def path_sweep(
    model: Any,
    clean: Sequence[Example],
    corrupt: Sequence[Example],
    receivers: Sequence[Receiver],
    *,
    positions: Sequence[str] | None = None,
    include_mlps: bool = True,
    dataset: str = "",
    corruption: str = "",
    max_rows: int = 96,
    progress: Callable[[int, int], None] | None = None,
    layers: Sequence[int] | None = None,
) -> SweepResult:
    """Path patching: each sender's (corrupted - clean) output, at `positions` (or everywhere),
    added to the receivers' q/k/v inputs only. Senders at or after the first receiver's layer
    have no direct path to it and are skipped for it (NaN when no receiver is downstream).
    `layers` restricts the senders (and `head_sweep`/`mlp_sweep`'s patched layers); NaN elsewhere."""
    t0 = time.perf_counter()
    n_layers, n_heads = model.shape.n_layers, model.shape.n_heads
    n_kv = model.shape.n_kv_heads
    per_group = n_heads // n_kv
    if not receivers:
        raise PatchingError("no receiver given")
    for r in receivers:
        if not (0 <= r.layer < n_layers and 0 <= r.head < n_heads) or r.port not in ("q", "k", "v"):
            raise PatchingError(f"receiver {r.name} is not in this model ({n_layers} layers x {n_heads} heads)")
    # Targets: (site, index into its head axis), k/v deduplicated per key/value group.
    port_site = {"q": Site.Q_INPUT, "k": Site.K_INPUT, "v": Site.V_INPUT}
    targets: dict[int, list[tuple[Site, int]]] = {}
    for r in receivers:
        idx = r.head if r.port == "q" else r.head // per_group
        t = (port_site[r.port], idx)
        if t not in targets.setdefault(r.layer, []):
            targets[r.layer].append(t)
    last = max(targets)
    senders = [L for L in _check_layers(layers, n_layers) if L < last]
    groups = _groups(clean, corrupt, positions, _device(model))
    n = len(clean)
    heads = [[0.0] * n_heads for _ in range(n_layers)]
    mlps = [0.0] * n_layers
    clean_sum = corrupt_sum = 0.0
    names = [(Site.RESULT, L) for L in senders] + [(Site.MLP_OUT, L) for L in senders if model.shape.has_mlp]
    names += [(Site.RESID_PRE, L) for L in targets]
    include_mlps = include_mlps and model.shape.has_mlp
    done, total = 0, len(senders) * len(groups)
    with torch.inference_mode():
        for g in groups:
            B, T = g.clean.shape
            logits, cc = model.run(g.clean, capture=names)  # also records each block's arguments
            clean_sum += float(_logit_diff(logits, g, 1).sum())
            logits, kc = model.run(g.corrupt, capture=names)
            corrupt_sum += float(_logit_diff(logits, g, 1).sum())
            del logits
            pos = _pos_index(g, T)
            mask = torch.zeros(T, dtype=model.dtype, device=g.clean.device)
            mask[pos] = 1.0
            for L in senders:
                res = (Site.RESULT, L)
                dh = (kc[res] - cc[res]) * mask[None, :, None, None]  # [B, T, H, D]
                mo = (Site.MLP_OUT, L)
                dm = (kc[mo] - cc[mo]) * mask[None, :, None] if include_mlps else None  # [B, T, D]
                # variants: the n_heads heads of layer L, then (optionally) its MLP
                deltas = [dh[:, :, j] for j in range(n_heads)] + ([dm] if include_mlps else [])
                for variants in _chunks(len(deltas), B, max_rows):
                    stacked = torch.cat([deltas[j] for j in variants], dim=0)  # [V*B, T, D]
                    hooks: dict[tuple[Site, int], Callable[[torch.Tensor], torch.Tensor]] = {}
                    for rl, tl in targets.items():
                        if rl <= L:
                            continue  # no direct path from layer L into a receiver at layer <= L
                        for site, idx in tl:
                            prev = hooks.get((site, rl))

                            def hook(act, idx=idx, stacked=stacked, prev=prev):
                                if prev is not None:
                                    act = prev(act)
                                act = act.clone()
                                act[:, :, idx] = act[:, :, idx] + stacked.to(act.dtype)
                                return act

                            hooks[(site, rl)] = hook
                    if not hooks:
                        continue
                    # the sender's delta reaches nothing before the first receiver downstream of L:
                    # start from the clean residual there
                    first = min(rl for rl in targets if rl > L)
                    start = cc[(Site.RESID_PRE, first)].repeat(len(variants), 1, 1)
                    logits = _from_layer(model, start, first, hooks, g.scored)
                    ld = _logit_diff(logits, g, len(variants), scored_only=True).view(len(variants), B).sum(-1)
                    del logits
                    for k, j in enumerate(variants):
                        if j < n_heads:
                            heads[L][j] += float(ld[k])
                        else:
                            mlps[L] += float(ld[k])
                done += 1
                if progress:
                    progress(done, total)
    nan = math.nan
    patched = tuple(tuple(heads[L][j] / n if L in senders else nan for j in range(n_heads)) for L in range(n_layers))
    mlp_p = tuple(mlps[L] / n if (include_mlps and L in senders) else nan for L in range(n_layers))
    return SweepResult(
        "path", "logit_diff", dataset, corruption, n, tuple(positions or ()), tuple(r.name for r in receivers),
        clean_sum / n, corrupt_sum / n, patched, time.perf_counter() - t0, mlp_p,
    )  # fmt: skip
