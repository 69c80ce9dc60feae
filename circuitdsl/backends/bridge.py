"""Hugging Face models through transformer-lens 4.3.0's TransformerBridge (MODELS.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from circuitdsl.backends.base import Backend, BackendError, TokenizerAdapter
from circuitdsl.models.shapes import shape_from_config

__all__ = ["load_bridge"]


def load_bridge(model_dir: Path, name: str, device: str = "cpu") -> Backend:
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if not any((model_dir / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        # a directory without tokenizer files boots silently with an empty vocabulary (MODELS.md)
        raise BackendError(f"{model_dir} holds no tokenizer files", "save the tokenizer beside the model (save_pretrained)")
    if not sys.stderr.isatty():  # a tqdm bar per weight group floods CI logs and piped output
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        model = TransformerBridge.boot_transformers(str(model_dir), device=device)
    except Exception as e:  # transformers raises many kinds; report them as a model error
        raise BackendError(f"cannot load {model_dir} with TransformerBridge: {e}", "is it a supported HF model?") from None
    model.enable_compatibility_mode()
    model.set_use_attn_result(True)
    model.set_use_split_qkv_input(True)
    model.eval()
    shape = shape_from_config(cfg)
    d_vocab_out = int(model.cfg.d_vocab_out)

    def unembed(resid):
        with torch.no_grad():
            return model.unembed(model.ln_final(resid))

    tok = getattr(model, "tokenizer", None)
    return Backend(
        name=name,
        kind="bridge",
        model=model,
        shape=shape,
        d_vocab_out=d_vocab_out,
        tokenizer=TokenizerAdapter(tok) if tok is not None else None,
        device=device,
        _extra={"unembed": unembed},
    )
