"""Fixtures of the reference tests: tiny models built once per session (tests/reference/refmodels.py)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ref_model(tmp_path_factory):
    """name -> (model directory, loaded circuitdsl Backend); names as in refmodels.MODELS."""
    import refcases as C
    import refmodels

    from circuitdsl.backends.loader import load_backend

    root = tmp_path_factory.mktemp("refmodels")

    @functools.cache
    def get(name):
        d = refmodels.model_dir(name, root)
        return d, load_backend(C.build(d, [], []).model)

    return get
