"""Independent patching for the family matrix: the Hugging Face model itself (eager attention, float32),
changed only through plain PyTorch hooks on its own modules (../shared/MODELS.md). No circuitdsl and no
transformer-lens code runs here.

- a head's output is its slice [H*d_head:(H+1)*d_head] of the attention output projection's input
  (a forward pre-hook replaces it);
- a key/value group's key input: the layer's input plus a sender head's direct write, through the
  layer's first norm and the key projection, replacing that group's slice of the projection's output.
"""

from __future__ import annotations

import torch
from family_specs import Family


def load(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch.float32).eval()


def _layers(hf, fam: Family):
    return hf.get_submodule(fam.layers)


def n_heads(hf) -> int:
    c = hf.config
    for k in ("num_attention_heads", "n_head", "num_heads"):
        if getattr(c, k, None):
            return int(getattr(c, k))
    raise AttributeError("heads")


def n_kv_heads(hf) -> int:
    c = hf.config
    if getattr(c, "multi_query", False) and not getattr(c, "new_decoder_architecture", False):
        return 1
    for k in ("num_key_value_heads", "num_kv_heads"):
        if getattr(c, k, None):
            return int(getattr(c, k))
    return n_heads(hf)


@torch.no_grad()
def logits(hf, tokens: torch.Tensor) -> torch.Tensor:
    return hf(tokens).logits


@torch.no_grad()
def head_inputs(hf, fam: Family, tokens: torch.Tensor, layer: int) -> torch.Tensor:
    """The input of layer `layer`'s output projection [B, P, H*d_head] on `tokens`."""
    o = _layers(hf, fam)[layer].get_submodule(fam.o_proj)
    got = {}
    h = o.register_forward_pre_hook(lambda m, a: got.__setitem__("z", a[0].detach().clone()))
    try:
        hf(tokens)
    finally:
        h.remove()
    return got["z"]


@torch.no_grad()
def patch_head(hf, fam: Family, clean: torch.Tensor, corrupt: torch.Tensor, layer: int, head: int) -> torch.Tensor:
    """Logits of `clean` with head layer.head's output taken from the `corrupt` run (row by row)."""
    z = head_inputs(hf, fam, corrupt, layer)
    dh = z.shape[-1] // n_heads(hf)
    o = _layers(hf, fam)[layer].get_submodule(fam.o_proj)

    def put(_m, args):
        x = args[0].clone()
        x[..., head * dh : (head + 1) * dh] = z[..., head * dh : (head + 1) * dh]
        return (x,) + tuple(args[1:])

    h = o.register_forward_pre_hook(put)
    try:
        return hf(clean).logits
    finally:
        h.remove()


def _o_slice(o, head: int, dh: int) -> torch.Tensor:
    """[d_head, d_model]: head's slice of the output projection."""
    w = o.weight
    if type(o).__name__ == "Conv1D":  # [in, out]
        return w[head * dh : (head + 1) * dh, :]
    return w[:, head * dh : (head + 1) * dh].t()


@torch.no_grad()
def patch_key_group(
    hf,
    fam: Family,
    clean: torch.Tensor,
    corrupt: torch.Tensor,
    sender: tuple[int, int],
    layer: int,
    group: int,
    resid_scale: float = 1.0,
) -> torch.Tensor:
    """Logits of `clean` when only the key input of key/value group `group` of layer `layer` sees head
    `sender`'s direct write from the `corrupt` run (path patching of one edge into a shared k port)."""
    sl, sh = sender
    H, _G = n_heads(hf), n_kv_heads(hf)
    zc = head_inputs(hf, fam, clean, sl)
    zx = head_inputs(hf, fam, corrupt, sl)
    dh = zc.shape[-1] // H
    o = _layers(hf, fam)[sl].get_submodule(fam.o_proj)
    delta = resid_scale * ((zx - zc)[..., sh * dh : (sh + 1) * dh] @ _o_slice(o, sh, dh))
    block = _layers(hf, fam)[layer]
    norm = block.get_submodule(fam.norm1)
    kmod = block.get_submodule(fam.k_proj)
    seen = {}

    def keep(_m, args, kwargs):
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    def put(_m, args, out):
        x = seen["x"]
        y = kmod(norm(x + delta.to(x.dtype)))  # re-entrant call of the key projection on the patched input
        out = out.clone()
        if fam.k_layout == "sep":
            lo = group * dh
        elif fam.k_layout == "qkv":
            lo = H * dh + group * dh
        elif fam.k_layout == "neox":  # per head [q k v]; one key head per query head
            lo = group * 3 * dh + dh
        else:
            raise ValueError(fam.k_layout)
        out[..., lo : lo + dh] = y[..., lo : lo + dh]
        return out

    h1 = block.register_forward_pre_hook(keep, with_kwargs=True)
    state = {"busy": False}

    def guarded(m, args, out):
        if state["busy"]:
            return None
        state["busy"] = True
        try:
            return put(m, args, out)
        finally:
            state["busy"] = False

    h2 = kmod.register_forward_hook(guarded)
    try:
        return hf(clean).logits
    finally:
        h1.remove()
        h2.remove()
