"""Faithfulness curves on the tiny model, and the `curve` and `mib` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from circuitdsl.cli import main  # noqa: E402
from circuitdsl.compiler import compile_file  # noqa: E402
from circuitdsl.engine import stats  # noqa: E402
from circuitdsl.engine.check import run_check  # noqa: E402
from circuitdsl.engine.curves import Curve, curve_hypothesis, faithfulness_curve  # noqa: E402
from circuitdsl.ir import TestPlan  # noqa: E402
from circuitdsl.mib import Ranking, model_edges  # noqa: E402
from circuitdsl.testing import with_sample_count  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
N = 64


@pytest.fixture(scope="module")
def refined():
    return with_sample_count(compile_file(ROOT / "hypotheses" / "induction_refined.circuit").hypothesis, N)


@pytest.fixture(scope="module")
def curve(refined):
    # the refined circuit's edges first (score 1), everything else after (score 0)
    return faithfulness_curve(refined, Ranking({e: 1.0 for e in refined.edges}, sources=("C first",)))


def test_curve_points_and_areas(refined, curve):
    assert curve.n_edges == 106 and [p.k for p in curve.points] == list(stats.grid_counts(106))
    assert curve.points[0].f == 0.0  # no edge: the baseline itself
    assert curve.points[-1].f == pytest.approx(1.0, abs=1e-9)  # every edge: the model
    assert curve.undefined_reason is None and curve.scrubs == 11
    areas = stats.curve_areas(stats.GRID, [p.f for p in curve.points])
    assert (curve.cpr, curve.cmd, curve.cpr_log, curve.cmd_log) == (
        areas["cpr"],
        areas["cmd"],
        areas["cpr_log"],
        areas["cmd_log"],
    )
    assert curve.circuit_fraction == pytest.approx(33 / 106)


def test_a_point_is_the_recovered_of_its_circuit(refined, curve):
    """f(k) is recovered of the top-k circuit scored by an ordinary check (an independent code path)."""
    order = Ranking({e: 1.0 for e in refined.edges}).ranked(model_edges(refined.model.shape))
    p = curve.points[7]  # 20%: 21 edges of C
    assert p.k == 21
    hk = curve_hypothesis(refined, order[:21], "top 21")
    r = run_check(hk, completeness=False, tests=TestPlan(equivalence=False))
    assert p.f == pytest.approx(r.recovered.value, rel=1e-9)
    assert p.f_raw == pytest.approx(r.f_scrubbed, rel=1e-9) and p.nodes == len(hk.claims)


def test_curve_json_round_trip(curve):
    assert Curve.from_json(json.loads(json.dumps(curve.to_json()))) == curve


def test_cli_curve_and_mib_round_trip(tmp_path, capsys):
    src = (ROOT / "hypotheses" / "induction_refined.circuit").read_text().replace("n = 512", f"n = {N}")
    f = tmp_path / "h.circuit"
    f.write_text(src)
    assert main(["mib", "export", str(f), "-o", str(tmp_path / "g.json")]) == 0
    err = capsys.readouterr().err
    assert "33 in the graph" in err and "no place for features" in err
    assert (
        main(["mib", "import", str(tmp_path / "g.json"), "--like", str(f), "-o", str(tmp_path / "back.circuit")]) == 0
    )
    back = compile_file(tmp_path / "back.circuit").hypothesis
    assert back is not None and len(back.edges) == 50  # embed and pos both stand for MIB's input
    assert main(["mib", "export", str(tmp_path / "back.circuit"), "-o", str(tmp_path / "g2.json")]) == 0
    assert json.loads((tmp_path / "g2.json").read_text()) == json.loads((tmp_path / "g.json").read_text())
    capsys.readouterr()
    code = main(
        [
            "curve",
            str(f),
            "--scores",
            str(tmp_path / "g.json"),
            "-o",
            str(tmp_path / "c.png"),
            "--json",
            str(tmp_path / "c.json"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "CPR" in out and "CMD" in out and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    c = Curve.from_json(json.loads((tmp_path / "c.json").read_text()))
    assert c.points[-1].f == pytest.approx(1.0, abs=1e-9) and c.ranking == (str(tmp_path / "g.json"),)
    (tmp_path / "bad.csv").write_text("edge,score\na1.0 -> a0.0.q,1\n")
    assert main(["curve", str(f), "--scores", str(tmp_path / "bad.csv")]) == 2
    assert "E920" in capsys.readouterr().err
    assert main(["mib", "import", str(tmp_path / "bad.csv"), "--like", str(f), "-o", str(tmp_path / "x.circuit")]) == 2
    assert main(["mib", "export", str(f), "-o", str(f)]) == 2  # an input is never overwritten (E906)
