"""`circuitdsl lint / fmt / graph` through circuitdsl.cli.main, stdout and stderr apart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from circuitdsl.cli import main

from .conftest import FIXTURES

TYPO = """model smollm2-135m
dataset d = fakegen(n = 4)
edge embed -> a9.12 -> out
"""


def _copy_fixtures(tmp_path):
    dst = tmp_path / "fx"
    shutil.copytree(FIXTURES, dst)
    return dst


def test_lint_ok(capsys, tmp_path):
    fx = _copy_fixtures(tmp_path)
    code = main(["lint", str(fx / "induction_native.circuit")])
    out, err = capsys.readouterr()
    assert code == 0
    assert "induction_native.circuit: ok (6 nodes, 11 edges" in out
    assert err == ""


def test_lint_head_typo_exits_2_with_location_caret_and_hint(capsys, tmp_path):
    f = tmp_path / "typo.circuit"
    f.write_text(TYPO)
    code = main(["lint", str(f)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert f"{f}:3:15" in err
    assert "error[E201]: unknown attention head `a9.12`" in err
    assert "              ^^^^^ layer 9 has heads 0..8" in err
    assert "help: did you mean `a9.1`?" in err


def test_lint_concise_and_json(capsys, tmp_path):
    f = tmp_path / "typo.circuit"
    f.write_text(TYPO)
    assert main(["lint", "--format", "concise", str(f)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0].startswith(f"{f}:3:15: E201 unknown attention head `a9.12`")
    assert main(["lint", "--format", "json", str(f)]) == 2
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert [d["code"] for d in data] == ["E201", "E201"] or [d["code"] for d in data][0] == "E201"
    assert data[0]["line"] == 3 and data[0]["column"] == 15 and data[0]["hint"] == "did you mean `a9.1`?"
    assert err == ""


def test_lint_warnings_do_not_fail(capsys, tmp_path):
    f = tmp_path / "w.circuit"
    f.write_text('model "native2l"\ndataset d = fakegen()\nedge embed -> a0.1\n')
    shutil.copytree(FIXTURES / "native2l", tmp_path / "native2l")
    assert main(["lint", str(f)]) == 0
    out, err = capsys.readouterr()
    assert "warning[W303]" in err and "1 warning" in out


def test_lint_missing_file(capsys, tmp_path):
    assert main(["lint", str(tmp_path / "nope.circuit")]) == 2
    out, err = capsys.readouterr()
    assert "E901" in err and "no such file" in err and out == ""


def test_fmt_check_write_and_syntax_error(capsys, tmp_path):
    f = tmp_path / "a.circuit"
    original = "model   tiny  # keep me\nedge embed->a0.1\n"
    f.write_text(original)
    assert main(["fmt", "--check", str(f)]) == 1
    out, err = capsys.readouterr()
    assert out == f"would reformat {f}\n" and err == ""
    assert f.read_text() == original
    assert main(["fmt", str(f)]) == 0
    out, err = capsys.readouterr()
    assert f.read_text() == "model tiny  # keep me\nedge embed -> a0.1\n"
    assert out == f"reformatted {f}\n"
    assert main(["fmt", "--check", str(f)]) == 0
    assert list(tmp_path.iterdir()) == [f]  # no temp files left behind
    bad = tmp_path / "bad.circuit"
    bad.write_text("edge embed ->\n  # unfinished\n")
    assert main(["fmt", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert "E103" in err and "not formatted" in err
    assert bad.read_text() == "edge embed ->\n  # unfinished\n"


def test_graph_writes_dot_svg_png(capsys, tmp_path):
    fx = _copy_fixtures(tmp_path)
    src = str(fx / "induction_native.circuit")
    assert main(["graph", src, "-o", str(tmp_path / "g.dot")]) == 0
    dot = (tmp_path / "g.dot").read_text()
    assert "subgraph cluster_" in dot and 'label="induction"' in dot
    assert '"a0.1" -> "a1.0" [label="k", color="#d62728"' in dot and "style=dashed" in dot
    assert '"embed" -> "a0.1" [label="v", color="#2ca02c"' in dot
    assert main(["graph", src, "-o", str(tmp_path / "g.svg"), "--no-graphviz"]) == 0
    assert (tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")
    assert main(["graph", src, "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out, err = capsys.readouterr()
    assert "wrote" in out and err == ""


def test_graph_errors(capsys, tmp_path):
    f = tmp_path / "typo.circuit"
    f.write_text(TYPO)
    assert main(["graph", str(f), "-o", str(tmp_path / "g.png")]) == 2
    out, err = capsys.readouterr()
    assert "E201" in err and out == "" and not (tmp_path / "g.png").exists()
    assert main(["graph", str(f), "-o", str(tmp_path / "g.bmp")]) == 2
    assert "suffix" in capsys.readouterr().err


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="graphviz `dot` is not installed (.ci/run installs it with apt when it can)"
)
@pytest.mark.parametrize("name", ["induction_refined.circuit", "ioi_smollm2.circuit"])
def test_graph_through_graphviz(capsys, tmp_path, name):
    # the zoo's wired IOI hypothesis (clusters + a complete DAG) once made `dot` fail ("trouble in
    # init_rank") and the drawing silently fell back to matplotlib
    src = str(Path(__file__).resolve().parents[2] / "hypotheses" / name)
    assert main(["graph", src, "-o", str(tmp_path / "g.svg")]) == 0
    assert "(graphviz)" in capsys.readouterr().out
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and ">out<" in svg
    assert main(["graph", src, "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
