"""Parsing, compiling, linting, formatting and drawing never import torch."""

from __future__ import annotations

import subprocess
import sys

from .conftest import FIXTURES, HERE

SCRIPT = f"""
import sys, tempfile, pathlib
sys.path.insert(0, {str(HERE.parent)!r})
from language.conftest import register_fake
register_fake()
from circuitdsl.compiler import compile_file
from circuitdsl.cli import main
from circuitdsl.draw import write_drawing
r = compile_file({str(FIXTURES / "induction_native.circuit")!r})
assert r.hypothesis is not None, r.render()
d = pathlib.Path(tempfile.mkdtemp())
write_drawing(r.hypothesis, d / "g.png", use_graphviz=False)
write_drawing(r.hypothesis, d / "g.dot")
assert main(["lint", {str(FIXTURES / "induction_native.circuit")!r}]) == 0
assert main(["fmt", "--check", {str(FIXTURES / "induction_native.circuit")!r}]) in (0, 1)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformer_lens"))
print("HEAVY", heavy)
"""


def test_no_torch_import():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
