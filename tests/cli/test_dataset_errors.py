"""Dataset problems found by `check` are diagnostics at the JSONL file's line (issue 18), exit 2."""

from __future__ import annotations

import json

import pytest

from circuitdsl.cli import main

from .conftest import tiny_circuit

pytestmark = pytest.mark.engine


def _rows(n, **extra):
    return [{"tokens": [5, 9, 2, 5, 9, 2, 7], "answer": 9, "positions": {"A1": 0}, "B": i % 2, "id": f"r{i}", **extra}
            for i in range(n)]  # fmt: skip


def _project(tmp_path, rows, metric="loss"):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit(dataset='"d.jsonl"').replace("metric loss", f"metric {metric}"))
    return f


def test_a_one_row_dataset_is_a_diagnostic_not_a_failed_claim(tmp_path, capsys):
    f = _project(tmp_path, _rows(1))
    assert main(["check", str(f), "--no-completeness"]) == 2
    out, err = capsys.readouterr()
    assert "error[E411]" in err and "1 example" in err and "at least 2" in err
    assert "FAIL" not in out and "nothing to recover" not in out + err


def test_an_engine_check_on_a_row_points_at_the_row(tmp_path, capsys):
    rows = _rows(6, wrong=2)
    del rows[4]["wrong"]  # logit_diff needs a wrong answer on every row: row 5 has none
    f = _project(tmp_path, rows, metric="logit_diff")
    assert main(["check", str(f), "--no-completeness"]) == 2
    err = capsys.readouterr().err
    assert "error[E419]" in err and f"--> {tmp_path / 'd.jsonl'}:5:1" in err and '"id": "r4"' in err
    assert f"{f}:2:" not in err  # not the .circuit line


def test_a_token_outside_the_vocabulary_points_at_the_tokens_key(tmp_path, capsys):
    rows = _rows(4)
    rows[2]["tokens"] = [1, 2, 300]
    f = _project(tmp_path, rows)
    assert main(["check", str(f), "--no-completeness"]) == 2
    err = capsys.readouterr().err
    col = (tmp_path / "d.jsonl").read_text().splitlines()[2].index('"tokens"') + 1
    assert "error[E423]" in err and f"d.jsonl:3:{col}" in err


def test_a_bad_answer_points_at_its_jsonl_line_not_the_circuit(tmp_path, capsys):
    """The issue's case: an answer outside the model's output vocabulary on a late line of the file."""
    rows = _rows(6)
    rows[4]["answer"] = 100000
    f = _project(tmp_path, rows)
    assert main(["check", str(f), "--no-completeness"]) == 2
    out, err = capsys.readouterr()
    assert "error[E414]" in err and "answer token 100000" in err and f"--> {tmp_path / 'd.jsonl'}:5:" in err
    assert f"--> {f}:" not in err and "FAIL" not in out
