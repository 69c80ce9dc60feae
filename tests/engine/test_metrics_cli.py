"""Every metric end to end through `circuitdsl check`, on native models whose output vocabulary differs
from the input one (issue 11, point 8): answers are checked against d_vocab_out."""

from __future__ import annotations

import json
import random

import _models
import pytest

from circuitdsl.cli import main

pytestmark = pytest.mark.engine

CIRCUIT = """model "{model}"
dataset D = "{data}"
metric {metric}
edge embed -> a0.1 -> out
edge embed -> out
set completeness.sizes = [1]
set completeness.samples = 1
set completeness.greedy = 0
set bootstrap = 50
"""


def _rows(n, *, d_vocab, answer, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = [rng.randrange(d_vocab) for _ in range(5)]
        out.append({"tokens": t, **answer(t, i)})
    return out


def _project(tmp_path, name, *, d_vocab, d_vocab_out, rows, metric):
    d = tmp_path / name
    _models.random_native(
        d / "model", n_layers=1, n_heads=2, d_model=16, d_head=8, d_vocab=d_vocab, d_vocab_out=d_vocab_out, seed=3
    )
    (d / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "h.circuit").write_text(CIRCUIT.format(model="model", data="d.jsonl", metric=metric))
    return d / "h.circuit"


def _check(path, capsys):
    rc = main(["check", "--format", "json", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, (json.loads(out)[0] if rc in (0, 1) else None), err


def test_answer_outside_a_smaller_output_vocab_is_e414_not_a_traceback(tmp_path, capsys):
    # d_vocab = 12, d_vocab_out = 5: answer 7 is a fine input token but no output
    rows = _rows(8, d_vocab=12, answer=lambda t, i: {"answer": 7 if i == 3 else 1, "wrong": 2})
    rc, _, err = _check(_project(tmp_path, "small", d_vocab=12, d_vocab_out=5, rows=rows, metric="logit_diff"), capsys)
    assert rc == 2 and "E414" in err and "output vocabulary" in err


def test_answer_inside_a_larger_output_vocab_is_accepted(tmp_path, capsys):
    # d_vocab = 6, d_vocab_out = 20: answers 10..19 are valid
    rows = _rows(8, d_vocab=6, answer=lambda t, i: {"answer": 10 + t[0], "wrong": [[17, 18, 19]]})
    rc, r, err = _check(_project(tmp_path, "large", d_vocab=6, d_vocab_out=20, rows=rows, metric="logit_diff"), capsys)
    assert rc == 0, err
    assert r["metric"] == "logit_diff" and r["n"] == 8


@pytest.mark.parametrize("metric", ["margin", "prob", "prob_diff", "accuracy", "logprob", "loss", "kl"])
def test_each_token_metric_runs(tmp_path, capsys, metric):
    rows = _rows(
        8,
        d_vocab=8,
        answer=lambda t, i: (
            {"answer": t[-1], "wrong": [[(t[-1] + 1) % 8, (t[-1] + 2) % 8]]}
            if metric == "prob_diff"
            else {"answer": t[-1], "wrong": (t[-1] + 1) % 8}
        ),
    )
    rc, r, err = _check(_project(tmp_path, metric, d_vocab=8, d_vocab_out=8, rows=rows, metric=metric), capsys)
    assert rc == 0, err
    ex = r["examples"]
    if metric == "accuracy":
        assert all(x["m_model"] in (0.0, 1.0) for x in ex)
    if metric in ("prob", "prob_diff"):
        assert all(-1.0 <= x["m_model"] <= 1.0 for x in ex)
    if metric == "kl":
        assert all(abs(x["m_model"]) < 1e-9 for x in ex)


def test_mse_on_a_numerical_output(tmp_path, capsys):
    rows = _rows(8, d_vocab=8, answer=lambda t, i: {"target": float(t[0]) / 4})
    rc, r, err = _check(_project(tmp_path, "mse", d_vocab=8, d_vocab_out=1, rows=rows, metric="mse"), capsys)
    assert rc == 0, err
    assert r["metric"] == "mse" and all(x["m_model"] <= 0 for x in r["examples"])


def test_mse_on_token_outputs_is_a_diagnostic(tmp_path, capsys):
    rows = _rows(8, d_vocab=8, answer=lambda t, i: {"target": 1.0})
    rc, _, err = _check(_project(tmp_path, "mse_tok", d_vocab=8, d_vocab_out=8, rows=rows, metric="mse"), capsys)
    assert rc == 2 and "E432" in err


def test_answer_set_with_a_single_answer_metric_is_a_diagnostic(tmp_path, capsys):
    rows = _rows(8, d_vocab=8, answer=lambda t, i: {"answer": [[1, 2]], "wrong": 3})
    rc, _, err = _check(_project(tmp_path, "margin_set", d_vocab=8, d_vocab_out=8, rows=rows, metric="margin"), capsys)
    assert rc == 2 and "E431" in err
