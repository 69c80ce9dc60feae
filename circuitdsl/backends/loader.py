"""`load_backend(model_ref)`: the registry name or path of a model -> a loaded Backend (cached per process)."""

from __future__ import annotations

import json
from pathlib import Path

from circuitdsl.backends.base import Backend, BackendError
from circuitdsl.ir import ModelRef

__all__ = ["load_backend", "clear_cache"]

_CACHE: dict[tuple[str, str], Backend] = {}


def clear_cache() -> None:
    _CACHE.clear()


def _is_native(d: Path) -> bool:
    try:
        cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return str(cfg.get("format", "")).startswith("circuitdsl-native")


def load_backend(model_ref: ModelRef, device: str = "cpu") -> Backend:
    key = (model_ref.resolved, device)
    if key not in _CACHE:
        _CACHE[key] = _load(model_ref, device)
    return _CACHE[key]


def _load(ref: ModelRef, device: str) -> Backend:
    from circuitdsl.models.shapes import TINY_DIR

    if ref.resolved == "tiny":
        if not (TINY_DIR / "config.json").is_file():
            raise BackendError("the embedded model `tiny` is missing", "reinstall circuitdsl")
        return _native(TINY_DIR, "tiny", device)
    if ref.resolved == "smollm2-135m":
        from circuitdsl.models import smollm2  # written by another engineer; imported lazily

        from circuitdsl.backends.bridge import load_bridge

        return load_bridge(Path(smollm2.ensure_hf_dir()), "smollm2-135m", device)
    d = Path(ref.resolved)
    if not (d / "config.json").is_file():
        raise BackendError(f"no config.json in {d}", "a model directory needs a config.json (Hugging Face or native)")
    if _is_native(d):
        return _native(d, ref.name, device)
    from circuitdsl.backends.bridge import load_bridge

    return load_bridge(d, ref.name, device)


def _native(d: Path, name: str, device: str) -> Backend:
    from circuitdsl.backends.native import load_native
    from circuitdsl.models.shapes import shape_from_config

    model = load_native(d, device)
    cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    vocab = cfg.get("output_vocab")
    return Backend(
        name=name,
        kind="native",
        model=model,
        shape=shape_from_config(cfg),
        d_vocab_out=model.cfg.d_vocab_out,
        tokenizer=None,
        device=device,
        vocab_strings=tuple(vocab) if vocab else None,
        _extra={"unembed": model.unembed},
    )
