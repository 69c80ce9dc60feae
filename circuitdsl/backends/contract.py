"""The model contract (SEMANTICS.md section 1): before anything is scored, check on a probe batch that
the graph circuitdsl computes with is the model's arithmetic.

On a probe batch, against the model's own forward pass with plain PyTorch hooks on its own modules
(`ModelBackend.reference()`: for a Hugging Face model, the model loaded afresh by transformers, no
transformer-lens code; for a native model, its own modules):

1. **decomposition** — what each layer adds to the residual stream equals the sum of its nodes'
   outputs plus biases (the remainder is the same vector at every position of every example), and the
   embeddings add up to the residual entering layer 0;
2. **recomposition** — the engine's own recomposition (embeddings, then block by block from node
   outputs: each layer alone from its port inputs, plus the biases) reproduces the model's residual
   after every layer and its logits; and the backend's unembedding of its final residual gives the
   model's logits (final norm, soft-caps, logit scales);
3. **intervention** — replacing one head's output through the engine (in each layer: the MLP of that
   layer and every later layer recomputed from their port inputs) gives the logits of the same
   replacement made inside the model's own forward pass by a hook on its attention output projection;
   and changing one head's query input changes no other head's output;
   (In models of more than 8 layers, the replacement is made in the first, middle and last layer:
   each costs a recomposition of the layers after it.)
4. **layer arguments** — every block run alone, as the engine runs it, reproduces that block in the
   model's forward pass (its own masks, sliding window, rotary table, soft-cap).

Tolerance: 1e-4 relative (error / largest magnitude of the compared quantity) in float32; check 1
compares a layer's write, the difference of two residuals that can be a thousand times larger (SmolLM2's
middle layers), so it also allows 16 float epsilons of the residual's own magnitude. Residuals
are compared up to each position's mean over d_model where the backend says its residual stream is
centred (`resid_gauge == "mean"`), logits up to a constant per position where its unembedding is
centred (`logit_gauge == "mean"`); every metric but `mse` is invariant to that constant.

The verdict is cached on disk per (weights and config, probe, backend code, library versions, device,
dtype): `cache_dir()/contract/<key>.json`. A model that fails is refused with diagnostic E540, naming
the check and the layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CONTRACT_VERSION", "TOLERANCE", "Failure", "Verdict", "verify", "require", "cache_dir", "contract_error"]

CONTRACT_VERSION = 1
TOLERANCE = 1e-4
PROBE_BATCH = 2
PROBE_LENGTH = 12
LOGIT_POSITIONS = 4
"""Logits are compared at the probe's last 4 positions (residuals at every position): the unembedding
costs more than a block per position on a 49k vocabulary."""
ROUNDING = 16
"""Check 1 allows this many float epsilons of the residual's magnitude on top of 1e-4 of the layer's write."""
CHECKS = {1: "decomposition", 2: "recomposition", 3: "intervention", 4: "layer arguments"}
PROBE = "the probe batch"


def cache_dir() -> Path:
    """`$CIRCUITDSL_CACHE`, else `~/.cache/circuitdsl` (the folder models/smollm2.py converts into)."""
    from circuitdsl.models.smollm2 import cache_root

    return cache_root()


@dataclass(frozen=True)
class Failure:
    check: int
    where: str
    """'layer 3', 'embeddings', 'unembedding', 'logits'."""
    error: float
    """Relative error (or, for row-constant checks, relative spread)."""
    what: str

    def describe(self) -> str:
        return f"check {self.check} ({CHECKS[self.check]}) failed at {self.where}: {self.what} (relative error {self.error:.2g} > {TOLERANCE:g})"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failures: tuple[Failure, ...]
    max_error: dict[str, float]
    """Per check name, the largest relative error seen."""
    seconds: float
    """Time the checks took when they ran (not when the verdict came from the cache)."""
    key: str
    probe: tuple[int, int]
    notes: tuple[str, ...] = ()
    """Known structural reasons for a failure (post-norms, norms across heads...)."""
    cached: bool = field(default=False, compare=False)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("cached")
        d["version"] = CONTRACT_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict) -> Verdict:
        return cls(
            passed=bool(d["passed"]),
            failures=tuple(Failure(**f) for f in d["failures"]),
            max_error={k: float(v) for k, v in d["max_error"].items()},
            seconds=float(d["seconds"]),
            key=str(d["key"]),
            probe=tuple(d["probe"]),
            notes=tuple(d.get("notes", ())),
            cached=True,
        )


def _code_hash() -> str:
    """The backends' own source: a change to how sites are computed re-verifies every model."""
    h = hashlib.blake2b(digest_size=8)
    here = Path(__file__).resolve().parent
    for p in sorted(here.glob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()


def _versions() -> str:
    import torch

    out = [f"torch={torch.__version__}"]
    for mod in ("transformers", "transformer_lens"):
        try:
            from importlib.metadata import version

            out.append(f"{mod}={version(mod.replace('_', '-'))}")
        except Exception:
            out.append(f"{mod}=?")
    return ",".join(out)


def _key(backend: Any) -> str:
    parts = [
        f"v{CONTRACT_VERSION}",
        backend.kind,
        backend.fingerprint(),
        _code_hash(),
        _versions(),
        str(backend.device.type),
        str(backend.dtype),
        f"{PROBE_BATCH}x{PROBE_LENGTH}",
        f"tol={TOLERANCE}",
    ]
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


def _probe(backend: Any):
    import torch

    vocab = int(backend.shape.vocab_size or backend.d_vocab_out)
    P = PROBE_LENGTH if backend.n_ctx is None else max(2, min(PROBE_LENGTH, int(backend.n_ctx)))
    gen = torch.Generator().manual_seed(1234)
    lo = min(10, vocab - 1)  # away from the special tokens most vocabularies start with
    return torch.randint(lo, vocab, (PROBE_BATCH, P), generator=gen).to(backend.device)


def verify(backend: Any, *, use_cache: bool = True) -> Verdict:
    """The contract's verdict for a loaded backend (from the cache when this model was checked before).
    `use_cache=False` runs the checks and leaves the cache alone (neither read nor written): tests that
    break a backend on purpose must not leave a verdict behind for the real one."""
    key = _key(backend)
    f = cache_dir() / "contract" / f"{key}.json"
    if use_cache:
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
            if d.get("version") == CONTRACT_VERSION and d.get("key") == key:
                return Verdict.from_json(d)
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            pass
    v = _run(backend, key)
    if not use_cache or any(f.where == PROBE for f in v.failures):
        return v  # a backend that could not run the probe may have hit a passing problem: not remembered
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(v.to_json(), indent=1), encoding="utf-8")
        os.replace(tmp, f)
    except OSError:
        pass  # a read-only cache costs a re-check next time, nothing else
    return v


def contract_error(backend: Any, verdict: Verdict):
    """The BackendError (E540) that refuses a model which failed the contract."""
    from circuitdsl.backends.base import BackendError

    first = verdict.failures[0]
    more = f" (and {len(verdict.failures) - 1} more)" if len(verdict.failures) > 1 else ""
    why = ("; " + "; ".join(verdict.notes)) if verdict.notes else ""
    return BackendError(
        f"model `{backend.name}` fails the model contract: {first.describe()}{more}{why}",
        "circuitdsl scores only models whose layers decompose into heads and MLPs as SEMANTICS.md section 1 "
        "defines (see docs/MODELS.md: supported families)",
        code="E540",
    )


def require(backend: Any) -> Verdict:
    """Verify `backend` (cached), record the verdict on it, and raise E540 if it failed."""
    v = backend.contract if getattr(backend, "contract", None) is not None else verify(backend)
    backend.contract = v
    if not v.passed:
        raise contract_error(backend, v)
    return v


# ---- the checks ------------------------------------------------------------------------------------
def _run(backend: Any, key: str) -> Verdict:
    import torch

    t0 = time.perf_counter()
    with torch.no_grad():
        ref = backend.reference()
        try:
            failures, worst = _checks(backend, ref)
        except Exception as e:  # a backend that cannot even run the probe fails the contract, with the reason
            msg = str(e).strip().splitlines()[0][:240] if str(e).strip() else ""
            failures, worst = (
                [Failure(2, PROBE, float("inf"), f"the backend cannot run the model: {type(e).__name__}: {msg}")],
                {},
            )
        finally:
            ref.close()
    failed = {f.check for f in failures}
    notes = tuple(why for check, why in backend.known_issues() if check in failed)
    return Verdict(
        not failures, tuple(failures), worst, time.perf_counter() - t0, key, (PROBE_BATCH, PROBE_LENGTH), notes
    )


def _checks(b: Any, ref: Any) -> tuple[list[Failure], dict[str, float]]:
    import torch

    toks = _probe(b)
    src = toks.flip(0)
    n, H, G = b.shape.n_layers, b.shape.n_heads, b.shape.n_kv_heads
    mean_gauge = b.resid_gauge == "mean"
    failures: list[Failure] = []
    worst: dict[str, float] = {}

    def g(x):  # the residual gauge
        x = x.double()
        return x - x.mean(-1, keepdim=True) if mean_gauge else x

    def lg(x):  # the logit gauge
        x = x.double()
        return x - x.mean(-1, keepdim=True) if b.logit_gauge == "mean" else x

    def rel(a, r) -> float:
        err = float((a - r).abs().max())
        scale = float(r.abs().max())
        return err / max(scale, 1e-6)

    def record(check: int, where: str, e: float, what: str) -> None:
        name = CHECKS[check]
        worst[name] = max(worst.get(name, 0.0), e)
        if not e <= TOLERANCE:  # NaN fails too
            failures.append(Failure(check, where, e, what))

    eps = float(torch.finfo(b.dtype).eps)
    ref_res, ref_logits = ref.layer_residuals(toks)
    K = LOGIT_POSITIONS
    ref_res = [r.to(b.device) for r in ref_res]
    ref_logits = ref_logits.to(b.device)
    c = b.clean_run(toks)
    mlp = b.shape.has_mlp

    def emb(cache):
        return cache.embed + cache.pos if cache.pos is not None else cache.embed

    # ---- 1: what each layer writes is its nodes' outputs plus constants ----------------------------
    record(
        1, "embeddings", rel(g(emb(c)), g(ref_res[0])), "the embeddings do not add up to the residual entering layer 0"
    )
    biases: list[
        tuple[torch.Tensor, torch.Tensor]
    ] = []  # per layer: (attention bias, MLP bias) in the backend's stream
    for L in range(n):
        heads = c.result[L].sum(dim=2)
        nodes = heads + (c.mlp_out[L] if mlp else 0)
        delta = g(ref_res[L + 1] - ref_res[L])
        rem = delta - g(nodes)
        # relative to what the layer writes, allowing the float rounding of the residual stream itself
        # (the delta is a difference of two residuals, which can be a thousand times larger)
        allowed = float(delta.abs().max()) + ROUNDING * eps * float(ref_res[L + 1].abs().max()) / TOLERANCE
        spread = float((rem - rem.mean(dim=(0, 1), keepdim=True)).abs().max()) / max(allowed, 1e-6)
        record(
            1,
            f"layer {L}",
            spread,
            "what the layer adds to the residual stream is not the sum of its heads' and MLP's outputs plus biases",
        )
        post = c.resid_pre[L + 1] if L + 1 < n else c.resid_final
        if mlp and not b.parallel:
            attn_b = (c.resid_mid[L] - c.resid_pre[L] - heads).double().mean(dim=(0, 1))
            mlp_b = (post - c.resid_mid[L] - c.mlp_out[L]).double().mean(dim=(0, 1))
        else:
            attn_b = (post - c.resid_pre[L] - nodes).double().mean(dim=(0, 1))
            mlp_b = torch.zeros_like(attn_b)
        biases.append((attn_b.to(c.embed.dtype), mlp_b.to(c.embed.dtype)))

    # ---- the engine's recomposition: each layer alone from its ports -------------------------------
    def layer_out(L: int, x: torch.Tensor, head_delta=None) -> torch.Tensor:
        q = x.unsqueeze(2).expand(-1, -1, H, -1)
        kv = x.unsqueeze(2).expand(-1, -1, G, -1)
        res, _ = b.run_layer(L, q, kv, kv, None)
        if head_delta is not None:
            res = res.clone()
            res[:, :, head_delta[0]] = head_delta[1]
        heads = res.sum(dim=2)
        ab, mb = biases[L]
        if not mlp:
            return x + heads + ab
        mid = x if b.parallel else x + heads + ab
        return x + heads + ab + b.run_mlp(L, mid) + mb

    x = emb(c)
    for L in range(n):
        x = layer_out(L, x)
        record(
            2,
            f"layer {L}",
            rel(g(x), g(ref_res[L + 1])),
            "the engine's block-by-block recomposition departs from the model's residual stream",
        )
    record(
        2,
        "logits",
        rel(lg(b.unembed(x[:, -K:])), lg(ref_logits)),
        "the engine's recomposition does not reproduce the model's logits",
    )
    record(
        2,
        "unembedding",
        rel(lg(b.unembed(c.resid_final[:, -K:])), lg(ref_logits)),
        "the backend's unembedding of the final residual (final norm, soft-cap, logit scale) is not the model's",
    )

    # ---- 3: one head replaced, through the engine and inside the model ------------------------------
    layers = range(n) if n <= 8 else sorted({0, n // 2, n - 1})  # each costs the layers after it
    for L in layers:
        h = L % H
        src_out = c.result[L][:, :, h].flip(0)  # the head's output on the other probe row
        x = c.resid_pre[L]
        x = layer_out(L, x, head_delta=(h, src_out))
        for M in range(L + 1, n):
            x = layer_out(M, x)
        mine = lg(b.unembed(x[:, -K:]))
        theirs = lg(ref.logits_with_head(toks, L, h, src).to(b.device))
        record(
            3,
            f"layer {L}",
            rel(mine, theirs),
            f"replacing head {L}.{h}'s output through the engine does not give the model's own logits with that replacement",
        )
        # heads are separate: another query input for head h moves no other head
        q = c.resid_pre[L].unsqueeze(2).expand(-1, -1, H, -1).clone()
        q[:, :, h] = c.resid_pre[L].flip(0)
        kv = c.resid_pre[L].unsqueeze(2).expand(-1, -1, G, -1)
        res, _ = b.run_layer(L, q, kv, kv, None)
        others = [k for k in range(H) if k != h]
        if others:
            record(
                3,
                f"layer {L}",
                rel(res[:, :, others], c.result[L][:, :, others]),
                f"changing head {L}.{h}'s query input changes other heads' outputs (a norm across heads?)",
            )

    # ---- 4: every block alone, with its own arguments, as in the forward pass -------------------------
    for L in range(n):
        x = c.resid_pre[L]
        res, _ = b.run_layer(
            L,
            x.unsqueeze(2).expand(-1, -1, H, -1),
            x.unsqueeze(2).expand(-1, -1, G, -1),
            x.unsqueeze(2).expand(-1, -1, G, -1),
            None,
        )
        record(
            4,
            f"layer {L}",
            rel(res, c.result[L]),
            "a block run alone does not reproduce its heads in the model's forward pass (masks, window, rotary, soft-cap)",
        )
        if mlp:
            record(
                4,
                f"layer {L}",
                rel(b.run_mlp(L, c.resid_mid[L]), c.mlp_out[L]),
                "the MLP run alone does not reproduce the model's",
            )
    return failures, worst
