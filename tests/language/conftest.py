"""Shared fixtures for the language tests: a fake dataset generator and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdsl.datasets import registry

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"

FAKE_FIELDS = ("answer", "parity", "subject")
FAKE_POSITIONS = ("end", "prev", "subject_pos")


def _fake(*, tokenizer, n, seed, length, mode):  # pragma: no cover - never built by the compiler
    raise AssertionError("the compiler must not build datasets")


def register_fake() -> None:
    registry.register(
        "fakegen",
        fields=FAKE_FIELDS,
        positions=FAKE_POSITIONS,
        params={"n": 8, "seed": 0, "length": 6, "mode": "a"},
        description="fake generator for language tests",
    )(_fake)


@pytest.fixture(autouse=True)
def fake_generator():
    register_fake()
    yield
