"""`set minimality.enabled = false` in a .circuit file: the check scrubs no removal and every reader
(terminal, JSON, expect) says the file turned it off; a value other than true/false is E213 (issue 17)."""

from __future__ import annotations

import json

import pytest

from circuitdsl.cli import main
from circuitdsl.compiler import compile_source

pytestmark = pytest.mark.engine

BASE = """model tiny
dataset ind = induction(n = 12, seed = 0, length = 16, layouts = 2)
metric loss
ablate unclaimed by resample
node a0.0 depends on nothing
edge embed, pos -> a0.0
edge a0.0 -> a1.0.k
edge embed -> a1.0
edge a1.0 -> out
set bootstrap = 10
set completeness.enabled = false
"""


def test_the_setting_reaches_the_hypothesis_and_bad_values_are_e213():
    assert compile_source(BASE, "x.circuit").hypothesis.minimality_enabled is True
    assert compile_source(BASE + "set minimality.enabled = false\n", "x.circuit").hypothesis.minimality_enabled is False
    for bad in ("1", '"no"', "0.5", "[1]"):
        r = compile_source(BASE + f"set minimality.enabled = {bad}\n", "x.circuit")
        assert not r.ok and [d.code for d in r.diagnostics] == ["E213"], bad
        (d,) = r.diagnostics
        assert (
            "minimality.enabled" in d.message and "true or false" in d.message and d.span.line == BASE.count("\n") + 1
        )


def test_an_expect_on_a_search_the_file_turns_off_is_w214_at_the_expect():
    for setting, expect in (
        ("minimality.enabled", "minimality >= 0.1"),
        ("minimality.enabled", "minimality.p <= 0.05"),
        ("completeness.enabled", "incompleteness <= 0.1"),
    ):
        src = (
            BASE.replace("set completeness.enabled = false\n", "")
            + f"set {setting} = false\nexpect {expect}\nexpect recovered >= 0\n"
        )
        r = compile_source(src, "x.circuit")
        (d,) = [d for d in r.diagnostics if d.code == "W214"]
        assert r.ok and d.span.line == src.count("\n") - 1 and f"set {setting} = false" in d.message
        on = compile_source(src.replace(f"set {setting} = false", f"set {setting} = true"), "x.circuit")
        assert on.ok and not any(x.code == "W214" for x in on.diagnostics)


def test_bad_value_through_check_is_exit_2_with_location(tmp_path, capsys):
    f = tmp_path / "h.circuit"
    f.write_text(BASE + "set minimality.enabled = maybe\n")
    assert main(["check", str(f)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"h.circuit:{BASE.count(chr(10)) + 1}:" in err


def test_minimality_enabled_false_skips_the_search_and_says_why(tmp_path, capsys):
    f = tmp_path / "h.circuit"
    f.write_text(BASE + "set minimality.enabled = false\nexpect minimality >= -100\n")
    out = tmp_path / "r.json"
    assert main(["check", str(f), "--json-out", str(out)]) == 1  # the expect cannot hold on a skipped search
    text = capsys.readouterr().out
    assert "set minimality.enabled = false" in text
    d = json.loads(out.read_text())[0]
    assert d["minimality"]["removals"] == [] and "set minimality.enabled = false" in d["minimality"]["skipped"]
    assert d["phases"]["minimality"] is False
    (e,) = d["expects"]
    assert e["value"] is None and not e["passed"] and "set minimality.enabled = false" in e["reason"]
    # the same file with the setting on scrubs a removal per removable node and the expect holds
    f.write_text(BASE + "set minimality.enabled = true\nexpect minimality >= -100\n")
    assert main(["check", str(f), "--json-out", str(out)]) == 0
    d = json.loads(out.read_text())[0]
    assert d["minimality"]["skipped"] is None and {x["node"] for x in d["minimality"]["removals"]} == {
        "embed",
        "pos",
        "a0.0",
        "a1.0",
    }


def test_the_html_report_says_minimality_was_not_run_and_why():
    import dataclasses
    import importlib.util
    from pathlib import Path

    from circuitdsl.report import render_html
    from circuitdsl.results import Minimality

    spec = importlib.util.spec_from_file_location(
        "_report_build", Path(__file__).resolve().parents[1] / "report" / "_build.py"
    )
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    hand_result = build.hand_result

    why = "minimality disabled (`set minimality.enabled = false` in the file)"
    r = dataclasses.replace(hand_result(), minimality=Minimality((), None, None, 0.0, None, skipped=why))
    page = render_html(r, source_text=None)
    sec = page[page.index('id="minimality"') :]
    sec = sec[: sec.index("</section>")]
    assert "Not run: minimality disabled (`set minimality.enabled = false` in the file)" in sec
    assert "none has outgoing claimed edges" not in sec
