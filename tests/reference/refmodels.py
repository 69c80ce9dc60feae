"""Tiny random models for the reference tests, built in seconds and offline.

Native models (circuitdsl's no-LayerNorm format) come from tests/engine/_models.py. The Hugging Face
ones (a GQA Llama and a GPT-2, booted through TransformerBridge) are built here with a 64-token
vocabulary and a word-level tokenizer written on the spot: the tokens are just ids, so no real
tokenizer (tests/engine's takes ~15 s to convert from the SmolLM2 GGUF) is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

import _models

__all__ = ["native_attn", "native_mlp", "hf_model", "model_dir", "MODELS", "VOCAB"]

VOCAB = 64


def native_attn(dest: Path) -> Path:
    """3 layers of 3 heads, learned positions, no MLP."""
    return _models.random_native(dest, n_layers=3, n_heads=3, d_model=24, d_head=8, seed=1)


def native_mlp(dest: Path) -> Path:
    """2 layers of 4 heads and an MLP each."""
    return _models.random_native(dest, n_layers=2, n_heads=4, d_model=32, d_head=8, d_mlp=24, seed=2, fmt="npz")


def _tokenizer(dest: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(VOCAB - 1)}
    vocab["<unk>"] = VOCAB - 1
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<unk>", eos_token="<unk>")
    fast.save_pretrained(str(dest))


def hf_model(dest: Path, arch: str, *, seed: int = 0) -> Path:
    """A tiny random GQA Llama (4 query heads, 2 key/value heads, rotary) or GPT-2 (learned positions)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if arch == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=VOCAB,
                n_positions=32,
                n_embd=32,
                n_layer=2,
                n_head=4,
                bos_token_id=VOCAB - 1,
                eos_token_id=VOCAB - 1,
            )
        )
    elif arch == "llama":
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=VOCAB,
                hidden_size=32,
                intermediate_size=48,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=32,
                tie_word_embeddings=False,
            )
        )
    else:
        raise ValueError(arch)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dest))
    _tokenizer(dest)
    return dest


MODELS = ("native_attn", "native_mlp", "hf_llama", "hf_gpt2")
"""The test models by name: attention-only native, native with MLPs, GQA Llama, GPT-2."""

_BUILT: dict[str, Path] = {}


def model_dir(name: str, root: Path) -> Path:
    """The directory of test model `name` (one of MODELS), built under `root` once per process."""
    if name not in _BUILT:
        d = Path(root) / f"refmodel_{name}"
        if name == "native_attn":
            native_attn(d)
        elif name == "native_mlp":
            native_mlp(d)
        elif name in ("hf_llama", "hf_gpt2"):
            hf_model(d, name[3:])
        else:
            raise ValueError(f"unknown test model {name!r}; one of {MODELS}")
        _BUILT[name] = d
    return _BUILT[name]
