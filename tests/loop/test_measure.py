"""`circuitdsl measure` against plain PyTorch: the tiny model's own nn.Module forward (not the backend the
command runs) and the metrics computed by hand from its logits (SEMANTICS.md section 4)."""

from __future__ import annotations

import json

import pytest
import torch

from circuitdsl.cli import main


def _by_hand(tokens, answer, wrong):
    from circuitdsl.backends.native import load_native
    from circuitdsl.models.shapes import TINY_DIR

    net = load_native(TINY_DIR)
    with torch.no_grad():
        lg = net(torch.tensor([tokens]))[0, -1].double()
    p = torch.softmax(lg, -1)
    others = torch.cat([lg[:answer], lg[answer + 1 :]])
    return {
        "accuracy": float(int(lg.argmax()) == answer),
        "logit_diff": float(lg[answer] - lg[wrong]),
        "prob": float(p[answer]),
        "prob_diff": float(p[answer] - p[wrong]),
        "margin": float(lg[answer] - others.max()),
        "logprob": float(torch.log(p[answer])),
    }


def test_measure_matches_plain_torch(induction_files, tmp_path, capsys):
    clean_f, corrupt_f, clean, corrupt = induction_files
    out = tmp_path / "m.json"
    rc = main(
        ["measure", "--model", "tiny", "--dataset", str(clean_f), "--corrupt", str(corrupt_f), "--json-out", str(out)]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    doc = json.loads(out.read_text())
    assert doc["n"] == 8 and not doc["unavailable"]
    hand_c = [_by_hand(e.tokens, e.answers[0], e.wrongs[0]) for e in clean]
    # the corrupted rows are scored with the clean rows' answers
    hand_x = [_by_hand(x.tokens, e.answers[0], e.wrongs[0]) for e, x in zip(clean, corrupt)]
    for i, row in enumerate(doc["examples"]):
        for k, v in hand_c[i].items():
            assert row["clean"][k] == pytest.approx(v, abs=1e-5), (i, k)
            assert row["corrupt"][k] == pytest.approx(hand_x[i][k], abs=1e-5), (i, k)
        assert row["line"] == i + 1
    for k in hand_c[0]:
        mean = sum(h[k] for h in hand_c) / 8
        assert doc["aggregate"][k]["clean"]["mean"] == pytest.approx(mean, abs=1e-5)
        assert doc["aggregate"][k]["corrupt"]["mean"] == pytest.approx(sum(h[k] for h in hand_x) / 8, abs=1e-5)
    assert "accuracy" in cap.out and "logit_diff" in cap.out and "clean - corrupted" in cap.out


def test_measure_without_wrong_answers_says_what_it_cannot_measure(tmp_path, capsys):
    rows = [{"tokens": [3, 7, 9, 3], "answer": 7}, {"tokens": [4, 8, 2, 4], "answer": 8}]
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "m.json"
    assert main(["measure", "--model", "tiny", "--dataset", str(f), "--json-out", str(out), "--show", "0"]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["unavailable"]) == {"logit_diff", "prob_diff"} and "wrong" in doc["unavailable"]["logit_diff"]
    hand = [_by_hand(r["tokens"], r["answer"], 0) for r in rows]
    assert doc["aggregate"]["prob"]["clean"]["mean"] == pytest.approx((hand[0]["prob"] + hand[1]["prob"]) / 2, abs=1e-6)
    assert doc["aggregate"]["prob"]["corrupt"] is None
    assert "logit_diff: not measured" in capsys.readouterr().out


def test_measure_generator_and_bad_options(capsys):
    assert (
        main(["measure", "--model", "tiny", "--dataset", "induction", "--n", "4", "--arg", "length=8", "--show", "2"])
        == 0
    )
    assert "margin" in capsys.readouterr().out
    assert main(["measure", "--model", "tiny", "--dataset", "induction", "--n", "0"]) == 2
    assert "E902" in capsys.readouterr().err
