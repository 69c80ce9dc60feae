"""Issue 11, point 4, end to end: `a0.0 at A1 -> a1.0.q` with a1.0 `at end` is a diagnostic naming the edge
(it used to check clean and change nothing); claimed through `wire`, a note in the report."""

from __future__ import annotations

import json

import pytest

from circuitdsl.cli import main

pytestmark = pytest.mark.engine

HEAD = """model tiny
dataset ind = induction(n = 16, seed = 0, length = 10, layouts = 2)
metric loss
node a0.0 at A1 depends on token at A1
node a1.0 at end depends on field B
set completeness.samples = 0
set completeness.greedy = 0
set bootstrap = 20
"""


def _run(tmp_path, capsys, body):
    p = tmp_path / "h.circuit"
    p.write_text(HEAD + body)
    rc = main(["check", "--format", "json", str(p)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_q_edge_between_positions_that_never_meet_is_an_error(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, "edge embed -> a0.0\nedge a0.0 -> a1.0.q\nedge a1.0 -> out\n")
    assert rc == 2 and json.loads(out) == [] and "Traceback" not in err
    assert "error[E242]" in err and "a0.0 -> a1.0.q" in err and "h.circuit:10:6" in err


def test_k_edge_between_the_same_positions_is_fine(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, "edge embed -> a0.0\nedge a0.0 -> a1.0.k\nedge a1.0 -> out\n")
    assert rc == 0, err
    assert not any("carries nothing" in n for n in json.loads(out)[0]["notes"])


def test_wire_claims_it_with_a_note(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, "edge embed -> a0.0\nwire a0.0, a1.0\nedge a1.0 -> out\n")
    assert rc == 0, err
    notes = json.loads(out)[0]["notes"]
    assert any("a0.0 -> a1.0.q (claimed by `wire`) carries nothing on every example" in n for n in notes)
