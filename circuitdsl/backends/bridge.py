"""Hugging Face models through transformer-lens 4.3's TransformerBridge (MODELS.md), in compatibility
mode with per-head results and split q/k/v inputs.

Where transformer-lens gives no per-head output or split inputs for a family (its plain
`AttentionBridge`: GPT-J, GPT-Neo, OPT), the backend computes them itself with PyTorch hooks on the
attention's own projections: a head's output is its slice of the output projection's input (the
attention pattern applied to the values) times its slice of W_O; a head's query, key and value inputs
are the block's input through the block's first norm and that head's slice of W_Q, W_K, W_V. In
parallel blocks whose MLP shares the attention's norm (GPT-J, Phi), the MLP's input is the block's
input through that norm, set at the MLP's own input.

Blocks are called alone with the arguments the model passed each of them during the last forward pass
of the same length (`BlockArgs`): masks differ per layer in models with sliding-window layers.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from circuitdsl.backends.base import COMPAT_NAMES, Backend, BackendError, TokenizerAdapter, install_tl_hook
from circuitdsl.backends.protocol import Edit, Site
from circuitdsl.models.shapes import shape_from_config

__all__ = ["BridgeBackend", "load_bridge", "HFReference"]

_HEAD_SITES = (Site.RESULT, Site.Q_INPUT, Site.K_INPUT, Site.V_INPUT)


def _linear_weight(mod: Any) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """(weight, bias, is [in, out]) of an nn.Linear or a HF Conv1D."""
    return mod.weight, getattr(mod, "bias", None), type(mod).__name__ == "Conv1D"


class BridgeBackend(Backend):
    kind = "bridge"

    def __init__(self, name: str, model: Any, model_dir: Path, hf_config: dict):
        shape = shape_from_config(hf_config)
        tok = getattr(model, "tokenizer", None)
        super().__init__(
            name, model, shape, int(model.cfg.d_vocab_out), tokenizer=TokenizerAdapter(tok) if tok is not None else None
        )
        self.model_dir = Path(model_dir)
        self.hf_config = hf_config
        self.virtual_attn = False
        """True where transformer-lens gives no per-head result / split inputs: computed here."""
        blk0 = model.blocks[0]
        subs = getattr(blk0, "submodules", {}) or {}
        self._has_ln2 = "ln2" in subs
        self._virtual: dict[tuple[Site, int], list[Edit]] = {}
        self._virtual_undo: dict[tuple[Site, int], Callable[[], None]] = {}
        self._state: dict = {}

    # ---- properties --------------------------------------------------------------------------
    @property
    def n_ctx(self) -> int | None:
        if self.shape.pos_embed != "learned":
            return None
        for k in ("n_positions", "max_position_embeddings", "n_ctx"):
            if self.hf_config.get(k):
                return int(self.hf_config[k])
        return None

    @property
    def final_norm(self) -> str:
        t = str(getattr(self.model.cfg, "normalization_type", "") or "")
        if getattr(self.model, "ln_final", None) is None or not t:
            return "none"
        return "rmsnorm" if t.upper().startswith("RMS") else "layernorm"

    @property
    def resid_gauge(self) -> str:
        # transformer-lens centres the writing weights of LayerNorm models (every reader removes the mean)
        return "mean" if str(getattr(self.model.cfg, "normalization_type", "")) in ("LN", "LNPre") else "exact"

    @property
    def logit_gauge(self) -> str:
        return "mean"  # compatibility mode centres the unembedding (where the model has no soft-cap)

    # ---- sites ---------------------------------------------------------------------------------
    def hook_name(self, site: Site, layer: int | None) -> str:
        if site is Site.MLP_IN and self.parallel:
            if not self._has_ln2:
                raise KeyError("virtual")  # the MLP shares the attention's norm: set at the MLP's input
            return f"blocks.{layer}.ln2.hook_in"
        return COMPAT_NAMES[site].format(L=layer)

    def _install(self, site: Site, layer: int | None, fn: Edit) -> Callable[[], None]:
        if (self.virtual_attn and site in _HEAD_SITES) or (site is Site.MLP_IN and self.parallel and not self._has_ln2):
            assert layer is not None  # (head sites and MLP_IN are per layer)
            return self._install_virtual(site, layer, fn)
        return install_tl_hook(self, self.hook_name(site, layer), site, layer, fn)

    # ---- computed sites (no transformer-lens hook for them) ------------------------------------
    def _install_virtual(self, site: Site, layer: int, fn: Edit) -> Callable[[], None]:
        key = (site, layer)
        fns = self._virtual.setdefault(key, [])
        fns.append(fn)
        if len(fns) == 1:
            self._virtual_undo[key] = self._attach_virtual(site, layer)

        def undo() -> None:
            fns.remove(fn)
            if not fns:
                self._virtual.pop(key, None)
                self._virtual_undo.pop(key)()

        return undo

    def _chain(self, key: tuple[Site, int], x: torch.Tensor) -> torch.Tensor | None:
        changed = None
        for f in list(self._virtual.get(key, ())):
            y = f(x if changed is None else changed)
            if y is not None:
                changed = y
        return changed

    def _attach_virtual(self, site: Site, layer: int) -> Callable[[], None]:
        blk = self.model.blocks[layer]
        key = (site, layer)
        handles = []
        st = self._state.setdefault(layer, {})
        ln1 = blk.ln1

        def keep_input(_m, args):  # the block's input, read by the first norm
            if not st.get("inside"):
                st["x"] = args[0]

        def norm(x):  # the first norm on a tensor of ours (not the block's input)
            st["inside"] = True
            try:
                return ln1(x)
            finally:
                st["inside"] = False

        if site is Site.MLP_IN:
            handles.append(ln1.register_forward_pre_hook(keep_input))

            def mlp_pre(_m, args):
                new = self._chain(key, st["x"])
                if new is None:
                    return None
                return (norm(new.to(st["x"].dtype)),) + tuple(args[1:])

            handles.append(blk.mlp.register_forward_pre_hook(mlp_pre))
        elif site is Site.RESULT:
            o = blk.attn.o.original_component
            H = self.shape.n_heads

            def o_pre(_m, args):
                st["z"] = args[0]

            def o_post(_m, args, out):
                z = st.pop("z")
                w, b, in_out = _linear_weight(o)
                dh = z.shape[-1] // H
                w_hd = w.reshape(H, dh, -1) if in_out else w.t().reshape(H, dh, -1)  # [H, dh, D]
                per = torch.einsum("bphe,hed->bphd", z.reshape(*z.shape[:-1], H, dh), w_hd)
                new = self._chain(key, per)
                if new is None:
                    return None
                out2 = new.sum(dim=2)
                return out2 + b if b is not None else out2

            handles += [o.register_forward_pre_hook(o_pre), o.register_forward_hook(o_post)]
        else:
            which = {Site.Q_INPUT: "q", Site.K_INPUT: "k", Site.V_INPUT: "v"}[site]
            proj = getattr(blk.attn, which).original_component
            n = self.shape.n_heads if site is Site.Q_INPUT else self.shape.n_kv_heads
            handles.append(ln1.register_forward_pre_hook(keep_input))

            def proj_post(_m, args, out):
                x = st["x"]
                per = x.unsqueeze(2).expand(-1, -1, n, -1)
                new = self._chain(key, per)
                if new is None:
                    return None
                w, b, in_out = _linear_weight(proj)
                normed = norm(new.to(x.dtype).reshape(x.shape[0], -1, x.shape[-1])).reshape(new.shape)
                dh = out.shape[-1] // n
                w_hd = (
                    w.reshape(-1, n, dh).permute(1, 0, 2) if in_out else w.reshape(n, dh, -1).permute(0, 2, 1)
                )  # [n, D, dh]
                y = torch.einsum("bphd,hde->bphe", normed, w_hd)
                if b is not None:
                    y = y + b.reshape(n, dh)
                return y.reshape(*y.shape[:2], n * dh)

            handles.append(proj.register_forward_hook(proj_post))

        def undo() -> None:
            for h in handles:
                h.remove()
            st.clear()

        return undo

    # ---- running -----------------------------------------------------------------------------
    def _forward(self, tokens: torch.Tensor) -> torch.Tensor:
        handles = [
            blk.register_forward_pre_hook(lambda m, a, kw, L=L: self.block_args.record(L, a, kw), with_kwargs=True)
            for L, blk in enumerate(self.model.blocks)
        ]
        try:
            return self.model(tokens)
        finally:
            for h in handles:
                h.remove()

    def _call_block(self, layer: int, resid: torch.Tensor) -> torch.Tensor | None:
        got = self.block_args.call_args(layer, int(resid.shape[1]), int(resid.shape[0]))
        if got is None:
            return None
        pos, kw = got
        out = self.model.blocks[layer](resid, *pos, **kw)
        return out[0] if isinstance(out, tuple) else out

    can_run_lean = True
    """`run_from(..., lean=True)` is accepted (circuitdsl.patching asks for it)."""

    def _attn_flags(self, result: bool, split: bool) -> None:
        m = self.model
        if bool(getattr(m.cfg, "use_attn_result", False)) != result:
            m.set_use_attn_result(result)
        if bool(getattr(m.cfg, "use_split_qkv_input", False)) != split:
            m.set_use_split_qkv_input(split)

    def run_from(
        self, layer: int, resid: torch.Tensor, *, edits=None, positions=None, lean: bool = False
    ) -> torch.Tensor:
        """`ModelBackend.run_from`. lean: each block computes per-head results and split q/k/v inputs only
        where an edit at that block needs them (the bridge's per-head einsums and per-head norms cost
        ~30% of a SmolLM2 block); the blocks' other computations are the same, so results agree with a
        plain run to float rounding (the heads' outputs summed by the output projection instead of one
        by one), not bitwise. Nothing can be captured in a lean run."""
        edits = dict(edits or {})
        n = self.shape.n_layers
        if not lean or self.virtual_attn or not self._can_call_blocks(int(resid.shape[1]), range(layer, n)):
            return super().run_from(layer, resid, edits=edits, positions=positions)
        need: dict[int, set] = {}
        for site, L in edits:
            if L is not None:
                need.setdefault(int(L), set()).add(site)
        was = (
            bool(getattr(self.model.cfg, "use_attn_result", False)),
            bool(getattr(self.model.cfg, "use_split_qkv_input", False)),
        )
        try:
            with self.hooked(list(edits.items())):
                x = resid
                for L in range(layer, n):
                    s = need.get(L, set())
                    self._attn_flags(
                        was[0] and Site.RESULT in s, was[1] and bool(s & {Site.Q_INPUT, Site.K_INPUT, Site.V_INPUT})
                    )
                    y = self._call_block(L, x)
                    assert y is not None  # (_can_call_blocks)
                    x = y
        finally:
            self._attn_flags(*was)
        if positions is not None:
            x = x[:, list(positions)]
        return self.unembed(x)

    def _fallback_block(self, layer: int, resid: torch.Tensor) -> None:
        # transformer-lens 4.3's forward(start_at_layer=L) still runs blocks 0..L-1 internally
        self.model(resid, start_at_layer=layer, stop_at_layer=layer + 1)

    def _fallback_from(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        return self.model(resid, start_at_layer=layer)

    def _mlp_direct(self, layer: int, mlp_in: torch.Tensor) -> torch.Tensor | None:
        """The block's MLP norm and MLP called on the port input (the modules the block calls, on the
        tensor its MLP_IN would hold): the attention does not run. None where that is not the block's
        own computation (no pre-MLP norm; a block-level MLP output hook)."""
        blk = self.model.blocks[layer]
        mlp = getattr(blk, "mlp", None)
        norm = getattr(blk, "ln2", None) if self._has_ln2 else (getattr(blk, "ln1", None) if self.parallel else None)
        if mlp is None or norm is None:
            return None
        got: dict[str, torch.Tensor] = {}

        def grab(x):
            got["mlp"] = x.detach().clone()
            return None

        try:
            with self.hooked([((Site.MLP_OUT, layer), grab)]):
                mlp(norm(mlp_in))
        except (TypeError, RuntimeError):  # an MLP that takes more than its input (Bloom's adds the residual
            return None  # itself) or that the bridge cannot call alone (OPT's): a block run instead
        return got.get("mlp")

    def unembed(self, resid_final: torch.Tensor) -> torch.Tensor:
        """Final norm, unembedding, and what the Hugging Face model applies after its lm_head
        (Gemma-2's soft-cap, Granite's logit scaling; Cohere's logit scale is in the bridge's own unembedding)."""
        with torch.no_grad():
            logits = self.model.unembed(self.model.ln_final(resid_final))
            c = self.hf_config
            if c.get("logits_scaling"):
                logits = logits / float(c["logits_scaling"])
            cap = c.get("final_logit_softcapping")
            if cap:
                logits = torch.tanh(logits / float(cap)) * float(cap)
            return logits

    def unembed_matrix(self) -> torch.Tensor:
        return self.model.unembed.W_U.detach().float()

    def known_issues(self) -> list[tuple[int, str]]:
        blk = self.model.blocks[0]
        subs = getattr(blk, "submodules", {}) or {}
        attn_subs = getattr(getattr(blk, "attn", None), "submodules", {}) or {}
        out = []
        if "ln1_post" in subs:
            out.append(
                (
                    1,
                    "the model normalises the attention's whole output before adding it to the residual stream (a post-norm, "
                    "as in Gemma-2/3 and OLMo-2): the heads' outputs do not add up to what the layer writes, so heads are "
                    "not nodes of SEMANTICS.md section 1's graph",
                )
            )
        if "q_norm" in attn_subs and getattr(blk.attn, "_qk_norm_phase", "") == "pre_reshape":
            out.append(
                (
                    3,
                    "query/key norms are taken across all heads (OLMo-2): one head's query depends on the others' inputs",
                )
            )
        return out

    # ---- the contract's yardstick ------------------------------------------------------------
    def reference(self) -> HFReference:
        return HFReference(self)

    def fingerprint(self) -> str:
        return _dir_fingerprint(self.model_dir)


# ---- loading -------------------------------------------------------------------------------------
def load_bridge(model_dir: Path, name: str, device: str = "cpu") -> BridgeBackend:
    from transformer_lens.model_bridge import TransformerBridge

    model_dir = Path(model_dir)
    try:
        cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BackendError(
            f"cannot read {model_dir / 'config.json'}: {e}", "fix or regenerate the config.json"
        ) from None
    if not any((model_dir / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        # a directory without tokenizer files boots silently with an empty vocabulary (MODELS.md)
        raise BackendError(
            f"{model_dir} holds no tokenizer files", "save the tokenizer beside the model (save_pretrained)"
        )
    if not sys.stderr.isatty():  # a tqdm bar per weight group floods CI logs and piped output
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        model = TransformerBridge.boot_transformers(str(model_dir), device=device)
        model.enable_compatibility_mode(disable_warnings=True)
    except Exception as e:  # transformers raises many kinds; report them as a model error
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise BackendError(
            f"cannot load {model_dir} with TransformerBridge: {first}", "is it a supported Hugging Face model?"
        ) from None
    backend = BridgeBackend(name, model, model_dir, cfg)
    try:
        model.set_use_attn_result(True)
        model.set_use_split_qkv_input(True)
    except NotImplementedError:
        # transformer-lens has no per-head hooks for this attention (GPT-J, GPT-Neo, OPT): computed here
        model.set_use_attn_result(False)
        model.set_use_split_qkv_input(False)
        backend.virtual_attn = True
    model.eval()
    return backend


# ---- the model's own forward pass, for the contract ------------------------------------------------
class HFReference:
    """The Hugging Face model loaded afresh from its directory (eager attention, the backend's device
    and dtype), with plain PyTorch hooks on its own modules, located by the names transformer-lens'
    architecture adapter gives them. No transformer-lens code runs in it."""

    def __init__(self, backend: BridgeBackend):
        from transformers import AutoModelForCausalLM

        self.backend = backend
        try:
            self.model = (
                AutoModelForCausalLM.from_pretrained(
                    str(backend.model_dir), attn_implementation="eager", dtype=backend.dtype
                )
                .to(backend.device)  # type: ignore[arg-type]  # transformers types its `to` wrapper as unbound
                .eval()
            )
        except Exception as e:
            raise BackendError(
                f"cannot load {backend.model_dir} as a Hugging Face model for the contract: {e}"
            ) from None
        cm = backend.model.adapter.component_mapping
        blocks = cm["blocks"]
        self.layers = self.model.get_submodule(blocks.name)
        attn = blocks.submodules["attn"]
        self.o_path = f"{attn.name}.{attn.submodules['o'].name}"
        self.final = self.model.get_submodule(cm["ln_final"].name) if cm.get("ln_final") is not None else None
        self.H = backend.shape.n_heads

    def _logits(self, tokens, keep: int = 4):
        """The model's logits at the last `keep` positions (transformers' logits_to_keep)."""
        try:
            return self.model(tokens, logits_to_keep=keep).logits[:, -keep:]
        except TypeError:  # a model whose forward has no logits_to_keep
            return self.model(tokens).logits[:, -keep:]

    def _o(self, layer: int) -> torch.nn.Module:
        return self.layers[layer].get_submodule(self.o_path)

    @torch.no_grad()
    def layer_residuals(self, tokens):
        got: dict[int, torch.Tensor] = {}
        n = len(self.layers)

        def pre(i):
            def fn(_m, args, kwargs):
                x = args[0] if args else kwargs["hidden_states"]
                got[i] = x.detach().clone()

            return fn

        hs = [layer.register_forward_pre_hook(pre(i), with_kwargs=True) for i, layer in enumerate(self.layers)]
        if self.final is not None:
            hs.append(self.final.register_forward_pre_hook(pre(n), with_kwargs=True))
        else:
            hs.append(
                self.layers[n - 1].register_forward_hook(
                    lambda m, a, out: got.__setitem__(n, (out[0] if isinstance(out, tuple) else out).detach().clone())
                )
            )
        try:
            logits = self._logits(tokens)
        finally:
            for h in hs:
                h.remove()
        return [got[i] for i in range(n + 1)], logits

    @torch.no_grad()
    def logits_with_head(self, tokens, layer, head, source):
        o = self._o(layer)
        seen: dict[str, torch.Tensor] = {}

        def keep(_m, args):
            x = args[0]
            dh = x.shape[-1] // self.H
            seen["z"] = x[..., head * dh : (head + 1) * dh].clone()

        h = o.register_forward_pre_hook(keep)
        try:
            self.model(source)
        finally:
            h.remove()

        def put(_m, args):
            x = args[0].clone()
            dh = x.shape[-1] // self.H
            x[..., head * dh : (head + 1) * dh] = seen["z"]
            return (x,) + tuple(args[1:])

        h = o.register_forward_pre_hook(put)
        try:
            return self._logits(tokens)
        finally:
            h.remove()

    def close(self) -> None:
        self.model = None


# ---- fingerprints ----------------------------------------------------------------------------------
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".npz", ".json")


def _dir_fingerprint(d: Path) -> str:
    """blake2b of the config and weight files of a model directory (their bytes). Hashing a 0.5 GB model
    takes about a second, so content hashes are remembered per (path, size, mtime) in the cache dir."""
    from circuitdsl.backends.contract import cache_dir

    files = sorted(
        p for p in Path(d).iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES and not p.name.startswith(".")
    )
    h = hashlib.blake2b(digest_size=16)
    memo_file = cache_dir() / "file-hashes.json"
    try:
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        memo = {}
    changed = False
    for p in files:
        st = p.stat()
        key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        digest = memo.get(key)
        if digest is None:
            fh = hashlib.blake2b(digest_size=16)
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    fh.update(chunk)
            digest = memo[key] = fh.hexdigest()
            changed = True
        h.update(p.name.encode() + b"\0" + digest.encode())
    if changed:
        try:
            memo_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo_file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(memo), encoding="utf-8")
            os.replace(tmp, memo_file)
        except OSError:
            pass
    return h.hexdigest()
