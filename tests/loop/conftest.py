"""Fixtures for issue 17's researcher loop on the embedded `tiny` model: generated examples written
out as JSONL files (token ids: `tiny` has no tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def write_jsonl(path: Path, examples) -> Path:
    rows = []
    for e in examples:
        row = {
            "tokens": list(e.tokens),
            "answer": list(e.answers),
            "wrong": list(e.wrongs),
            "positions": {k: list(v) if len(v) > 1 else v[0] for k, v in e.positions},
        }
        if e.scored:
            row["scored"] = list(e.scored)
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def induction_files(tmp_path):
    """(clean.jsonl, corrupt.jsonl, clean examples, corrupt examples): induction seed 0 and seed 1, 8 rows."""
    from circuitdsl.datasets import registry

    clean = registry.build("induction", None, {"n": 8, "seed": 0, "length": 8}).examples
    corrupt = registry.build("induction", None, {"n": 8, "seed": 1, "length": 8}).examples
    return (
        write_jsonl(tmp_path / "clean.jsonl", clean),
        write_jsonl(tmp_path / "corrupt.jsonl", corrupt),
        clean,
        corrupt,
    )
