"""`--format json` prints one JSON document on stdout, whatever a feature module prints when it is
imported (print() or a raw write to file descriptor 1): that noise goes to stderr."""

from __future__ import annotations

import json

from .conftest import run_cli

NOISY = """import os
import sys

print("a feature module printing on import")
os.write(1, b"raw bytes on fd 1\\n")
sys.stdout.write("and through sys.stdout\\n")


def parity(example):
    return example.tokens[0] % 2
"""


def test_lint_json_stays_json_when_a_feature_module_prints(tmp_path):
    (tmp_path / "noisy.py").write_text(NOISY)
    (tmp_path / "h.circuit").write_text(
        "model tiny\ndataset d = induction(n = 8)\nnode a1.0 depends on noisy:parity\nedge embed -> a1.0 -> out\nedge a9.0 -> out\n"
    )
    r = run_cli("lint", "--format", "json", "h.circuit", cwd=tmp_path)
    assert r.returncode == 2
    data = json.loads(r.stdout)  # the whole of stdout is the document
    assert [d["code"] for d in data if d["severity"] == "error"] == ["E202"]
    assert "a feature module printing on import" in r.stderr and "raw bytes on fd 1" in r.stderr
    assert "Traceback" not in r.stderr
