"""`expect` clauses on p-values become pytest items like any other clause, and a failing one explains the null."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

CIRCUIT = """model tiny
dataset ind = induction(n = 32, seed = 0, length = 10, layouts = 1)
metric loss
group prev_token = a0.0, a0.2
group induction = a1.0, a1.1, a1.2, a1.3
node prev_token depends on token at A1
node induction depends on field B
edge pos -> prev_token.q, prev_token.k
edge embed -> prev_token.v
edge prev_token -> induction.k
edge embed -> induction.q, induction.v
edge induction -> out
set tests.r = 4
expect sufficiency.p <= 0.5
expect sufficiency.p <= 0.01
"""


def test_p_value_expects_are_items(pytester):
    pytester.makepyprojecttoml('[tool.circuitdsl]\npaths = ["hyps"]\n')
    pytester.mkdir("hyps")
    (pytester.path / "hyps" / "t.circuit").write_text(CIRCUIT)
    r = pytester.runpytest("-q", "-p", "no:cacheprovider", "-o", "addopts=")
    out = r.stdout.str()
    r.assert_outcomes(passed=1, failed=1)
    assert "sufficiency.p <= 0.01 failed" in out
    assert "sufficiency.p = 0.2, expected <= 0.01" in out  # 4 draws: the smallest p is 1/5
    assert "sufficiency: observed" in out and "against 4 null draws" in out
