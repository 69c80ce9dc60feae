"""The family matrix: one tiny random-init model per architecture family transformer-lens 4.3 supports,
built from a Hugging Face config (2 layers, d_model 128, 4 heads, init std 0.1, SmolLM2's tokenizer,
vocabulary 49152; ../shared/MODELS.md), and how the independent reference (hf_patching.py) reaches
into it: the decoder layers, each layer's attention output projection, its first norm and its key
projection. Nothing here imports circuitdsl.

`expect` is what the engine must do with the family: "exact" (every check of test_families.py agrees
with plain-hook patching to 1e-4), or "refused" with the model contract's diagnostic matching `why`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

V = 49152
D = 128
COMMON = dict(
    vocab_size=V,
    hidden_size=D,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=256,
    max_position_embeddings=64,
    initializer_range=0.1,
)


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    """As the README's table names it."""
    config: Callable[[], object]
    layers: str
    """Attribute path of the decoder layers (a ModuleList) in the Hugging Face model."""
    o_proj: str
    """Path, inside one layer, of the attention output projection (its input: heads' outputs concatenated)."""
    norm1: str
    """Path, inside one layer, of the norm that q, k and v read."""
    k_proj: str
    """Path, inside one layer, of the module whose output holds the keys."""
    k_layout: str
    """'sep' (k_proj's output is the keys), 'qkv' ([q | k | v] along the last dim), 'neox' (per head [q k v])."""
    expect: str = "exact"
    why: str = ""
    """For refused families: a regular expression the E540 diagnostic must match."""
    notes: str = ""
    tags: tuple[str, ...] = field(default=())


def _t():
    import transformers

    return transformers


def _llama_like(cls_name: str, **kw):
    def make():
        cfg = dict(COMMON, num_key_value_heads=2)
        cfg.update(kw)
        return getattr(_t(), cls_name)(**cfg)

    return make


def _cfg(cls_name: str, **kw):
    return lambda: getattr(_t(), cls_name)(**kw)


LLAMA_LIKE = dict(
    layers="model.layers", o_proj="self_attn.o_proj", norm1="input_layernorm", k_proj="self_attn.k_proj", k_layout="sep"
)

FAMILIES: tuple[Family, ...] = (
    Family(
        "gpt2",
        "GPT-2",
        _cfg("GPT2Config", vocab_size=V, n_positions=64, n_embd=D, n_layer=2, n_head=4, initializer_range=0.1),
        "transformer.h",
        "attn.c_proj",
        "ln_1",
        "attn.c_attn",
        "qkv",
    ),
    Family(
        "gpt_neo",
        "GPT-Neo (local attention layers)",
        _cfg(
            "GPTNeoConfig",
            vocab_size=V,
            hidden_size=D,
            num_layers=2,
            num_heads=4,
            max_position_embeddings=64,
            attention_types=[[["global", "local"], 1]],
            window_size=4,
            initializer_range=0.1,
        ),
        "transformer.h",
        "attn.attention.out_proj",
        "ln_1",
        "attn.attention.k_proj",
        "sep",
        notes="per-head outputs computed by circuitdsl",
    ),
    Family(
        "gpt_neox",
        "GPT-NeoX, sequential blocks",
        _cfg("GPTNeoXConfig", **COMMON, use_parallel_residual=False),
        "gpt_neox.layers",
        "attention.dense",
        "input_layernorm",
        "attention.query_key_value",
        "neox",
    ),
    Family(
        "gpt_neox_parallel",
        "GPT-NeoX, parallel blocks",
        _cfg("GPTNeoXConfig", **COMMON, use_parallel_residual=True, rotary_pct=1.0),
        "gpt_neox.layers",
        "attention.dense",
        "input_layernorm",
        "attention.query_key_value",
        "neox",
        tags=("parallel",),
    ),
    Family(
        "pythia",
        "Pythia (GPT-NeoX, parallel, 25% rotary)",
        _cfg("GPTNeoXConfig", **COMMON, use_parallel_residual=True, rotary_pct=0.25, tie_word_embeddings=False),
        "gpt_neox.layers",
        "attention.dense",
        "input_layernorm",
        "attention.query_key_value",
        "neox",
        tags=("parallel",),
    ),
    Family(
        "gptj",
        "GPT-J",
        _cfg(
            "GPTJConfig",
            vocab_size=V,
            n_embd=D,
            n_layer=2,
            n_head=4,
            n_positions=64,
            rotary_dim=16,
            initializer_range=0.1,
        ),
        "transformer.h",
        "attn.out_proj",
        "ln_1",
        "attn.k_proj",
        "sep",
        notes="per-head outputs computed by circuitdsl",
        tags=("parallel",),
    ),
    Family(
        "phi",
        "Phi-1/Phi-2",
        _cfg("PhiConfig", **COMMON),
        "model.layers",
        "self_attn.dense",
        "input_layernorm",
        "self_attn.k_proj",
        "sep",
        tags=("parallel",),
    ),
    Family(
        "phi3",
        "Phi-3",
        _llama_like("Phi3Config", pad_token_id=0),
        "model.layers",
        "self_attn.o_proj",
        "input_layernorm",
        "self_attn.qkv_proj",
        "qkv",
        tags=("gqa",),
    ),
    Family("llama", "Llama", _llama_like("LlamaConfig"), **LLAMA_LIKE, tags=("gqa",)),
    Family(
        "mistral",
        "Mistral (sliding window)",
        _llama_like("MistralConfig", sliding_window=4),
        **LLAMA_LIKE,
        tags=("gqa",),
    ),
    Family(
        "mixtral",
        "Mixtral (mixture of experts)",
        _llama_like("MixtralConfig", num_local_experts=4, num_experts_per_tok=2),
        **LLAMA_LIKE,
        tags=("gqa",),
    ),
    Family("qwen2", "Qwen2", _llama_like("Qwen2Config"), **LLAMA_LIKE, tags=("gqa",)),
    Family(
        "qwen2_sliding",
        "Qwen2, sliding-window layers",
        _llama_like(
            "Qwen2Config",
            use_sliding_window=True,
            sliding_window=4,
            max_window_layers=1,
            layer_types=["full_attention", "sliding_attention"],
        ),
        **LLAMA_LIKE,
        tags=("gqa",),
    ),
    Family("qwen3", "Qwen3 (per-head q/k norms)", _llama_like("Qwen3Config", head_dim=32), **LLAMA_LIKE, tags=("gqa",)),
    Family("gemma", "Gemma", _llama_like("GemmaConfig", head_dim=32), **LLAMA_LIKE, tags=("gqa",)),
    Family("olmo", "OLMo", _llama_like("OlmoConfig"), **LLAMA_LIKE, tags=("gqa",)),
    Family("stablelm", "StableLM", _llama_like("StableLmConfig"), **LLAMA_LIKE, tags=("gqa",)),
    Family(
        "starcoder2", "StarCoder2", _llama_like("Starcoder2Config", sliding_window=None), **LLAMA_LIKE, tags=("gqa",)
    ),
    Family(
        "granite",
        "Granite (scaled residual and logits)",
        _llama_like(
            "GraniteConfig",
            residual_multiplier=0.5,
            attention_multiplier=0.2,
            logits_scaling=2.0,
            embedding_multiplier=3.0,
        ),
        **LLAMA_LIKE,
        tags=("gqa",),
    ),
    Family("cohere", "Cohere (parallel)", _llama_like("CohereConfig"), **LLAMA_LIKE, tags=("gqa", "parallel")),
    Family(
        "gpt_bigcode",
        "GPT-BigCode (multi-query)",
        _cfg(
            "GPTBigCodeConfig",
            vocab_size=V,
            n_embd=D,
            n_layer=2,
            n_head=4,
            n_positions=64,
            multi_query=True,
            initializer_range=0.1,
        ),
        "transformer.h",
        "attn.c_proj",
        "ln_1",
        "attn.c_attn",
        "qkv",
        tags=("gqa",),
    ),
    Family(
        "falcon",
        "Falcon (parallel, multi-query)",
        _cfg(
            "FalconConfig",
            vocab_size=V,
            hidden_size=D,
            num_hidden_layers=2,
            num_attention_heads=4,
            initializer_range=0.1,
            new_decoder_architecture=False,
            multi_query=True,
            parallel_attn=True,
            bias=False,
            alibi=False,
        ),
        "transformer.h",
        "self_attention.dense",
        "input_layernorm",
        "self_attention.query_key_value",
        "qkv",
        tags=("gqa", "parallel"),
    ),
    Family(
        "opt",
        "OPT",
        _cfg(
            "OPTConfig",
            vocab_size=V,
            hidden_size=D,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=256,
            max_position_embeddings=64,
            word_embed_proj_dim=D,
            init_std=0.1,
        ),
        "model.decoder.layers",
        "self_attn.out_proj",
        "self_attn_layer_norm",
        "self_attn.k_proj",
        "sep",
        notes="per-head outputs computed by circuitdsl",
    ),
    Family(
        "gemma2",
        "Gemma-2",
        _llama_like("Gemma2Config", head_dim=32, sliding_window=4),
        **LLAMA_LIKE,
        expect="refused",
        why=r"check 1 \(decomposition\) failed at layer 0.*post-norm",
        notes="post-attention norm; final logit soft-cap",
        tags=("gqa",),
    ),
    Family(
        "gemma3",
        "Gemma-3 (text)",
        _llama_like(
            "Gemma3TextConfig", head_dim=32, sliding_window=4, layer_types=["sliding_attention", "full_attention"]
        ),
        **LLAMA_LIKE,
        expect="refused",
        why=r"check 1 \(decomposition\) failed at layer 0.*post-norm",
        notes="post-attention norm",
        tags=("gqa",),
    ),
    Family(
        "olmo2",
        "OLMo-2",
        _llama_like("Olmo2Config"),
        **LLAMA_LIKE,
        expect="refused",
        why=r"check 1 \(decomposition\) failed at layer 0.*post-norm.*query/key norms are taken across all heads",
        notes="post-sublayer norms; q/k norms across heads",
        tags=("gqa",),
    ),
    Family(
        "bloom",
        "BLOOM (ALiBi)",
        _cfg("BloomConfig", vocab_size=V, hidden_size=D, n_layer=2, n_head=4, initializer_range=0.1),
        "transformer.h",
        "self_attention.dense",
        "input_layernorm",
        "self_attention.query_key_value",
        "neox",
        expect="refused",
        why=r"check 2 \(recomposition\) failed at layer 0",
        notes="transformer-lens' attention for BLOOM, called one block at a time, departs from the model",
    ),
)

BY_NAME = {f.name: f for f in FAMILIES}


def tokenizer_files() -> Path | None:
    """A folder with SmolLM2's tokenizer.json and tokenizer_config.json (the converted model's, or None)."""
    import os

    env = os.environ.get("CIRCUITDSL_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "circuitdsl"
    d = root / "smollm2-135m"
    return d if (d / "tokenizer.json").is_file() and (d / "tokenizer_config.json").is_file() else None


def build(fam: Family, dest: Path, tokenizer_dir: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-init model of the family (eager attention) with the tokenizer files to `dest`."""
    import torch
    from transformers import AutoModelForCausalLM

    d = Path(dest)
    if (d / "config.json").is_file():
        return d
    torch.manual_seed(seed)
    cfg = fam.config()
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(d))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokenizer_dir) / f, d / f)
    return d
