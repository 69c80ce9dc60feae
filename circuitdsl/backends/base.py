"""One small interface between the engine and a transformer-lens model.

The engine never names a hook: it asks the backend for clean activations (`clean_run`), for one
layer recomputed from given port inputs (`run_layer`), and for logits from a final residual
(`unembed`). Hook names follow transformer-lens' compatibility mode (SEMANTICS.md section 1).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from circuitdsl.ir import ModelShape

__all__ = ["Backend", "CleanCache", "BackendError", "TokenizerAdapter", "hooks", "keep_block_kwargs", "block_call_kwargs",
           "recording_block_kwargs", "run_blocks"]


class BackendError(Exception):
    """A model that cannot be loaded or run; `hint` says what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class TokenizerAdapter:
    """`encode(text) -> ids` without BOS, `decode(ids) -> text`."""

    def __init__(self, tok: Any):
        self._tok = tok

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids) -> str:
        return self._tok.decode(list(ids))


@dataclass(frozen=True)
class CleanCache:
    """Clean activations of a batch of same-layout examples (float tensors, first dim = example).

    `result[L]` is [B, P, H, D]; `resid_pre[L]`, `resid_mid[L]`, `mlp_out[L]`, `embed`, `pos`,
    `resid_final` are [B, P, D]. `pos` is None for models without a learned position embedding;
    `mlp_out`/`resid_mid` are empty tuples for attention-only models."""

    embed: torch.Tensor
    pos: torch.Tensor | None
    resid_pre: tuple[torch.Tensor, ...]
    result: tuple[torch.Tensor, ...]
    resid_mid: tuple[torch.Tensor, ...]
    mlp_out: tuple[torch.Tensor, ...]
    resid_final: torch.Tensor
    logits: torch.Tensor | None
    """[B, P, V] clean logits; None where the holder kept only what it needs of them (the engine
    keeps the scored positions only)."""

    @property
    def n(self) -> int:
        return int(self.embed.shape[0])  # also for the engine's spilled fields (engine/spill.py)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "CleanCache":
        return CleanCache(
            embed=fn(self.embed),
            pos=None if self.pos is None else fn(self.pos),
            resid_pre=tuple(fn(t) for t in self.resid_pre),
            result=tuple(fn(t) for t in self.result),
            resid_mid=tuple(fn(t) for t in self.resid_mid),
            mlp_out=tuple(fn(t) for t in self.mlp_out),
            resid_final=fn(self.resid_final),
            logits=None if self.logits is None else fn(self.logits),
        )


_POINTS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _hook_points(model: Any) -> dict | None:
    """name -> HookPoint (aliases included), read once per model; None if the model has no hook_dict."""
    try:
        got = _POINTS.get(model)
        if got is None:
            got = _POINTS[model] = dict(model.hook_dict)
        return got
    except (AttributeError, TypeError):
        return None


@contextmanager
def hooks(model: Any, fwd_hooks: list[tuple[str, Callable]]) -> Iterator[None]:
    """Add forward hooks for the duration of the block; always removed, also after an error.

    The hooks are added to the named HookPoints directly and only those points are cleared on exit
    (`model.reset_hooks()` walks every hook point of the model: ~50 ms on the SmolLM2 bridge, more than
    a single-block run). Names the model's `hook_dict` does not know go through `model.add_hook`, and
    then the whole model is reset."""
    points = _hook_points(model)
    resolved = [(points.get(name), fn) for name, fn in fwd_hooks] if points is not None else None
    if resolved is None or any(hp is None for hp, _ in resolved):
        try:
            for name, fn in fwd_hooks:
                model.add_hook(name, fn)
            yield
        finally:
            model.reset_hooks(including_permanent=False)
        return
    touched: list[Any] = []
    try:
        for hp, fn in resolved:
            touched.append(hp)
            hp.add_hook(fn, dir="fwd")
        yield
    finally:
        for hp in touched:
            hp.remove_hooks("fwd", including_permanent=False)


_DROP = ("past_key_values", "past_key_value", "use_cache", "output_attentions")


def keep_block_kwargs(store: dict, args, kwargs) -> None:
    """Body of a forward pre-hook (with_kwargs) on a bridge's block 0 during a clean run: record in
    `store`, per sequence length, the keyword arguments every block receives (rotary embeddings,
    attention mask, position ids). transformer-lens 4.3.0's forward(start_at_layer=L) still runs blocks
    0..L-1, so code that runs only some blocks calls them directly with these. Per-row tensors (the
    attention mask) are kept only when every row of the batch has the same one (no padding): then the
    value does not depend on the input. A length whose arguments vary between rows is marked None."""
    if not args or not torch.is_tensor(args[0]):
        return
    B, P = int(args[0].shape[0]), int(args[0].shape[1])

    def one(name, t):
        if not torch.is_tensor(t):
            return (t, False)
        batched = name == "attention_mask" or (B > 1 and t.dim() > 0 and t.shape[0] == B)
        if batched and t.shape[0] > 1:
            if not bool((t == t[:1]).all()):
                raise ValueError(name)
            t = t[:1]
        return (t.detach().clone(), batched)

    try:
        kept = {}
        for k, v in kwargs.items():
            if k in _DROP:
                continue
            kept[k] = tuple(one(k, x) for x in v) if isinstance(v, tuple) else one(k, v)
    except ValueError:
        store[P] = None
        return
    if store.get(P, kept) is not None:
        store[P] = kept


def block_call_kwargs(store: dict, P: int, R: int) -> dict | None:
    """Keyword arguments to call a bridge block on R rows of length P (None: not recorded, or rows differed)."""
    kept = store.get(P)
    if kept is None:
        return None

    def val(x):
        t, batched = x
        return t.expand(R, *t.shape[1:]) if batched and torch.is_tensor(t) else t

    out = {k: tuple(val(x) for x in v) if isinstance(v, tuple) and v and isinstance(v[0], tuple) else val(v) for k, v in kept.items()}
    out["use_cache"] = False
    return out


@contextmanager
def recording_block_kwargs(model: Any, store: dict) -> Iterator[None]:
    """Record block keyword arguments into `store` during the forward passes inside the block."""
    handle = model.blocks[0].register_forward_pre_hook(lambda m, a, kw: keep_block_kwargs(store, a, kw), with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def run_blocks(model: Any, resid: torch.Tensor, start: int, store: dict, positions: list[int] | None = None) -> torch.Tensor | None:
    """A bridge's logits from the residual `resid` [R, P, D] entering block `start`: blocks start.. called
    directly (hooks inside them fire), then the final norm and unembedding, at `positions` only when
    given ([R, len(positions), V]). None when the block keyword arguments for this length were not
    recorded (the caller falls back to a forward pass)."""
    kw = block_call_kwargs(store, int(resid.shape[1]), int(resid.shape[0]))
    if kw is None:
        return None
    x = resid
    for blk in model.blocks[start:]:
        out = blk(x, **kw)
        x = out[0] if isinstance(out, tuple) else out
    if positions is not None:
        x = x[:, positions]
    return model.unembed(model.ln_final(x))


class _Stop(Exception):
    pass


@dataclass
class Backend:
    """A loaded model. `kind` is 'native' or 'bridge'."""

    name: str
    kind: str
    model: Any
    shape: ModelShape
    d_vocab_out: int
    tokenizer: TokenizerAdapter | None = None
    device: str = "cpu"
    vocab_strings: tuple[str, ...] | None = None
    _extra: dict = field(default_factory=dict, repr=False)

    # ---- hook names (compatibility mode) ---------------------------------------------------
    @staticmethod
    def hook_q_input(layer: int) -> str:
        return f"blocks.{layer}.hook_q_input"

    @staticmethod
    def hook_k_input(layer: int) -> str:
        return f"blocks.{layer}.hook_k_input"

    @staticmethod
    def hook_v_input(layer: int) -> str:
        return f"blocks.{layer}.hook_v_input"

    @staticmethod
    def hook_result(layer: int) -> str:
        return f"blocks.{layer}.attn.hook_result"

    @staticmethod
    def hook_mlp_in(layer: int) -> str:
        # native: hook_resid_mid feeds the MLP (and resid_post); bridge: hook_resid_mid is an alias of
        # ln2.hook_in, which feeds the MLP only. Either way replacing it sets the MLP's input.
        return f"blocks.{layer}.hook_resid_mid"

    @staticmethod
    def hook_mlp_out(layer: int) -> str:
        return f"blocks.{layer}.hook_mlp_out"

    @staticmethod
    def hook_resid_pre(layer: int) -> str:
        return f"blocks.{layer}.hook_resid_pre"

    def hook_final_resid(self) -> str:
        return f"blocks.{self.shape.n_layers - 1}.hook_resid_post"

    @property
    def has_pos(self) -> bool:
        return self.shape.pos_embed == "learned"

    # ---- computation ---------------------------------------------------------------------------
    def tokens(self, rows) -> torch.Tensor:
        return torch.tensor([list(r) for r in rows], dtype=torch.long, device=self.device)

    @torch.no_grad()
    def clean_run(self, tokens: torch.Tensor) -> CleanCache:
        """One clean forward pass, keeping every sender's output and the residual at every port."""
        n = self.shape.n_layers
        names = ["hook_embed"] + (["hook_pos_embed"] if self.has_pos else [])
        for L in range(n):
            names += [self.hook_resid_pre(L), self.hook_result(L)]
            if self.shape.has_mlp:
                names += [self.hook_resid_mid(L), self.hook_mlp_out(L)]
        names.append(self.hook_final_resid())
        got: dict[str, torch.Tensor] = {}

        def capture(key: str):
            def fn(x, hook):
                got[key] = x.detach().clone()
                return None

            return fn

        # on the bridge, keep the keyword arguments it passes its blocks (rotary embeddings, attention
        # mask) for this sequence length, so that run_layer can call one block directly
        recording = recording_block_kwargs(self.model, self._extra.setdefault("block_kwargs", {})) if self.kind == "bridge" else nullcontext()
        with recording, hooks(self.model, [(k, capture(k)) for k in names]):
            logits = self.model(tokens)
        missing = [k for k in names if k not in got]
        if missing:
            raise BackendError(f"the model did not run hooks {missing[:3]}", "is this model supported?")
        return CleanCache(
            embed=got["hook_embed"],
            pos=got.get("hook_pos_embed"),
            resid_pre=tuple(got[self.hook_resid_pre(L)] for L in range(n)),
            result=tuple(got[self.hook_result(L)] for L in range(n)),
            resid_mid=tuple(got[self.hook_resid_mid(L)] for L in range(n)) if self.shape.has_mlp else (),
            mlp_out=tuple(got[self.hook_mlp_out(L)] for L in range(n)) if self.shape.has_mlp else (),
            resid_final=got[self.hook_final_resid()],
            logits=logits.detach(),
        )

    @staticmethod
    def hook_resid_mid(layer: int) -> str:
        return f"blocks.{layer}.hook_resid_mid"

    # ---- calling one bridge block directly -------------------------------------------------------
    def _block_call_kwargs(self, P: int, R: int) -> dict | None:
        return block_call_kwargs(self._extra.get("block_kwargs", {}), P, R)

    @torch.no_grad()
    def run_layer(
        self,
        layer: int,
        q_in: torch.Tensor,
        k_in: torch.Tensor,
        v_in: torch.Tensor,
        mlp_in: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run only block `layer` with its ports set: q_in [R,P,H,D], k_in/v_in [R,P,G,D],
        mlp_in [R,P,D] or None. Returns (hook_result [R,P,H,D], hook_mlp_out [R,P,D] or None)."""
        got: dict[str, torch.Tensor] = {}
        want_mlp = mlp_in is not None and self.shape.has_mlp

        def setter(value):
            def fn(x, hook):
                return value.to(x.dtype).expand_as(x) if value.shape != x.shape else value.to(x.dtype)

            return fn

        def grab(key, stop):
            def fn(x, hook):
                got[key] = x.detach().clone()
                if stop:
                    raise _Stop()
                return None

            return fn

        fh = [
            (self.hook_q_input(layer), setter(q_in)),
            (self.hook_k_input(layer), setter(k_in)),
            (self.hook_v_input(layer), setter(v_in)),
            (self.hook_result(layer), grab("result", not want_mlp)),
        ]
        if want_mlp:
            fh += [(self.hook_mlp_in(layer), setter(mlp_in)), (self.hook_mlp_out(layer), grab("mlp", True))]
        resid = q_in[:, :, 0]
        direct = self._block_call_kwargs(int(resid.shape[1]), int(resid.shape[0])) if self.kind == "bridge" else None
        try:
            with hooks(self.model, fh):
                if direct is not None:
                    # one block, called as the bridge calls it (transformer-lens 4.3.0's
                    # forward(start_at_layer=L) would still run blocks 0..L-1 internally)
                    self.model.blocks[layer](resid, **direct)
                else:
                    self.model(resid, start_at_layer=layer, stop_at_layer=layer + 1)
        except _Stop:
            pass
        return got["result"], got.get("mlp")

    @torch.no_grad()
    def run_mlp(self, layer: int, mlp_in: torch.Tensor) -> torch.Tensor:
        """hook_mlp_out [R,P,D] of block `layer` when its MLP input (hook_resid_mid) is mlp_in [R,P,D].

        On the bridge the block's MLP norm and MLP are called directly (the modules the block calls, on
        the tensor its hook_resid_mid would hold): the attention is not run. Elsewhere, a block run."""
        if self.kind == "bridge" and self._extra.get("mlp_direct", True):
            blk = self.model.blocks[layer]
            ln2, mlp = getattr(blk, "ln2", None), getattr(blk, "mlp", None)
            if ln2 is not None and mlp is not None:
                got: dict[str, torch.Tensor] = {}

                def grab(x, hook):
                    got["mlp"] = x.detach().clone()
                    return None

                with hooks(self.model, [(self.hook_mlp_out(layer), grab)]):
                    mlp(ln2(mlp_in))
                if "mlp" in got:
                    return got["mlp"]
        x = mlp_in.unsqueeze(2)
        H, G = self.shape.n_heads, self.shape.n_kv_heads
        _, out = self.run_layer(layer, x.expand(-1, -1, H, -1), x.expand(-1, -1, G, -1), x.expand(-1, -1, G, -1), mlp_in)
        return out

    @torch.no_grad()
    def unembed(self, resid_final: torch.Tensor) -> torch.Tensor:
        """Logits from final residuals [R, P, D] (final norm, then unembedding)."""
        return self._extra["unembed"](resid_final)
