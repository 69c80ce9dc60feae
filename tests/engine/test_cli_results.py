"""`circuitdsl check` end to end on a tiny native model + JSONL dataset; the JSON result; scores."""

from __future__ import annotations

import json
import random

import _models
import numpy as np
import pytest

from circuitdsl.cli import main
from circuitdsl.engine.scores import recovered
from circuitdsl.results import CheckResult, write_json_atomic

pytestmark = pytest.mark.engine

CIRCUIT = """model "model"
dataset D = "d.jsonl"
metric logit_diff
node a0.1 depends on field par
edge embed -> a0.1 -> out
edge embed -> out
set completeness.sizes = [1]
set completeness.samples = 2
set completeness.greedy = 1
set bootstrap = 100
expect recovered >= {thr}
expect kl <= 100
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    _models.random_native(d / "model", n_layers=2, n_heads=2, d_model=16, d_head=8, d_vocab=12, seed=5)
    import torch

    from circuitdsl.backends.native import load_native

    model = load_native(d / "model")
    rng = random.Random(0)
    with open(d / "d.jsonl", "w") as f:
        for _ in range(12):
            t = [rng.randrange(12) for _ in range(5)]
            # answer: the model's own top token, wrong: its bottom one, so that F(model) - F(baseline) is a real
            # gap (more than two standard errors: SEMANTICS section 4), not noise
            with torch.no_grad():
                lg = model(torch.tensor([t]))[0, -1]
            ans, wrong = int(lg.argmax()), int(lg.argmin())
            f.write(
                json.dumps(
                    {"tokens": t, "answer": ans, "wrong": wrong, "positions": {"first": 0, "last": 4}, "par": t[0] % 2}
                )
                + "\n"
            )
    (d / "pass.circuit").write_text(CIRCUIT.format(thr=-100))
    (d / "fail.circuit").write_text(CIRCUIT.format(thr=100))
    (d / "badpos.circuit").write_text(
        CIRCUIT.format(thr=0).replace("node a0.1 depends on field par", "node a0.1 depends on field nosuch")
    )
    return d


def test_check_text_report_and_exit_codes(project, capsys):
    assert main(["check", str(project / "pass.circuit")]) == 0
    out, err = capsys.readouterr()
    assert "recovered" in out and "F(baseline)" in out and "PASS expect recovered" in out
    assert "logit_diff" in out and "resample" in out
    assert main(["check", str(project / "fail.circuit")]) == 1
    out, err = capsys.readouterr()
    assert "FAIL expect recovered >= 100" in out
    assert main(["check", str(project / "badpos.circuit")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "error[" in err and "Traceback" not in err
    assert main(["check", str(project / "missing.circuit")]) == 2
    assert main(["check", "--batch-size", "0", str(project / "pass.circuit")]) == 2


def test_check_json_carries_every_number(project, capsys, tmp_path):
    out_path = tmp_path / "sub" / "r.json"
    rc = main(["check", str(project / "pass.circuit"), "--format", "json", "--json-out", str(out_path), "--seed", "3"])
    assert rc == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert json.loads(out_path.read_text()) == data
    r = data[0]
    for key in (
        "f_model",
        "f_scrubbed",
        "f_baseline",
        "mean_abs_delta",
        "median_abs_delta",
        "p90_abs_delta",
        "kl",
        "reused_class_of_one",
        "seed",
        "n",
        "model",
        "metric",
        "ablation",
        "timings",
        "notes",
        "cost",
    ):
        assert key in r, key
    assert r["seed"] == 3 and r["n"] == 12 and r["metric"] == "logit_diff" and r["ablation"] == "resample"
    assert set(r["recovered"]) >= {"value", "lower", "upper", "undefined_reason", "resamples"}
    assert r["recovered"]["lower"] <= r["recovered"]["value"] <= r["recovered"]["upper"]
    comp = r["completeness"]
    assert comp["worst"] is not None and len(comp["trials"]) >= 2 and comp["sizes"] == [1]
    assert {x["node"] for x in r["minimality"]["removals"]} == {"embed", "a0.1"}
    assert len(r["examples"]) == 12 and set(r["examples"][0]) >= {"id", "tokens", "m_model", "m_scrubbed", "m_baseline"}
    assert [x["passed"] for x in r["expects"]] == [True, True]
    # numbers agree with their definitions
    ex = r["examples"]
    assert abs(np.mean([x["m_model"] for x in ex]) - r["f_model"]) < 1e-9
    assert abs(np.mean([abs(x["m_scrubbed"] - x["m_model"]) for x in ex]) - r["mean_abs_delta"]) < 1e-9
    rec = (r["f_scrubbed"] - r["f_baseline"]) / (r["f_model"] - r["f_baseline"])
    assert abs(rec - r["recovered"]["value"]) < 1e-9
    back = CheckResult.from_json(r)
    assert back.to_json() == r


def test_recovered_undefined_and_interval():
    m = np.array([1.0, 2.0, 3.0, 4.0])
    r = recovered(m, m, m.copy(), resamples=100, seed=0)
    assert r.value is None and "nothing to recover" in r.undefined_reason
    rng = np.random.default_rng(0)
    mm, mb = rng.normal(3, 1, 50), rng.normal(0, 1, 50)
    ms = (mm + mb) / 2
    r = recovered(mm, ms, mb, resamples=500, seed=0)
    assert abs(r.value - 0.5) < 1e-9 and r.lower < 0.5 < r.upper
    assert recovered(mm, ms, mb, resamples=500, seed=0) == r


def test_atomic_write(tmp_path):
    p = tmp_path / "x.json"
    write_json_atomic(p, {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]
