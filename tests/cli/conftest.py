"""Fixtures for the command-line tests: small hypotheses on the embedded `tiny` model, run in a
fresh process where the test needs a real exit status or signals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tiny_circuit(
    *, expect: str = "expect recovered >= -100", n: int = 16, model: str = "tiny", dataset: str | None = None
) -> str:
    """A hypothesis on the embedded model that checks in about a second (no completeness search)."""
    data = dataset or f"induction(n = {n}, seed = 0, length = 10, layouts = 1)"
    return f"""model {model}
dataset ind = {data}
metric loss
node a1.0 depends on input
edge embed -> a1.0 -> out
edge embed -> out
set bootstrap = 20
{expect}
"""


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`circuitdsl ARGS` in a fresh interpreter (the real exit status, stdout and stderr apart)."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "circuitdsl", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.fixture
def crash_home(tmp_path, monkeypatch):
    """Crash reports go under tmp_path, not the user's cache."""
    home = tmp_path / "cache"
    monkeypatch.setenv("CIRCUITDSL_CACHE", str(home))
    return home / "crashes"
