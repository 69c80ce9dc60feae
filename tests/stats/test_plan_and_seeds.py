"""`set tests.*` in a file, `--seeds` parsing and `--vary-data` (dataset resamples), without the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdsl.compiler import compile_source
from circuitdsl.engine.nulltests import wanted_tests
from circuitdsl.ir import TestPlan
from circuitdsl.stability import parse_seeds, vary_data

ROOT = Path(__file__).resolve().parents[2]
IOI = (ROOT / "hypotheses" / "ioi_smollm2.circuit").read_text()
TINY = """\
model tiny
dataset ind = induction(n = 8, seed = 2, length = 16, layouts = 4)
metric loss
ablate unclaimed by resample
wire embed, pos, a0.2, a1.1, out
"""


def _h(text):
    r = compile_source(text, "h.circuit")
    assert r.hypothesis is not None, r.render("concise")
    return r.hypothesis


def test_tests_settings_in_the_file():
    h = _h(
        TINY + "set tests.necessity = true\nset tests.equivalence = false\nset tests.r = 7\n"
        "set tests.seed = 5\nset tests.eps = 0.2\n"
    )
    assert h.tests == TestPlan(necessity=True, equivalence=False, r=7, seed=5, eps=0.2)
    assert wanted_tests(h) == ("necessity",)
    # an expect on a p-value runs its test; --no-tests (follow_expects=False) does not
    h2 = _h(TINY + "set tests.equivalence = false\nexpect sufficiency.p <= 0.05\n")
    assert wanted_tests(h2) == ("sufficiency",)
    assert wanted_tests(h2, TestPlan(equivalence=False, follow_expects=False)) == ()
    assert _h(TINY).tests == TestPlan() and wanted_tests(_h(TINY)) == ("equivalence",)


@pytest.mark.parametrize(
    "bad", ["set tests.r = 0\n", "set tests.eps = 0.5\n", "set tests.seed = -1\n", "set tests.rr = 3\n"]
)
def test_bad_tests_settings_are_diagnostics(bad):
    r = compile_source(TINY + bad, "h.circuit")
    assert r.hypothesis is None and r.diagnostics and "h.circuit:6:" in r.render("concise")


def test_parse_seeds():
    assert parse_seeds("0..3,10") == (0, 1, 2, 3, 10)
    assert parse_seeds("7, 3, 7") == (7, 3)
    for bad in ("3..1", "a", "-1", ""):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_vary_data_moves_paired_generators_together():
    h = _h(IOI)
    seeds = {d.name: dict(d.args)["seed"] for d in h.datasets}
    assert seeds == {"ioi": 0, "abc": 0}
    moved = vary_data(h, 3)
    assert {d.name: dict(d.args)["seed"] for d in moved.datasets} == {"ioi": 3, "abc": 3}
    assert [dict(d.args)["n"] for d in moved.datasets] == [32, 32] and vary_data(h, 0) is h
    # a generator whose file gives no seed moves from its default
    t = _h(TINY.replace("seed = 2, ", ""))
    assert dict(vary_data(t, 4).datasets[0].args)["seed"] == 4
