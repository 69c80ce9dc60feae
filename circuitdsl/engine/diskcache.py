"""Clean activations cached on disk between runs (issue 17): a second `check` of an edited file skips
the clean forward passes it already paid for.

One entry per clean batch (the rows the engine runs through the model at once). An entry is keyed by
everything its activations depend on:

- the model: its backend kind, a content digest of its config and weight files (remembered per
  path, size and mtime: backends/bridge.py `_dir_fingerprint`), device type and dtype, the torch /
  transformers / transformer_lens versions and the backends' source (backends/contract.py `_key`);
- the code: circuitdsl's version, the source of circuitdsl/backends, circuitdsl/models and this
  file, and the entry format;
- the batch: its token ids (so the dataset's and the ablation dataset's content, their layouts and
  the batch size) and each row's scored positions.

Anything that cannot change the activations (an example's id, the hypothesis, the metric) is not part
of the key, so editing the `.circuit` file keeps every entry. An entry holds the batch's activations
(logits excluded) and the logits at each row's scored positions, written atomically (atomic.py) with a
blake2b digest of its bytes; an entry that does not match its digest or does not load is a warning,
removed and recomputed, never used. The cache is bounded (least recently used entries go first).

Where: `$CIRCUITDSL_ACTIVATION_CACHE`, else `activations/` under the cache root (`$CIRCUITDSL_CACHE`,
else ~/.cache/circuitdsl). Budget: `$CIRCUITDSL_ACTIVATION_CACHE_MIB` (default 2048; 0 turns the cache
off). Off: `--no-cache` or `CIRCUITDSL_NO_CACHE=1`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from circuitdsl.backends.base import CleanCache

__all__ = [
    "ActivationCache",
    "clean_batch",
    "open_cache",
    "default_dir",
    "budget_bytes",
    "code_digest",
    "DIR_ENV",
    "MIB_ENV",
    "OFF_ENV",
    "DEFAULT_MIB",
]

DIR_ENV = "CIRCUITDSL_ACTIVATION_CACHE"
MIB_ENV = "CIRCUITDSL_ACTIVATION_CACHE_MIB"
OFF_ENV = "CIRCUITDSL_NO_CACHE"
DEFAULT_MIB = 2048
FORMAT = 1
MAGIC = b"CDSLACT1"
_DIGEST = 32
SUFFIX = ".act"


def default_dir() -> Path:
    env = os.environ.get(DIR_ENV)
    if env:
        return Path(env).expanduser()
    from circuitdsl.models.smollm2 import cache_root

    return cache_root() / "activations"


def budget_bytes() -> int:
    """The size budget in bytes ($CIRCUITDSL_ACTIVATION_CACHE_MIB, default 2048 MiB; a value that is not a
    number of MiB >= 0 is a warning and the default)."""
    raw = os.environ.get(MIB_ENV, "").strip()
    if not raw:
        return DEFAULT_MIB << 20
    try:
        mib = float(raw)
    except ValueError:
        mib = -1.0
    if not mib >= 0:
        _say(f"{MIB_ENV} must be a number of MiB >= 0, not {raw!r}; using {DEFAULT_MIB}")
        return DEFAULT_MIB << 20
    return int(mib * (1 << 20))


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """circuitdsl's version, the entry format and the source of the code that produces activations."""
    import circuitdsl

    pkg = Path(circuitdsl.__file__).resolve().parent
    h = hashlib.blake2b(digest_size=16)
    h.update(f"circuitdsl={circuitdsl.__version__}|format={FORMAT}".encode())
    files = sorted((*(pkg / "backends").glob("*.py"), *(pkg / "models").rglob("*.py"), Path(__file__).resolve()))
    for p in files:
        h.update(str(p.relative_to(pkg)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _say(msg: str) -> None:
    print(f"circuitdsl: warning: {msg}", file=sys.stderr, flush=True)


@dataclass
class ActivationCache:
    """The on-disk cache of one model's clean batches (`model` keys the model and the code)."""

    root: Path
    budget: int
    model: str
    warn: Callable[[str], None] = _say
    hits: int = 0
    misses: int = 0
    writes: int = 0
    corrupt: int = 0
    evicted: int = 0
    _write_failed: bool = False

    def key(self, tokens: torch.Tensor, positions: Sequence[Sequence[int]]) -> str:
        h = hashlib.blake2b(digest_size=20)
        t = tokens.detach().to("cpu", torch.int64).contiguous()
        h.update(f"{self.model}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
        h.update(repr([tuple(int(p) for p in ps) for ps in positions]).encode())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def get(self, key: str, n_rows: int, length: int, device: Any) -> tuple[CleanCache, list[torch.Tensor]] | None:
        """The entry's activations and scored logits on `device`; None when there is none or it is
        damaged (then it is removed, with a warning)."""
        p = self.path(key)
        try:
            with open(p, "rb") as f:
                head = f.read(len(MAGIC) + _DIGEST)
                payload = f.read()  # one copy of the entry in memory (torch.load reads it in place)
        except OSError:
            self.misses += 1
            return None
        try:
            if head[: len(MAGIC)] != MAGIC:
                raise ValueError("not an activation cache entry")
            if hashlib.blake2b(payload, digest_size=_DIGEST).digest() != head[len(MAGIC) :]:
                raise ValueError("its bytes do not match its digest (truncated or damaged)")
            part, scored = _decode(payload)
            if part.n != n_rows or part.embed.shape[1] != length or len(scored) != n_rows:
                raise ValueError("its shapes do not match the batch")
        except Exception as e:  # anything wrong with an entry: recompute, never trust it
            self.corrupt += 1
            self.misses += 1
            self.warn(f"activation cache entry {p} is damaged ({e}); removed, the activations are recomputed")
            p.unlink(missing_ok=True)
            return None
        try:
            os.utime(p)  # least recently used goes first
        except OSError:
            pass
        self.hits += 1
        dev = torch.device(device)
        if dev.type != "cpu":
            part = part.map(lambda t: t.to(dev))
            scored = [s.to(dev) for s in scored]
        return part, scored

    def put(self, key: str, part: CleanCache, scored: list[torch.Tensor]) -> None:
        payload = _encode(part, scored)
        if len(payload) + len(MAGIC) + _DIGEST > self.budget:
            return
        from circuitdsl.atomic import replacing

        digest = hashlib.blake2b(payload, digest_size=_DIGEST).digest()
        try:
            with replacing(self.path(key), keep_mode=False, parents=True) as tmp, open(tmp, "wb") as f:
                f.write(MAGIC)
                f.write(digest)
                f.write(payload)
        except OSError as e:
            if not self._write_failed:
                self._write_failed = True
                self.warn(f"cannot write the activation cache under {self.root}: {e.strerror or e}; running without it")
            return
        self.writes += 1
        self.evict(keep=key)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every entry, oldest first."""
        out = []
        for p in self.root.glob(f"*/*{SUFFIX}"):
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((st.st_mtime, st.st_size, p))
        return sorted(out)

    def evict(self, keep: str | None = None) -> None:
        """Remove least recently used entries until the cache fits its budget (and temporary files that
        interrupted writes left, after an hour)."""
        ents = self.entries()
        total = sum(s for _, s, _ in ents)
        for _, size, p in ents:
            if total <= self.budget:
                break
            if keep is not None and p.name == f"{keep}{SUFFIX}":
                continue
            p.unlink(missing_ok=True)
            total -= size
            self.evicted += 1
        old = time.time() - 3600
        for p in self.root.glob(f"*/.*{SUFFIX}.*.tmp"):
            try:
                if p.stat().st_mtime < old:
                    p.unlink(missing_ok=True)
            except OSError:
                pass


def _encode(part: CleanCache, scored: list[torch.Tensor]) -> memoryview:
    def cpu(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().to("cpu").contiguous()
        # torch.save writes a view's whole storage: copy a view of a larger one (a slice of a batch)
        return t if t.untyped_storage().nbytes() == t.nbytes else t.clone()

    d: dict[str, Any] = {
        "embed": cpu(part.embed),
        "resid_pre": [cpu(t) for t in part.resid_pre],
        "result": [cpu(t) for t in part.result],
        "resid_mid": [cpu(t) for t in part.resid_mid],
        "mlp_out": [cpu(t) for t in part.mlp_out],
        "resid_final": cpu(part.resid_final),
        "scored": [cpu(s) for s in scored],
    }
    if part.pos is not None:
        d["pos"] = cpu(part.pos)
    buf = io.BytesIO()
    torch.save(d, buf)
    return buf.getbuffer()


def _decode(payload: bytes) -> tuple[CleanCache, list[torch.Tensor]]:
    d = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)  # shares payload's buffer
    part = CleanCache(
        embed=d["embed"],
        pos=d.get("pos"),
        resid_pre=tuple(d["resid_pre"]),
        result=tuple(d["result"]),
        resid_mid=tuple(d["resid_mid"]),
        mlp_out=tuple(d["mlp_out"]),
        resid_final=d["resid_final"],
        logits=None,
    )
    return part, list(d["scored"])


def open_cache(backend: Any, *, enabled: bool = True, root: str | Path | None = None) -> ActivationCache | None:
    """The activation cache for `backend`'s model, or None: turned off (`enabled=False`, CIRCUITDSL_NO_CACHE,
    a budget of 0) or a model without a content fingerprint (one built in memory)."""
    if not enabled or os.environ.get(OFF_ENV, "").strip() not in ("", "0"):
        return None
    budget = budget_bytes()
    if budget <= 0:
        return None
    from circuitdsl.backends.contract import _key

    try:
        model = _key(backend)
    except (NotImplementedError, AttributeError, OSError):
        return None
    key = hashlib.blake2b(f"{model}|{code_digest()}".encode(), digest_size=16).hexdigest()
    return ActivationCache(Path(root) if root is not None else default_dir(), budget, key)


def _record_block_args(backend: Any, tokens: torch.Tensor) -> None:
    """A clean run also records, per sequence length, the arguments the model passes each block (rotary
    tables, masks: backends/base.py BlockArgs), without which the engine's block runs fall back to
    running the model from layer 0 (measured: a warm SmolLM2 check 2x slower than a cold one). A batch
    read from the cache records them with a forward pass of two of its rows (two, so that arguments that
    differ between rows are still found), once per length."""
    args = getattr(backend, "block_args", None)
    store = getattr(args, "store", None)
    if store is None or not hasattr(backend, "_forward") or not hasattr(backend, "_can_call_blocks"):
        return
    P = int(tokens.shape[1])
    layers = range(int(backend.shape.n_layers))
    if backend._can_call_blocks(P, layers) or all((L, P) in store for L in layers):
        return  # blocks callable alone (always, for the native backend), or recorded as not callable
    with torch.no_grad():
        backend._forward(tokens[:2])


def clean_batch(
    backend: Any, cache: ActivationCache | None, examples: Sequence[Any]
) -> tuple[CleanCache, list[torch.Tensor], bool]:
    """(clean activations without logits, the logits at each example's scored positions, whether the
    model ran) of one batch of same-layout examples: read from `cache` when it holds the batch, else a
    clean run of the backend (then written to `cache`)."""
    tokens = backend.tokens([e.tokens for e in examples])
    positions = [tuple(e.scored_positions) for e in examples]
    key = None
    if cache is not None:
        key = cache.key(tokens, positions)
        got = cache.get(key, len(examples), int(tokens.shape[1]), tokens.device)
        if got is not None:
            _record_block_args(backend, tokens)
            return got[0], got[1], False
    part = backend.clean_run(tokens)
    scored = [part.logits[k, list(ps)] for k, ps in enumerate(positions)]
    part = dataclasses.replace(part, logits=None)
    if cache is not None and key is not None:
        cache.put(key, part, scored)
    return part, scored, True
