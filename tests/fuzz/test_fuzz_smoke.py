"""A smoke subset of scripts/fuzz.py in the default run: every named hazard of issue 18 (nesting 1,000
deep, 5,000-digit numbers, impossible paths, NUL, invalid UTF-8, CRLF, a BOM, each character
`splitlines` breaks at, a megabyte, thousands of errors, a feature module printing on import), a few
dozen seeded mutations and a few hostile JSONL datasets checked on the tiny model. Every run must end
with a documented exit code, no traceback, valid JSON from `--format json`, bounded output, and `fmt`
keeping every comment and string. The full run: `python scripts/fuzz.py --files 10000`."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("circuitdsl_fuzz_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


def _run(fuzz, cases, work):
    runs = fuzz.run_all(cases, work, time_limit=240, memory_mb=3072, jobs=1, log=lambda m: None)
    summary = fuzz.summarize(runs, cases)
    assert summary["findings"] == 0, json.dumps(summary["examples"], indent=2)
    return summary


def test_every_named_hazard(fuzz, tmp_path):
    cases = fuzz.hostile_circuits(tmp_path / "hostile", small=True)
    names = {c.mutations[0] for c in cases}
    assert {"deep_feature", "int_5000_digits", "nul_path", "invalid_utf8", "crlf", "bom", "one_mb", "printing_module",
            "long_import"} <= names and sum(n.startswith("breaker_comment_") for n in names) == 8  # fmt: skip
    s = _run(fuzz, cases, tmp_path)
    assert s["runs"] == 4 * len(cases) and set(s["exit_codes"]) == {"lint", "lint-json", "fmt-check", "fmt"}


def test_seeded_mutations(fuzz, tmp_path):
    _run(fuzz, fuzz.generate_circuits(30, 18, tmp_path / "circuits"), tmp_path)


@pytest.mark.engine
def test_hostile_datasets_on_the_tiny_model(fuzz, tmp_path):
    s = _run(fuzz, fuzz.generate_datasets(4, 18, tmp_path / "datasets"), tmp_path)
    assert s["exit_codes"]["check"]
