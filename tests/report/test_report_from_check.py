"""`circuitdsl report` reads what `circuitdsl check --json-out` writes: a JSON list, one result per file
(issue 17: it crashed with AttributeError 'list' object has no attribute 'get')."""

import json

from _build import hand_result

from circuitdsl.cli import main


def test_report_reads_a_one_file_check_list(tmp_path, capsys):
    p = tmp_path / "succ.json"
    p.write_text(json.dumps([hand_result().to_json()]))
    out = tmp_path / "r.html"
    assert main(["report", str(p), "-o", str(out)]) == 0
    assert out.exists() and "tiny_test" in out.read_text()


def test_report_picks_one_result_of_several(tmp_path, capsys):
    a, b = hand_result().to_json(), hand_result().to_json()
    b["name"] = "other_one"
    p = tmp_path / "two.json"
    p.write_text(json.dumps([a, b]))
    out = tmp_path / "r.html"
    assert main(["report", str(p), "-o", str(out)]) == 2
    e = capsys.readouterr().err
    assert "2 results" in e and "--pick" in e and "Traceback" not in e and not out.exists()
    assert main(["report", str(p), "-o", str(out), "--pick", "other_one"]) == 0
    assert "other_one" in out.read_text()
    assert main(["report", str(p), "-o", str(out), "--pick", "nope"]) == 2
    assert "tiny_test, other_one" in capsys.readouterr().err


def test_report_of_a_real_check_json_out(tmp_path, capsys):
    from tests.cli.conftest import tiny_circuit

    src = tmp_path / "t.circuit"
    src.write_text(tiny_circuit(n=8))
    res = tmp_path / "t.json"
    assert main(["check", str(src), "--no-completeness", "--json-out", str(res)]) == 0
    assert isinstance(json.loads(res.read_text()), list)
    out = tmp_path / "t.html"
    assert main(["report", str(res), "-o", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_report_of_an_empty_list_is_a_usage_error(tmp_path, capsys):
    p = tmp_path / "e.json"
    p.write_text("[]")
    assert main(["report", str(p), "-o", str(tmp_path / "x.html")]) == 2
    assert "no result" in capsys.readouterr().err
