"""Issue 11, point 3, end to end: `circuitdsl check a/h.circuit b/h.circuit` where a/ and b/ each hold a
`feats.py` scores each file with its own function (as when checked alone)."""

from __future__ import annotations

import json

import pytest

from circuitdsl.cli import main

pytestmark = pytest.mark.engine

CIRCUIT = """model tiny
dataset ind = induction(n = 24, seed = 0, length = 10, layouts = 1)
metric loss
node a1.0 depends on feats:f
edge embed -> a1.0 -> out
edge embed -> out
set completeness.samples = 0
set completeness.greedy = 0
set bootstrap = 20
"""


def test_two_files_two_feats_py_in_one_process(tmp_path, capsys):
    bodies = {"a": "def f(example):\n    return example.field('B')\n", "b": "def f(example):\n    return ()\n"}
    for name, body in bodies.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "feats.py").write_text(body)
        (tmp_path / name / "h.circuit").write_text(CIRCUIT)
    a, b = str(tmp_path / "a" / "h.circuit"), str(tmp_path / "b" / "h.circuit")

    def check(*files):
        rc = main(["check", "--format", "json", *files])
        out, err = capsys.readouterr()
        assert rc in (0, 1), err
        return [r["f_scrubbed"] for r in json.loads(out)]

    both = check(a, b)
    assert both[0] != both[1]
    assert check(b) == [both[1]] and check(a) == [both[0]]
    assert check(b, a) == [both[1], both[0]]
