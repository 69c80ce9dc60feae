"""The statistical tests end to end on the embedded tiny model (SEMANTICS.md section 5; docs/TESTS.md).

The refined induction hypothesis beats every random circuit of its size (smallest possible sufficiency p);
a random circuit put in its place gets a large p; the tests share the check's Engine (no extra forward
pass); results survive JSON; `expect` clauses on p-values, --tests, --no-tests and --seeds through the CLI.
Kept small (N = 64, R = 19) so the file runs in well under a minute.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from circuitdsl.cli import main  # noqa: E402
from circuitdsl.compiler import compile_source  # noqa: E402
from circuitdsl.engine import randcirc, stats  # noqa: E402
from circuitdsl.engine.check import run_check  # noqa: E402
from circuitdsl.engine.nulltests import equivalence_test  # noqa: E402
from circuitdsl.ir import TestPlan  # noqa: E402
from circuitdsl.results import CheckResult  # noqa: E402
from circuitdsl.testing import with_sample_count  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
R = 19
N = 64


REFINED = ROOT / "hypotheses" / "induction_refined.circuit"


def _refined_text() -> str:
    """The zoo file without its own test settings and p-value expect (these tests set their own)."""
    lines = REFINED.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.startswith(("set tests.", "expect sufficiency.p"))]
    assert len(lines) - len(kept) == 3, "the zoo file's tests block changed: update this helper"
    return "".join(kept)


@pytest.fixture(scope="module")
def refined():
    r = compile_source(_refined_text(), str(REFINED))
    assert r.hypothesis is not None, r.render("concise")
    return with_sample_count(r.hypothesis, N)


@pytest.fixture(scope="module")
def refined_result(refined):
    return run_check(
        refined, completeness=False, tests=TestPlan(sufficiency=True, necessity=True, minimality=True, r=R)
    )


def test_refined_hypothesis_beats_every_random_circuit(refined_result):
    t = refined_result.tests
    s = t.sufficiency
    assert s.undefined_reason is None and len(s.null) == R
    assert s.observed == refined_result.recovered.value
    assert s.p == pytest.approx(1 / (R + 1))  # the smallest p R draws can give
    assert max(abs(1 - v) for v in s.null) > abs(1 - s.observed)
    # the p-value is the formula applied to the reported draws (an independent count)
    closer = sum(abs(1 - v) <= abs(1 - s.observed) for v in s.null)
    assert s.p == pytest.approx((1 + closer) / (1 + R))
    assert refined_result.score("sufficiency.p") == s.p


def test_random_circuits_in_place_of_c_get_large_p(refined):
    ps = []
    for i in range(3):
        rc = randcirc.random_circuit(refined, stats.keyed_rng(1234, "as C", i), "random as C")
        r = run_check(rc, completeness=False, tests=TestPlan(sufficiency=True, equivalence=False, r=R, seed=0))
        assert r.tests.sufficiency.undefined_reason is None
        ps.append(r.tests.sufficiency.p)
    # under the null p is uniform on {1/20, ..., 1}: these three are far from the refined hypothesis's 0.05
    assert np.mean(ps) >= 0.25 and min(ps) > 1 / (R + 1), ps
    print("random circuits as C: sufficiency p =", ps)


def test_necessity_and_minimality_are_reported_with_their_nulls(refined_result):
    t = refined_result.tests
    n = t.necessity
    assert n.undefined_reason is None and len(n.null) == R and n.direction == "greater"  # loss: higher is worse
    assert n.p == pytest.approx((1 + sum(v >= n.observed - 1e-6 * (1 + abs(n.observed)) for v in n.null)) / (1 + R))
    m = t.minimality
    assert m.undefined_reason is None
    assert [x.node for x in m.nodes] == [x.node for x in refined_result.minimality.removals]
    assert dict(m.null).keys() == {"embed", "pos", "head"}
    raw = [x.p for x in m.nodes]
    assert [x.p_holm for x in m.nodes] == pytest.approx(list(stats.holm(raw)))
    assert m.p == max(x.p_holm for x in m.nodes)
    # observed costs are the check's minimality removals, signed so that positive means "removing it hurts"
    for x, rem in zip(m.nodes, refined_result.minimality.removals):
        assert x.observed == pytest.approx(-rem.raw)  # loss: lower is better


def test_tests_share_the_engine(refined, refined_result):
    plain = run_check(refined, completeness=False, tests=TestPlan(equivalence=False))
    assert plain.tests is None
    assert dict(plain.cost)["forward_passes"] == dict(refined_result.cost)["forward_passes"]  # clean runs only
    t = refined_result.tests
    # sufficiency R + necessity R + 1 + minimality R per kind (embed, pos, head); random circuits are shared
    assert t.scrubs == R + (R + 1) + 3 * R
    assert (t.sufficiency.scrubs, t.necessity.scrubs, t.minimality.scrubs) == (R, R + 1, 3 * R)
    assert dict(refined_result.cost)["test_scrubs"] == t.scrubs and t.rows > 0 and t.pass_nodes == 8


def test_json_round_trip_keeps_the_tests(refined_result):
    d = json.loads(json.dumps(refined_result.to_json()))
    back = CheckResult.from_json(d)
    assert back.tests == refined_result.tests
    old = {k: v for k, v in d.items() if k != "tests"}  # a result written before the tests existed
    assert CheckResult.from_json(old).tests is None and CheckResult.from_json(old).score("sufficiency.p") is None


def test_equivalence_counts_and_ties():
    m_model = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    m_scrub = np.array([1.5, 2.0 + 1e-9, 2.0, 4.5, 6.0])
    e = equivalence_test(m_model, m_scrub, 0.1)
    assert (e.above, e.ties, e.n) == (3, 1, 4)
    assert (e.p_lower, e.p_upper, e.p) == pytest.approx(stats.equivalence_p(3, 4, 0.1))
    assert equivalence_test(m_model, m_model, 0.1).p is None


def _circuit(tmp_path, extra: str) -> Path:
    text = _refined_text()
    text = text.replace("n = 512", f"n = {N}").replace("expect incompleteness <= 0.35\n", "")
    p = tmp_path / "h.circuit"
    p.write_text(text + extra)
    return p


def test_cli_expect_on_p_runs_the_test(tmp_path, capsys):
    p = _circuit(tmp_path, "set tests.r = 4\nexpect sufficiency.p <= 0.25\nexpect equivalence.p >= 0.5\n")
    code = main(["check", str(p), "--no-completeness", "--format", "json"])
    out, err = capsys.readouterr()
    res = json.loads(out)[0]
    assert code == 0, err
    assert res["tests"]["sufficiency"]["p"] == pytest.approx(1 / 5) and res["tests"]["necessity"] is None
    assert [e["passed"] for e in res["expects"]] == [True, True, True, True]
    code = main(["check", str(p), "--no-completeness", "--no-tests"])
    out, err = capsys.readouterr()
    assert code == 1 and "undefined: the sufficiency test did not run" in out


def test_cli_tests_flag_text_report(tmp_path, capsys):
    p = _circuit(tmp_path, "")
    code = main(["check", str(p), "--no-completeness", "--tests", "3", "--tests-seed", "7"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "R = 3 null draws, seed 7" in out and "sufficiency" in out and "necessity" in out
    assert "minimality test per node" in out and "forward passes of one example" in out
    assert main(["check", str(p), "--tests", "-2"]) == 2
    assert "E902" in capsys.readouterr().err


def test_cli_seeds_reports_spread_and_every_seed(tmp_path, capsys):
    p = _circuit(tmp_path, "expect recovered >= 0.9\nexpect recovered >= 1.006\n")
    code = main(["check", str(p), "--no-completeness", "--no-tests", "--seeds", "0..2", "--format", "json"])
    out, err = capsys.readouterr()
    d = json.loads(out)[0]
    assert d["schema"] == "circuitdsl-stability/1" and d["seeds"] == [0, 1, 2]
    rec = next(s for s in d["scores"] if s["score"] == "recovered")
    vals = [r["recovered"]["value"] for r in d["results"]]
    assert rec["values"] == vals and rec["min"] == min(vals) and rec["max"] == max(vals)
    assert len(set(vals)) == 3  # the draws move with the seed
    by_clause = {e["clause"]: e for e in d["expects"]}
    assert by_clause["recovered >= 0.9"]["every_seed"]
    held = by_clause["recovered >= 1.006"]["held"]
    assert held == sum(v >= 1.006 for v in vals)
    assert code == (0 if held == 3 else 1)
    assert main(["check", str(p), "--seeds", "0..2", "--seed", "1"]) == 2
    assert main(["check", str(p), "--vary-data"]) == 2
    assert main(["check", str(p), "--seeds", "3..1"]) == 2


def test_plan_from_file_settings(refined):
    assert refined.tests == TestPlan()
    h = dataclasses.replace(refined, tests=TestPlan(sufficiency=False, equivalence=False))
    assert run_check(h, completeness=False).tests is None


def test_html_report_draws_each_null_with_the_observed_value(refined_result):
    """The HTML report's Tests section: one histogram per null, the observed statistic marked in it."""
    import base64
    import re

    from circuitdsl.report.html import render_html

    page = render_html(refined_result, source_text=None)
    imgs = dict(re.findall(r'<img class="chart" alt="([^"]+)" src="data:image/svg\+xml;base64,([^"]+)"', page))
    t = refined_result.tests
    for name in ("sufficiency", "necessity"):
        x = t.get(name)
        svg = base64.b64decode(imgs[f"{name} null distribution"]).decode("utf-8")
        assert f"null ({R} draws)" in svg and f"observed {x.observed:.4g}" in svg and f"p = {x.p:.3g}" in svg
    e = t.equivalence
    svg = base64.b64decode(imgs["equivalence nulls"]).decode("utf-8")
    assert f"observed {e.above}" in svg and f"Binomial({e.n}, 0.4)" in svg and f"Binomial({e.n}, 0.6)" in svg
    for kind in ("embed", "pos", "head"):
        assert f"minimality null {kind}" in imgs
    assert "<h3>minimality test per node</h3>" in page
