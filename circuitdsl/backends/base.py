"""What the bridge and native backends share (`backends/protocol.py` is the interface).

A backend maps each `Site` of SEMANTICS.md section 1 to a place in its model's forward pass
(`_install`), runs the whole model (`_forward`) or one block alone with the arguments the model gave
that block (`_call_block`), and computes logits from a final residual (`unembed`). Everything else —
the clean cache, one layer from given port inputs, patching from a layer on — is built here from
those, so the engine never names a hook.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from circuitdsl.backends.protocol import Edit, Site, SiteKey
from circuitdsl.ir import ModelShape

if TYPE_CHECKING:
    from circuitdsl.backends.contract import Verdict

__all__ = [
    "Backend",
    "CleanCache",
    "BackendError",
    "TokenizerAdapter",
    "hooks",
    "BlockArgs",
    "Site",
    "COMPAT_NAMES",
    "install_tl_hook",
]


class BackendError(Exception):
    """A model that cannot be loaded or run; `hint` says what to do. `code` is the diagnostic code
    (E510 cannot be loaded; E540 failed the model contract)."""

    def __init__(self, message: str, hint: str = "", code: str = "E510"):
        super().__init__(message)
        self.hint = hint
        self.code = code


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
    `resid_final` are [B, P, D]. `resid_mid[L]` is the residual the MLP of layer L reads (Site.MLP_IN):
    after the heads of L in sequential blocks, the same tensor as `resid_pre[L]` in parallel blocks.
    `pos` is None for models without a learned position embedding; `mlp_out`/`resid_mid` are empty
    tuples for attention-only models."""

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

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> CleanCache:
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


# ---- transformer-lens hook points ------------------------------------------------------------------
_POINTS: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()


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
    """Add transformer-lens forward hooks (by hook name) for the duration of the block; always removed,
    also after an error.

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
            assert hp is not None  # (checked above)
            touched.append(hp)
            hp.add_hook(fn, dir="fwd")
        yield
    finally:
        for hp in touched:
            hp.remove_hooks("fwd", including_permanent=False)


COMPAT_NAMES = {
    Site.EMBED: "hook_embed",
    Site.POS: "hook_pos_embed",
    Site.RESID_PRE: "blocks.{L}.hook_resid_pre",
    Site.Q_INPUT: "blocks.{L}.hook_q_input",
    Site.K_INPUT: "blocks.{L}.hook_k_input",
    Site.V_INPUT: "blocks.{L}.hook_v_input",
    Site.RESULT: "blocks.{L}.attn.hook_result",
    Site.PATTERN: "blocks.{L}.attn.hook_pattern",
    Site.MLP_IN: "blocks.{L}.hook_resid_mid",  # on the bridge an alias of ln2.hook_in, which feeds the MLP only
    Site.MLP_OUT: "blocks.{L}.hook_mlp_out",
    Site.RESID_POST: "blocks.{L}.hook_resid_post",
    Site.FINAL_SCALE: "ln_final.hook_scale",
}
"""transformer-lens compatibility-mode hook names of each site (SEMANTICS.md section 1)."""


def install_tl_hook(backend: Any, name: str, site: Site, layer: int | None, fn: Edit) -> Callable[[], None]:
    """Add fn to the HookPoint `name` of backend.model; returns what removes exactly that hook."""
    hp = (_hook_points(backend.model) or {}).get(name)
    if hp is None:
        raise BackendError(
            f"model `{backend.name}` has no {site.value} at layer {layer} (`{name}`)", "is this model supported?"
        )
    handle = hp.add_hook(lambda x, hook: fn(x), dir="fwd")

    def undo() -> None:
        handle.hook.remove()
        hp.fwd_hooks = [h for h in hp.fwd_hooks if h is not handle]

    return undo


# ---- the arguments a model passes each of its blocks ---------------------------------------------
_DROP = ("past_key_values", "past_key_value", "layer_past", "cache", "output_attentions")


def _is_cache(v: Any) -> bool:
    return type(v).__name__.endswith("Cache")


class BlockArgs:
    """Per layer and sequence length, the arguments the model passed the block during a forward pass
    (rotary tables, attention masks — sliding windows differ per layer —, position ids), so that a
    block can be called alone exactly as the model calls it. Per-row tensors (the attention mask) are
    kept only when every row of the batch holds the same one (no padding): then they do not depend on
    the input. A (layer, length) whose arguments differ between rows is marked None (no direct call)."""

    def __init__(self, n_heads: int = 0) -> None:
        self.store: dict[tuple[int, int], Any] = {}
        self.n_heads = int(n_heads)
        """A tensor whose first dimension is batch x heads (Bloom's ALiBi biases) is per row too."""

    def record(self, layer: int, args: tuple, kwargs: dict) -> None:
        if not args or not torch.is_tensor(args[0]):
            return
        B, P = int(args[0].shape[0]), int(args[0].shape[1])

        def one(name, t):
            if _is_cache(t):
                return (None, False)
            if not torch.is_tensor(t):
                return (t, False)
            if (
                t.dim() > 0
                and B > 1
                and self.n_heads > 1
                and t.shape[0] == B * self.n_heads
                and name != "attention_mask"
            ):
                v = t.reshape(B, self.n_heads, *t.shape[1:])
                if not bool((v == v[:1]).all()):
                    raise ValueError(name)
                return (t[: self.n_heads].detach().clone(), self.n_heads)
            batched = name == "attention_mask" or (B > 1 and t.dim() > 0 and t.shape[0] == B)
            if batched and t.shape[0] > 1:
                if not bool((t == t[:1]).all()):
                    raise ValueError(name)
                t = t[:1]
            return (t.detach().clone(), batched)

        def val(name, v):
            return tuple(one(name, x) for x in v) if isinstance(v, tuple) else one(name, v)

        try:
            pos = tuple(val(f"arg{i}", v) for i, v in enumerate(args[1:], 1))
            kept = {k: val(k, v) for k, v in kwargs.items() if k not in _DROP}
            kept.update({k: (None, False) for k in kwargs if k in _DROP})
        except ValueError:
            self.store[(layer, P)] = None
            return
        if (layer, P) not in self.store or self.store[(layer, P)] is not None:
            self.store[(layer, P)] = (pos, kept)

    def call_args(self, layer: int, P: int, R: int) -> tuple[tuple, dict] | None:
        """(positional args after the hidden states, keyword args) to call block `layer` on R rows of
        length P; None when not recorded (or rows differed)."""
        kept = self.store.get((layer, P))
        if kept is None:
            return None
        pos, kw = kept

        def one(x):
            t, batched = x
            if not torch.is_tensor(t) or not batched:
                return t
            if batched is True:
                return t.expand(R, *t.shape[1:])
            return t.repeat(R, *([1] * (t.dim() - 1)))  # [heads, ...] per row -> [R * heads, ...]

        def val(v):
            return tuple(one(x) for x in v) if isinstance(v, tuple) and v and isinstance(v[0], tuple) else one(v)

        out = {k: val(v) for k, v in kw.items()}
        if "use_cache" in out:
            out["use_cache"] = False
        return tuple(val(v) for v in pos), out

    def has(self, P: int, layers: Iterable[int]) -> bool:
        return all(self.store.get((L, P)) is not None for L in layers)

    def clear(self) -> None:
        self.store.clear()


class _Stop(Exception):
    """Raised by a hook to end a forward pass once what it needed has been read."""


def _setter(value: torch.Tensor) -> Edit:
    def fn(x: torch.Tensor) -> torch.Tensor:
        v = value.to(device=x.device, dtype=x.dtype)
        return v.expand_as(x) if v.shape != x.shape else v

    return fn


class Backend:
    """Shared implementation of `ModelBackend`. Subclasses define `_install`, `_forward`,
    `_call_block`, `unembed` and the model-specific properties."""

    kind = "base"

    def __init__(
        self,
        name: str,
        model: Any,
        shape: ModelShape,
        d_vocab_out: int,
        *,
        tokenizer: Any = None,
        vocab_strings: tuple[str, ...] | None = None,
    ):
        self.name = name
        self.model = model
        self.shape = shape
        self.d_vocab_out = int(d_vocab_out)
        self.tokenizer = tokenizer
        self.vocab_strings = vocab_strings
        self.block_args = BlockArgs(shape.n_heads)
        self.contract: Verdict | None = None
        """The model contract's verdict (`backends.contract.Verdict`), set by the loader."""
        self._extra: dict = {}
        """Switches for tests (`mlp_direct`: False runs MLP rows through the block)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.shape})"

    # ---- properties ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except (StopIteration, AttributeError):
            return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        try:
            return next(self.model.parameters()).dtype
        except (StopIteration, AttributeError):
            return torch.float32

    @property
    def has_pos(self) -> bool:
        return self.shape.pos_embed == "learned"

    @property
    def parallel(self) -> bool:
        return bool(self.shape.parallel_attn_mlp)

    # (properties, not attributes, so that a backend may compute them; see protocol.ModelBackend)
    @property
    def n_ctx(self) -> int | None:
        return None

    @property
    def causal(self) -> bool:
        """Whether a position attends only to itself and earlier positions."""
        return True

    @property
    def final_norm(self) -> str:
        return "none"

    @property
    def resid_gauge(self) -> str:
        return "exact"

    @property
    def logit_gauge(self) -> str:
        return "exact"

    def hook_name(self, site: Site, layer: int | None) -> str:
        """The transformer-lens hook name of a site (for tests and references outside the library)."""
        return COMPAT_NAMES[site].format(L=layer)

    # ---- what subclasses provide ---------------------------------------------------------------
    def _install(self, site: Site, layer: int | None, fn: Edit) -> Callable[[], None]:
        """Attach fn at (site, layer) for the next passes; returns the function that removes it."""
        raise NotImplementedError

    def _forward(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _call_block(self, layer: int, resid: torch.Tensor) -> torch.Tensor | None:
        """The residual leaving block `layer` when `resid` enters it, the block run alone (hooks
        inside it fire); None when it cannot be called alone for this length."""
        raise NotImplementedError

    def _can_call_blocks(self, P: int, layers: Iterable[int]) -> bool:
        """Whether `_call_block` can run these layers alone on inputs of length P."""
        return self.block_args.has(P, layers)

    def _fallback_from(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        """Logits of a full pass that starts at `layer` with `resid` (when blocks cannot be called alone)."""
        raise NotImplementedError

    def unembed(self, resid_final: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---- hooks --------------------------------------------------------------------------------
    @contextmanager
    def hooked(self, items: Iterable[tuple[SiteKey, Edit]]) -> Iterator[None]:
        """Attach edits/captures for the duration of the block; always removed, also after an error."""
        undo: list[Callable[[], None]] = []
        try:
            for (site, layer), fn in items:
                undo.append(self._install(site, layer, fn))
            yield
        finally:
            for u in reversed(undo):
                u()

    # ---- computation ---------------------------------------------------------------------------
    def tokens(self, rows) -> torch.Tensor:
        return torch.tensor([list(r) for r in rows], dtype=torch.long, device=self.device)

    @torch.no_grad()
    def run(
        self, tokens: torch.Tensor, *, capture: Iterable[SiteKey] = (), edits: Mapping[SiteKey, Edit] | None = None
    ) -> tuple[torch.Tensor, dict]:
        got: dict = {}

        def grab(key):
            def fn(x):
                got[key] = x.detach().clone()
                return None

            return fn

        items = list((edits or {}).items()) + [(k, grab(k)) for k in dict.fromkeys(capture)]
        with self.hooked(items):
            logits = self._forward(tokens)
        missing = [k for k in dict.fromkeys(capture) if k not in got]
        if missing:
            raise BackendError(
                f"model `{self.name}`: the forward pass did not reach {missing[0][0].value} of layer {missing[0][1]}",
                "is this model supported?",
            )
        return logits, got

    @torch.no_grad()
    def clean_run(self, tokens: torch.Tensor) -> CleanCache:
        """One clean forward pass, keeping every sender's output and the residual at every port."""
        n = self.shape.n_layers
        mlp = self.shape.has_mlp
        cap: list[SiteKey] = [(Site.EMBED, None)]
        if self.has_pos:
            cap.append((Site.POS, None))
        for L in range(n):
            cap += [(Site.RESID_PRE, L), (Site.RESULT, L)]
            if mlp:
                cap += ([] if self.parallel else [(Site.MLP_IN, L)]) + [(Site.MLP_OUT, L)]
        cap.append((Site.RESID_POST, n - 1))
        logits, got = self.run(tokens, capture=cap)
        return CleanCache(
            embed=got[(Site.EMBED, None)],
            pos=got.get((Site.POS, None)),
            resid_pre=tuple(got[(Site.RESID_PRE, L)] for L in range(n)),
            result=tuple(got[(Site.RESULT, L)] for L in range(n)),
            # parallel blocks: the MLP reads the layer's input (the same tensor, stored once)
            resid_mid=tuple(got[(Site.RESID_PRE if self.parallel else Site.MLP_IN, L)] for L in range(n))
            if mlp
            else (),
            mlp_out=tuple(got[(Site.MLP_OUT, L)] for L in range(n)) if mlp else (),
            resid_final=got[(Site.RESID_POST, n - 1)],
            logits=logits.detach(),
        )

    def _block(self, layer: int, resid: torch.Tensor) -> None:
        """Run block `layer` on `resid` (alone when possible), for the hooks inside it."""
        if self._call_block(layer, resid) is None:
            self._fallback_block(layer, resid)

    def _fallback_block(self, layer: int, resid: torch.Tensor) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def run_layer(
        self, layer: int, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor, mlp_in: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run only block `layer` with its ports set: q_in [R,P,H,D], k_in/v_in [R,P,G,D],
        mlp_in [R,P,D] or None. Returns (Site.RESULT [R,P,H,D], Site.MLP_OUT [R,P,D] or None)."""
        got: dict[str, torch.Tensor] = {}

        def grab(x):
            got["result"] = x.detach().clone()
            raise _Stop()

        items = [
            ((Site.Q_INPUT, layer), _setter(q_in)),
            ((Site.K_INPUT, layer), _setter(k_in)),
            ((Site.V_INPUT, layer), _setter(v_in)),
            ((Site.RESULT, layer), grab),
        ]
        try:
            with self.hooked(items):
                self._block(layer, q_in[:, :, 0])
        except _Stop:
            pass
        mlp = self.run_mlp(layer, mlp_in) if mlp_in is not None and self.shape.has_mlp else None
        return got["result"], mlp

    @torch.no_grad()
    def run_mlp(self, layer: int, mlp_in: torch.Tensor) -> torch.Tensor:
        """Site.MLP_OUT [R,P,D] of block `layer` when its MLP input (Site.MLP_IN) is mlp_in [R,P,D]."""
        fast = self._mlp_direct(layer, mlp_in) if self._extra.get("mlp_direct", True) else None
        if fast is not None:
            return fast
        return self._mlp_by_block(layer, mlp_in)

    def _mlp_direct(self, layer: int, mlp_in: torch.Tensor) -> torch.Tensor | None:
        return None

    def _mlp_by_block(self, layer: int, mlp_in: torch.Tensor) -> torch.Tensor:
        """The MLP output of a block run whose MLP input is replaced (heads' outputs discarded)."""
        got: dict[str, torch.Tensor] = {}

        def grab(x):
            got["mlp"] = x.detach().clone()
            raise _Stop()

        resid = mlp_in
        try:
            with self.hooked([((Site.MLP_IN, layer), _setter(mlp_in)), ((Site.MLP_OUT, layer), grab)]):
                self._block(layer, resid)
        except _Stop:
            pass
        return got["mlp"]

    @torch.no_grad()
    def run_from(
        self,
        layer: int,
        resid: torch.Tensor,
        *,
        edits: Mapping[SiteKey, Edit] | None = None,
        positions: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Logits ([R, len(positions), V] when positions are given) of the run whose residual entering
        `layer` is `resid` [R, P, D]: blocks layer.. are called alone with the arguments recorded for
        this length (layers before `layer` do not run), then the unembedding at `positions` only."""
        n = self.shape.n_layers
        with self.hooked(list((edits or {}).items())):
            if self._can_call_blocks(int(resid.shape[1]), range(layer, n)):
                x = resid
                for L in range(layer, n):
                    y = self._call_block(L, x)
                    assert y is not None  # (_can_call_blocks)
                    x = y
                if positions is not None:
                    x = x[:, list(positions)]
                return self.unembed(x)
            logits = self._fallback_from(layer, resid)
        return logits if positions is None else logits[:, list(positions)]

    def grad_run(
        self,
        tokens: torch.Tensor,
        objective: Callable[[torch.Tensor], torch.Tensor],
        *,
        grads: Iterable[SiteKey],
        capture: Iterable[SiteKey] = (),
        edits: Mapping[SiteKey, Edit] | None = None,
    ) -> tuple[float, dict, dict]:
        """`ModelBackend.grad_run`: a forward pass with autograd on, each site of `grads` exposed as a
        leaf (activation + zeros that require grad, after any edit there), then torch.autograd.grad of
        objective(logits) with respect to those leaves only (no parameter gradient is computed)."""
        edits = dict(edits or {})
        grads = list(dict.fromkeys(grads))
        capture = list(dict.fromkeys(capture))
        leaves: dict = {}
        got: dict = {}

        def leaf(key, prior):
            def fn(x):
                if prior is not None:
                    y = prior(x)
                    x = x if y is None else y
                if key in leaves:
                    raise BackendError(
                        f"model `{self.name}`: {key[0].value} of layer {key[1]} was reached twice in one pass"
                    )
                z = torch.zeros_like(x, requires_grad=True)
                leaves[key] = z
                return x + z

            return fn

        def grab(key, prior):
            def fn(x):
                if prior is not None:
                    y = prior(x)
                    x = x if y is None else y
                got[key] = x.detach().clone()
                return x if prior is not None else None

            return fn

        items = []
        for k, f in edits.items():
            if k not in grads and k not in capture:
                items.append((k, f))
        for k in capture:
            if k not in grads:
                items.append((k, grab(k, edits.get(k))))
        for k in grads:
            fn = leaf(k, edits.get(k))
            if k in capture:
                inner = fn

                def fn(x, inner=inner, k=k):  # capture what the site holds after the edit (the leaf adds zeros)
                    y = inner(x)
                    got[k] = y.detach().clone()
                    return y

            items.append((k, fn))
        with torch.enable_grad(), self.hooked(items):
            logits = self._forward(tokens)
            value = objective(logits)
        missing = [k for k in grads if k not in leaves] + [k for k in capture if k not in got]
        if missing:
            raise BackendError(
                f"model `{self.name}`: the forward pass did not reach {missing[0][0].value} of layer {missing[0][1]}",
                "is this model supported?",
            )
        if not (torch.is_tensor(value) and value.dim() == 0 and value.requires_grad):
            raise BackendError("grad_run: the objective must be a scalar tensor that depends on the logits")
        keys = list(leaves)
        gs = torch.autograd.grad(value, [leaves[k] for k in keys], allow_unused=True)
        out = {k: (torch.zeros_like(leaves[k]) if g is None else g.detach()) for k, g in zip(keys, gs)}
        return float(value.detach()), out, got

    # ---- model-specific reads ----------------------------------------------------------------
    def unembed_matrix(self) -> torch.Tensor:
        raise NotImplementedError

    def known_issues(self) -> list[tuple[int, str]]:
        """(check, reason): what is known, from the model's structure, to break SEMANTICS.md section 1's
        graph; the contract's diagnostic quotes a reason when its check failed."""
        return []

    def reference(self):
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError
