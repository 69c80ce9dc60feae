"""The native model (docs/NATIVE_MODELS.md): a transformer without normalisation, built on
`transformer_lens.HookedRootModule` with transformer-lens' compatibility-mode hook names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from circuitdsl.backends.base import COMPAT_NAMES, Backend, BackendError, install_tl_hook
from circuitdsl.backends.protocol import Edit, Site

__all__ = [
    "NativeConfig",
    "NativeTransformer",
    "NativeBackend",
    "NativeReference",
    "load_native",
    "load_native_backend",
]

_KEYS = ("n_layers", "n_heads", "d_model", "d_head", "n_ctx", "d_vocab")


class NativeConfig:
    def __init__(self, cfg: dict):
        missing = [k for k in _KEYS if k not in cfg]
        if missing:
            raise BackendError(f"native config.json lacks {', '.join(missing)}", "see docs/NATIVE_MODELS.md")
        self.n_layers = int(cfg["n_layers"])
        self.n_heads = int(cfg["n_heads"])
        self.d_model = int(cfg["d_model"])
        self.d_head = int(cfg["d_head"])
        self.d_mlp = int(cfg["d_mlp"]) if cfg.get("d_mlp") else None
        self.act_fn = cfg.get("act_fn") or ("relu" if self.d_mlp else None)
        if self.d_mlp and self.act_fn not in ("relu", "gelu"):
            raise BackendError(f"unknown act_fn {self.act_fn!r}", "use relu or gelu")
        self.attention = cfg.get("attention", "causal")
        if self.attention not in ("causal", "bidirectional"):
            raise BackendError(f"unknown attention {self.attention!r}", "use causal or bidirectional")
        self.positional = cfg.get("positional", "learned")
        self.n_ctx = int(cfg["n_ctx"])
        self.d_vocab = int(cfg["d_vocab"])
        self.d_vocab_out = int(cfg.get("d_vocab_out") or self.d_vocab)
        self.input_vocab = cfg.get("input_vocab")
        self.device = "cpu"
        """Where the weights live (transformer-lens utilities such as its patching module read cfg.device)."""
        self.output_vocab = cfg.get("output_vocab")


class _Attention(nn.Module):
    def __init__(self, cfg: NativeConfig):
        super().__init__()
        h, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        self.cfg = cfg
        self.W_Q = nn.Parameter(torch.zeros(h, d, dh))
        self.W_K = nn.Parameter(torch.zeros(h, d, dh))
        self.W_V = nn.Parameter(torch.zeros(h, d, dh))
        self.b_Q = nn.Parameter(torch.zeros(h, dh))
        self.b_K = nn.Parameter(torch.zeros(h, dh))
        self.b_V = nn.Parameter(torch.zeros(h, dh))
        self.W_O = nn.Parameter(torch.zeros(h, dh, d))
        self.b_O = nn.Parameter(torch.zeros(d))
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()
        self.hook_result = HookPoint()

    def forward(self, q_in, k_in, v_in):  # each [B, P, H, D]
        q = self.hook_q(torch.einsum("bphd,hde->bphe", q_in, self.W_Q) + self.b_Q)
        k = self.hook_k(torch.einsum("bphd,hde->bphe", k_in, self.W_K) + self.b_K)
        v = self.hook_v(torch.einsum("bphd,hde->bphe", v_in, self.W_V) + self.b_V)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(self.cfg.d_head)
        if self.cfg.attention == "causal":
            p = scores.shape[-1]
            mask = torch.ones(p, p, dtype=torch.bool, device=scores.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        result = self.hook_result(torch.einsum("bqhe,hed->bqhd", z, self.W_O))
        return result.sum(dim=2) + self.b_O


class _MLP(nn.Module):
    def __init__(self, cfg: NativeConfig):
        super().__init__()
        assert cfg.d_mlp is not None  # (_Block builds an MLP only when the model has one)
        self.W_in = nn.Parameter(torch.zeros(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.zeros(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act = nn.ReLU() if cfg.act_fn == "relu" else nn.GELU()
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x):
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        return self.hook_post(self.act(pre)) @ self.W_out + self.b_out


class _Block(nn.Module):
    def __init__(self, cfg: NativeConfig):
        super().__init__()
        self.cfg = cfg
        self.attn = _Attention(cfg)
        self.mlp = _MLP(cfg) if cfg.d_mlp else None
        self.hook_resid_pre = HookPoint()
        self.hook_q_input = HookPoint()
        self.hook_k_input = HookPoint()
        self.hook_v_input = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid):
        resid = self.hook_resid_pre(resid)
        per_head = resid.unsqueeze(2).expand(-1, -1, self.cfg.n_heads, -1)
        attn_out = self.hook_attn_out(
            self.attn(self.hook_q_input(per_head), self.hook_k_input(per_head), self.hook_v_input(per_head))
        )
        mid = self.hook_resid_mid(resid + attn_out)
        if self.mlp is None:
            return self.hook_resid_post(mid)
        return self.hook_resid_post(mid + self.hook_mlp_out(self.mlp(mid)))


class _Embed(nn.Module):
    def __init__(self, cfg: NativeConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.zeros(cfg.d_vocab, cfg.d_model))

    def forward(self, tokens):
        return self.W_E[tokens]


class _PosEmbed(nn.Module):
    def __init__(self, cfg: NativeConfig):
        super().__init__()
        self.W_pos = nn.Parameter(torch.zeros(cfg.n_ctx, cfg.d_model))

    def forward(self, tokens):
        return self.W_pos[: tokens.shape[1]].unsqueeze(0).expand(tokens.shape[0], -1, -1)


class _Unembed(nn.Module):
    def __init__(self, cfg: NativeConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.zeros(cfg.d_model, cfg.d_vocab_out))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab_out))

    def forward(self, x):
        return x @ self.W_U + self.b_U


class NativeTransformer(HookedRootModule):
    """`forward(tokens)` -> logits [B, P, V]; `forward(resid, start_at_layer=L, stop_at_layer=M)` runs
    blocks L..M-1 on a residual [B, P, D] (returns the residual when stopping early)."""

    def __init__(self, cfg: NativeConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = _Embed(cfg)
        self.hook_embed = HookPoint()
        self.pos_embed = _PosEmbed(cfg) if cfg.positional == "learned" else None
        self.hook_pos_embed = HookPoint() if self.pos_embed is not None else None
        self.blocks = nn.ModuleList([_Block(cfg) for _ in range(cfg.n_layers)])
        self.unembed = _Unembed(cfg)
        self.setup()

    def forward(self, input, start_at_layer: int | None = None, stop_at_layer: int | None = None):
        if start_at_layer is None:
            tokens = input
            if tokens.shape[1] > self.cfg.n_ctx:
                raise BackendError(f"input of {tokens.shape[1]} tokens exceeds n_ctx={self.cfg.n_ctx}")
            resid = self.hook_embed(self.embed(tokens))
            if self.pos_embed is not None and self.hook_pos_embed is not None:
                resid = resid + self.hook_pos_embed(self.pos_embed(tokens))
            start_at_layer = 0
        else:
            resid = input
        stop = self.cfg.n_layers if stop_at_layer is None else stop_at_layer
        for block in self.blocks[start_at_layer:stop]:
            resid = block(resid)
        if stop < self.cfg.n_layers:
            return resid
        return self.unembed(resid)


def load_native(model_dir: Path, device: str = "cpu") -> NativeTransformer:
    model_dir = Path(model_dir)
    try:
        raw = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BackendError(f"cannot read {model_dir / 'config.json'}: {e}") from None
    cfg = NativeConfig(raw)
    wfile = model_dir / str(raw.get("weights") or "model.safetensors")
    if not wfile.is_file():
        raise BackendError(f"weights file {wfile} is missing", "config.json's `weights` names the file beside it")
    if wfile.suffix == ".npz":
        with np.load(wfile) as z:
            state = {k: torch.from_numpy(np.asarray(z[k], dtype=np.float32)) for k in z.files}
    else:
        from safetensors.torch import load_file

        state = {k: v.float() for k, v in load_file(str(wfile)).items()}
    model = NativeTransformer(cfg)
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    if unknown or missing:
        raise BackendError(
            f"weights do not match the config: missing {missing[:4]}, unexpected {unknown[:4]}",
            "see docs/NATIVE_MODELS.md for the state dict layout",
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise BackendError(f"weight {k} has shape {tuple(v.shape)}, config says {tuple(own[k].shape)}")
    model.load_state_dict(state)
    model.to(device)
    cfg.device = str(device)
    model.eval()
    return model


class NativeBackend(Backend):
    """The native model behind `ModelBackend`: hook names are transformer-lens' compatibility-mode
    names, every block runs alone through `forward(resid, start_at_layer=L, stop_at_layer=L + 1)`, and
    the unembedding is the model's own (no final norm)."""

    kind = "native"

    def __init__(self, name: str, model: NativeTransformer, model_dir: Path, raw: dict):
        from circuitdsl.models.shapes import shape_from_config

        vocab = raw.get("output_vocab")
        super().__init__(
            name, model, shape_from_config(raw), model.cfg.d_vocab_out, vocab_strings=tuple(vocab) if vocab else None
        )
        self.model_dir = Path(model_dir)
        iv = raw.get("input_vocab")
        self.input_vocab = tuple(str(v) for v in iv) if iv else None
        """Token strings of the input vocabulary (when the model has no tokenizer)."""

    @property
    def n_ctx(self) -> int | None:
        return int(self.model.cfg.n_ctx)

    @property
    def causal(self) -> bool:
        return self.model.cfg.attention != "bidirectional"

    def _install(self, site: Site, layer: int | None, fn: Edit):
        if site is Site.FINAL_SCALE:
            raise BackendError(f"model `{self.name}` has no final norm")
        if site is Site.MLP_IN:
            # the MLP's own input (its port), not `hook_resid_mid`, which also carries the residual
            # stream past the MLP: an edit (or a gradient leaf) there would reach later layers too
            mlp = self.model.blocks[layer].mlp if layer is not None and 0 <= layer < len(self.model.blocks) else None
            if mlp is None:
                raise BackendError(f"model `{self.name}` has no MLP at layer {layer}")

            def pre(_m, args):
                y = fn(args[0])
                return None if y is None else (y,) + tuple(args[1:])

            return mlp.register_forward_pre_hook(pre).remove
        return install_tl_hook(self, COMPAT_NAMES[site].format(L=layer), site, layer, fn)

    def _forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)

    def _call_block(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        return self.model.blocks[layer](resid)  # the residual leaving the block (also for the last one)

    def _fallback_block(self, layer: int, resid: torch.Tensor) -> None:
        self._call_block(layer, resid)

    def _can_call_blocks(self, P, layers) -> bool:
        return True

    def unembed(self, resid_final: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.unembed(resid_final)

    def unembed_matrix(self) -> torch.Tensor:
        return self.model.unembed.W_U.detach().float()

    def reference(self) -> NativeReference:
        return NativeReference(self.model)

    def fingerprint(self) -> str:
        from circuitdsl.backends.bridge import _dir_fingerprint

        return _dir_fingerprint(self.model_dir)


class NativeReference:
    """The native model's own forward pass with plain PyTorch hooks on its modules (a head's output is
    replaced through its slice of `hook_z`, the attention-weighted values, before W_O)."""

    def __init__(self, model: NativeTransformer):
        self.model = model

    @torch.no_grad()
    def layer_residuals(self, tokens):
        got: dict[int, torch.Tensor] = {}
        n = len(self.model.blocks)
        hs = [
            b.register_forward_pre_hook(lambda m, a, i=i: got.__setitem__(i, a[0].detach().clone()))
            for i, b in enumerate(self.model.blocks)
        ]
        hs.append(self.model.unembed.register_forward_pre_hook(lambda m, a: got.__setitem__(n, a[0].detach().clone())))
        try:
            logits = self.model(tokens)[:, -4:]
        finally:
            for h in hs:
                h.remove()
        return [got[i] for i in range(n + 1)], logits

    @torch.no_grad()
    def logits_with_head(self, tokens, layer, head, source):
        z_mod = self.model.blocks[layer].attn.hook_z
        seen: dict[str, torch.Tensor] = {}
        h = z_mod.register_forward_hook(lambda m, a, out: seen.__setitem__("z", out[:, :, head].clone()))
        try:
            self.model(source)
        finally:
            h.remove()

        def put(_m, _a, out):
            out = out.clone()
            out[:, :, head] = seen["z"]
            return out

        h = z_mod.register_forward_hook(put)
        try:
            return self.model(tokens)[:, -4:]
        finally:
            h.remove()

    def close(self) -> None:
        pass


def load_native_backend(model_dir: Path, name: str, device: str = "cpu") -> NativeBackend:
    model = load_native(model_dir, device)
    raw = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    return NativeBackend(name, model, Path(model_dir), raw)
