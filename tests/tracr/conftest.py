"""Fixtures of the tracr ground-truth tests: each compiled program's true hypothesis, its model and its
dataset (hypotheses/tracr, built by scripts/compile_tracr.py), loaded once per session."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the independent reference scrub: tests/reference/refscrub.py (`import refscrub`)
sys.path.insert(0, str(ROOT / "tests" / "reference"))

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

TRACR = ROOT / "hypotheses" / "tracr"


class Program:
    """One compiled program: its true hypothesis `h`, the loaded backend, the dataset `D`, the model's clean
    logits at the scored positions (plain forward passes, not the engine), and engines per ablation."""

    def __init__(self, name: str):
        from circuitdsl.backends.loader import load_backend
        from circuitdsl.compiler import compile_file
        from circuitdsl.datasets import jsonl

        self.name = name
        self.path = TRACR / f"{name}.circuit"
        res = compile_file(self.path)
        assert res.ok, res.render()
        self.h = res.hypothesis
        self.model_dir = Path(self.h.model.resolved)
        self.backend = load_backend(self.h.model)
        spec = self.h.datasets[0]
        self.D = jsonl.load(Path(spec.source), None, spec.name)
        self.datasets = {spec.name: self.D}
        self._engines: dict = {}
        with torch.no_grad():
            self.clean = [self.forward(e.tokens)[list(e.scored_positions)] for e in self.D.examples]

    def forward(self, tokens) -> torch.Tensor:
        """The model's own logits [positions, vocabulary] on one token sequence."""
        with torch.no_grad():
            return self.backend.model(torch.tensor([list(tokens)]))[0]

    def scrub(self, h) -> list:
        """The engine's scrubbed logits at the scored positions, under h's own ablation and seed."""
        from circuitdsl.engine.scrub import Engine

        key = (str(h.ablation), h.seed)
        if key not in self._engines:
            self._engines[key] = Engine(self.backend, self.datasets, self.h.main_dataset, h.ablation, seed=h.seed)
        with torch.no_grad():
            return list(self._engines[key].scrub(h).logits)

    def close(self) -> None:
        for e in self._engines.values():
            e.close()


@pytest.fixture(scope="session")
def program():
    """name -> Program (built once)."""
    made: dict[str, Program] = {}

    @functools.cache
    def get(name: str) -> Program:
        made[name] = Program(name)
        return made[name]

    yield get
    for p in made.values():
        p.close()
