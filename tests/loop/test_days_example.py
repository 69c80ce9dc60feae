"""The README's second worked example ships in examples/days: its data files are what make_data.py writes,
they pair row by row, and the .circuit file lints (no model is loaded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from circuitdsl.compiler import compile_file
from circuitdsl.datasets.jsonl import read_schema

DAYS = Path(__file__).resolve().parents[2] / "examples" / "days"


def test_data_files_are_what_the_script_writes(tmp_path):
    script = tmp_path / "make_data.py"
    script.write_text((DAYS / "make_data.py").read_text())
    subprocess.run([sys.executable, str(script)], check=True, cwd=tmp_path)
    for name in ("succ.jsonl", "succ_shift.jsonl"):
        assert (tmp_path / name).read_text() == (DAYS / name).read_text()


def test_rows_pair_and_name_their_spans():
    clean = [json.loads(x) for x in (DAYS / "succ.jsonl").read_text().splitlines()]
    shifted = [json.loads(x) for x in (DAYS / "succ_shift.jsonl").read_text().splitlines()]
    assert len(clean) == len(shifted) == 28
    assert read_schema(DAYS / "succ.jsonl") == (("start",), ("D1", "D2", "D3", "END"))
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    for c, s in zip(clean, shifted):
        assert (c["answer"], c["wrong"]) == (s["answer"], s["wrong"])  # the clean answers, kept for pairing
        last = s["text"].split("[[D3:")[1].split("]]")[0]
        assert days[(days.index(last) + 1) % 7] == c["wrong"].strip()  # what the shifted prompt makes the model say


def test_circuit_lints():
    r = compile_file(DAYS / "succ.circuit")
    assert r.hypothesis is not None, r.render()
    assert {d.name for d in r.hypothesis.datasets} == {"clean", "corrupt"}
