import json
import re

import pytest
from _build import SOURCE, hand_result

from circuitdsl.cli import main


@pytest.fixture
def result_json(tmp_path):
    p = tmp_path / "result.json"
    p.write_text(hand_result().dumps())
    return p


def test_json_only(result_json, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(result_json), "-o", str(out)]) == 0
    o, e = capsys.readouterr()
    assert o.startswith(f"wrote {out}") and "scores only" in o
    assert e == ""
    page = out.read_text()
    assert 'data-needs="model"' in page and "tiny_test" in page


def test_with_circuit_but_no_model(result_json, tmp_path, capsys):
    src = tmp_path / "tiny_test.circuit"
    src.write_text(SOURCE)
    out = tmp_path / "report.html"
    assert main(["report", str(result_json), "-o", str(out), "--circuit", str(src), "--no-model"]) == 0
    o, e = capsys.readouterr()
    assert "graph" in o and e == ""
    page = out.read_text()
    assert 'class="graph"' in page and "--no-model was given." in page


def test_recorded_source_path_is_used(tmp_path, capsys):
    src = tmp_path / "tiny_test.circuit"
    src.write_text(SOURCE)
    d = hand_result().to_json()
    d["source_path"] = str(src)
    res = tmp_path / "r.json"
    res.write_text(json.dumps(d))
    out = tmp_path / "report.html"
    assert main(["report", str(res), "-o", str(out)]) == 0
    page = out.read_text()
    assert 'class="graph"' in page and re.search(r'<tr id="L21">', page)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not JSON"),
        ('{"schema": "other/1"}', "not a circuitdsl-check/1 result"),
        ('{"schema": "circuitdsl-check/1"}', "not a complete circuitdsl check result"),
    ],
)
def test_bad_input_is_a_usage_error(tmp_path, capsys, content, message):
    p = tmp_path / "r.json"
    p.write_text(content)
    assert main(["report", str(p), "-o", str(tmp_path / "x.html")]) == 2
    o, e = capsys.readouterr()
    assert o == "" and message in e and "Traceback" not in e
    assert not (tmp_path / "x.html").exists()


def test_missing_file_and_folder(result_json, tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.json"), "-o", str(tmp_path / "x.html")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["report", str(result_json), "-o", str(tmp_path / "no" / "x.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_circuit_file_gives_diagnostics(result_json, tmp_path, capsys):
    src = tmp_path / "bad.circuit"
    src.write_text(SOURCE.replace("a1.3 -> out", "a1.9").replace("edge induction -> out", "edge a1.9 -> out"))
    assert main(["report", str(result_json), "-o", str(tmp_path / "x.html"), "--circuit", str(src)]) == 2
    e = capsys.readouterr().err
    assert "E201" in e and "Traceback" not in e


@pytest.mark.engine
def test_with_circuit_computes_the_model_sections(result_json, tmp_path, capsys):
    pytest.importorskip("torch")
    src = tmp_path / "tiny_test.circuit"
    src.write_text(SOURCE)
    out = tmp_path / "report.html"
    assert main(["report", str(result_json), "-o", str(out), "--circuit", str(src), "--examples", "1"]) == 0
    o, e = capsys.readouterr()
    assert "graph, model sections" in o and e == ""
    page = out.read_text()
    assert "data-needs" not in page
    assert page.count('class="heat"') == 6  # six claimed heads, one example
