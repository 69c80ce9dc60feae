"""The reference scrub, as the benchmarks and the engine tests call it.

The reference itself is tests/reference/refscrub.py: written from docs/SEMANTICS.md alone, sharing no
code with the engine (its treeification, draws, port sums, backends), one full forward pass with hooks
per treeified node (batched over the root examples of a layout). benchmarks/run.py times it against
the engine; tests/engine/test_reference.py and tests/properties/test_engine_vs_reference.py check that
the engine agrees with it per example.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "tests" / "reference"))

import refscrub  # noqa: E402  (tests/reference/refscrub.py)

__all__ = ["reference_scrub"]


def reference_scrub(backend, datasets, main, h, ablation, seed):
    """Scrubbed logits at each example's scored positions, in dataset order, for a loaded
    `circuitdsl.backends.base.Backend` (only its transformer-lens `model` is used)."""
    return refscrub.reference_scrub(backend.model, datasets, main, h, ablation=ablation, seed=seed)
