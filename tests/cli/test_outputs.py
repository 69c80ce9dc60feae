"""Nothing a user owns is overwritten (issue 12), and output paths are checked before the work (issue 18)."""

from __future__ import annotations

import json
import os

import pytest

from circuitdsl.cli import main
from circuitdsl.cli.outputs import Output, check_outputs, report_names

from .conftest import tiny_circuit

TEXT = tiny_circuit()


@pytest.fixture
def hyp(tmp_path):
    f = tmp_path / "h.circuit"
    f.write_text(TEXT)
    return f


@pytest.mark.parametrize("option", ["--json-out", "--html"])
def test_an_output_that_is_an_input_is_refused(hyp, capsys, option, monkeypatch):
    monkeypatch.chdir(hyp.parent)
    for spelling in (str(hyp), "h.circuit", "./h.circuit", f"../{hyp.parent.name}/h.circuit"):
        assert main(["check", "h.circuit", option, spelling]) == 2
        out, err = capsys.readouterr()
        assert "error[E906]" in err and "is an input" in err and out == ""
        assert hyp.read_text() == TEXT
    link = hyp.parent / "link.json"
    link.symlink_to(hyp)
    assert main(["check", "h.circuit", option, "link.json"]) == 2  # through a symlink too
    assert "error[E906]" in capsys.readouterr().err and hyp.read_text() == TEXT


def test_json_out_and_html_on_one_path_are_refused(hyp, capsys, tmp_path):
    target = tmp_path / "r.out"
    assert main(["check", str(hyp), "--json-out", str(target), "--html", str(target)]) == 2
    err = capsys.readouterr().err
    assert "error[E907]" in err and "--html" in err and "--json-out" in err
    assert not target.exists()


def test_an_unwritable_output_is_found_before_the_work(hyp, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for bad in (blocker / "r.json", tmp_path):  # a folder that is a file; a path that is a folder
        assert main(["check", str(hyp), "--json-out", str(bad)]) == 2
        out, err = capsys.readouterr()
        assert "error[E908]" in err and "loading model" not in err and out == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only modes")
def test_a_read_only_output_is_refused(hyp, capsys, tmp_path):
    ro = tmp_path / "r.json"
    ro.write_text("[]")
    ro.chmod(0o444)
    assert main(["check", str(hyp), "--json-out", str(ro)]) == 2
    assert "read-only" in capsys.readouterr().err


def test_inputs_sharing_a_name_get_distinct_reports(tmp_path):
    names = report_names(str(tmp_path / "rep.html"), ["a/x.circuit", "b/x.circuit", "c/y.circuit"])
    assert [os.path.basename(n) for n in names] == ["rep-a-x.html", "rep-b-x.html", "rep-y.html"]
    deep = report_names("rep.html", ["p/a/x.circuit", "q/a/x.circuit"])
    assert deep == ["rep-p-a-x.html", "rep-q-a-x.html"]
    twice = report_names("rep.html", ["x.circuit", "x.circuit"])
    assert twice == ["rep-x.html", "rep-x-2.html"]
    assert report_names("rep.html", ["only.circuit"]) == ["rep.html"]


def test_a_report_name_that_lands_on_an_input_is_refused(tmp_path):
    # `check rep-x.circuit x.circuit --html rep.circuit` would write rep-x.circuit over the first input
    (tmp_path / "rep-x.circuit").write_text(TEXT)
    (tmp_path / "x.circuit").write_text(TEXT)
    inputs = [str(tmp_path / "rep-x.circuit"), str(tmp_path / "x.circuit")]
    outs = [Output("--html", p) for p in report_names(str(tmp_path / "rep.circuit"), inputs)]
    assert [d.code for d in check_outputs(outs, inputs)] == ["E906"]


@pytest.mark.engine
def test_two_inputs_named_alike_write_two_reports(tmp_path, capsys):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.circuit").write_text(TEXT)
    rep = tmp_path / "rep.html"
    j = tmp_path / "r.json"
    code = main(["check", str(tmp_path / "a" / "x.circuit"), str(tmp_path / "b" / "x.circuit"), "--no-completeness",
                 "--html", str(rep), "--json-out", str(j)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("rep-*.html")) == ["rep-a-x.html", "rep-b-x.html"]
    assert len(json.loads(j.read_text())) == 2


def test_fmt_through_a_symlink_formats_the_target_and_keeps_the_link(tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    target = real / "h.circuit"
    target.write_text("model   tiny\n")
    target.chmod(0o644)
    link = tmp_path / "h.circuit"
    link.symlink_to(target)
    assert main(["fmt", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "model tiny\n" and target.stat().st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path)) == ["h.circuit", "real"] and os.listdir(real) == ["h.circuit"]


def test_other_commands_refuse_an_input_as_output(tmp_path, capsys):
    f = tmp_path / "h.circuit"
    f.write_text(TEXT)
    r = tmp_path / "r.json"
    r.write_text("{}")
    assert main(["report", str(r), "-o", str(r)]) == 2
    assert main(["report", str(r), "-o", str(f), "--circuit", str(f), "--no-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("error[E906]") == 2
    assert r.read_text() == "{}" and f.read_text() == TEXT
