"""A random circuit of a wired hypothesis's size, checked in C's place, gets a large sufficiency p.

`hypotheses/ioi_smollm2.circuit` is *wired* (`wire backbone, <15 heads>, out`): its random circuits are
15 random heads plus the same backbone with every forward edge among them (docs/TESTS.md, "Random
circuits"). A random circuit put in C's place is exchangeable with the null's draws, so its p-value is
(close to) uniform on {1/(R+1), ..., 1}, never pinned at the smallest value as a real circuit's is.

* default run: the same shape on the tiny model (`wire embed, pos, <2 of 8 heads>, out`), a few random
  circuits as C, each through an ordinary check with its own R draws;
* slow: a random circuit of the IOI file's size on SmolLM2-135M (`pytest -m slow`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from circuitdsl.compiler import compile_file, compile_source  # noqa: E402
from circuitdsl.engine import randcirc, stats  # noqa: E402
from circuitdsl.engine.check import run_check  # noqa: E402
from circuitdsl.ir import NodeKind, TestPlan  # noqa: E402
from circuitdsl.testing import with_sample_count  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

WIRED_TINY = """\
model tiny
dataset ind = induction(n = 48, seed = 0, length = 16, layouts = 4)
metric loss
ablate unclaimed by resample
wire embed, pos, a0.2, a1.1, out
set seed = 0
"""


def _p_of_random_as_c(h, key: str, i: int, r: int) -> float:
    rc = randcirc.random_circuit(h, stats.keyed_rng(4321, key, i), f"random as C {i}")
    # the stand-in has C's shape: as many nodes of each kind, wired like C
    assert randcirc.node_counts(rc) == randcirc.node_counts(h) and randcirc.is_wired(rc)
    res = run_check(
        rc, completeness=False, minimality=False, tests=TestPlan(sufficiency=True, equivalence=False, r=r, seed=0)
    )
    s = res.tests.sufficiency
    assert s.undefined_reason is None and len(s.null) == r
    # p is the documented count over the reported draws (not the engine's own arithmetic)
    closer = sum(abs(1 - v) <= abs(1 - s.observed) + 1e-6 * (1 + abs(s.observed)) for v in s.null)
    assert s.p == pytest.approx((1 + closer) / (1 + r))
    return s.p


def test_random_wired_circuits_in_place_of_c_get_large_p_tiny():
    r = compile_source(WIRED_TINY, "wired_tiny.circuit")
    assert r.hypothesis is not None, r.render("concise")
    h = r.hypothesis
    assert randcirc.is_wired(h) and randcirc.node_counts(h)[NodeKind.HEAD] == 2
    R = 19
    ps = [_p_of_random_as_c(h, "wired tiny", i, R) for i in range(4)]
    print("random wired circuits as C (tiny): sufficiency p =", ps)
    # uniform on {0.05, ..., 1} under the null: mean 0.525; the smallest value is what a real circuit gets
    assert np.mean(ps) >= 0.25 and min(ps) > 1 / (R + 1), ps


@pytest.mark.slow
def test_random_circuit_of_the_ioi_files_size_gets_large_p():
    """SmolLM2-135M: 15 random heads on the wired MLP backbone, under the IOI file's data, metric,
    paired-ABC ablation and treeification, in place of the file's 15 heads. R = 19, N = 16."""
    c = compile_file(ROOT / "hypotheses" / "ioi_smollm2.circuit")
    if c.hypothesis is None:
        pytest.skip("ioi_smollm2.circuit does not compile here: " + c.render("concise"))
    h = with_sample_count(c.hypothesis, 16)
    counts = randcirc.node_counts(h)
    assert counts[NodeKind.HEAD] == 15 and counts[NodeKind.MLP] == 30 and randcirc.is_wired(h)
    R = 19
    p = _p_of_random_as_c(h, "wired ioi", 0, R)
    print("random circuit of the IOI file's size as C: sufficiency p =", p)
    assert p > 0.1, p
