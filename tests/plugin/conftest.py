"""Fixtures for the plugin tests (pytester comes from `-p pytester` in pyproject's addopts): tiny-model .circuit texts, and the copy-paste example of docs/CI.md (not collected here:
`test_ci_example.py` runs it in its own pytest session)."""

from __future__ import annotations

from pathlib import Path

import pytest

collect_ignore = ["example"]

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "example"


def tiny_circuit(*, expects: str, feature: str = "field B", n: int = 32, extra: str = "") -> str:
    """An induction hypothesis on the embedded model, small enough to check in about a second."""
    return f"""model tiny
dataset ind = induction(n = {n}, seed = 0, length = 10, layouts = 1)
metric loss
group prev_token = a0.0, a0.2
group induction = a1.0, a1.1, a1.2, a1.3
node embed depends on input
node pos depends on input
node prev_token depends on token at A1
node induction depends on {feature}
edge pos -> prev_token.q, prev_token.k
edge embed -> prev_token.v
edge prev_token -> induction.k
edge embed -> induction.q, induction.v
edge induction -> out
{extra}
{expects}
"""


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    # Import the engine (and transformer-lens, which registers pyarrow types once per process) before
    # any in-process pytester run: pytester restores sys.modules after each run, and re-importing
    # them there would fail. Loading the tiny model here also caches it for every run.
    import circuitdsl.engine.check
    import circuitdsl.engine.scrub  # noqa: F401
    from circuitdsl.backends.loader import load_backend
    from circuitdsl.testing import compile_hypothesis

    load_backend(compile_hypothesis(tiny_circuit(expects="")).model)
