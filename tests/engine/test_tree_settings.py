"""`set treeify.*` and `set completeness.enabled` from the file through `circuitdsl check`: the budget is a
diagnostic (E601, exit 2, no traceback, nothing written), the approximation is named in every report,
and a file can skip its completeness search itself."""

from __future__ import annotations

import json

import pytest

from circuitdsl.cli import main
from circuitdsl.compiler import compile_source

pytestmark = pytest.mark.engine

BASE = """model tiny
dataset ind = induction(n = 24, seed = 0, length = 16, layouts = 2)
metric loss
ablate unclaimed by resample
group prev = a0.0, a0.2
node prev depends on nothing
edge embed, pos -> prev
edge prev -> a1.0.q, a1.0.k, a1.0.v
edge embed -> a1.0
edge a1.0 -> out
set bootstrap = 20
set completeness.sizes = [1]
set completeness.samples = 1
set completeness.greedy = 0
"""


def test_settings_reach_the_hypothesis_and_bad_values_are_e213():
    h = compile_source(
        BASE + "set treeify.shared_draws = true\nset treeify.max_nodes = 7\nset completeness.enabled = false\n"
    ).hypothesis
    assert h.treeify.shared_draws and h.treeify.max_nodes == 7 and not h.budget.enabled
    for bad in ("set treeify.shared_draws = 1", "set treeify.max_nodes = 0", "set completeness.enabled = yes"):
        r = compile_source(BASE + bad + "\n", "x.circuit")
        assert not r.ok and [d.code for d in r.diagnostics] == ["E213"], bad


def test_a_tree_past_its_budget_is_e601_exit_2_and_writes_nothing(tmp_path, capsys):
    f = tmp_path / "h.circuit"
    f.write_text(BASE + "set treeify.max_nodes = 10\n")
    out = tmp_path / "r.json"
    assert main(["check", str(f), "--json-out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "E601" in err and "Traceback" not in err and "treeify.shared_draws" in err
    assert not out.exists()


def test_the_approximation_is_named_in_terminal_and_json(tmp_path, capsys):
    f = tmp_path / "h.circuit"
    f.write_text(BASE + "set treeify.shared_draws = true\n")
    out = tmp_path / "r.json"
    assert main(["check", str(f), "--json-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "treeification: shared draws" in text and "APPROXIMATION" in text
    d = json.loads(out.read_text())[0]
    assert d["treeify"] == "shared draws" and any(n.startswith("APPROXIMATION") for n in d["notes"])
    f.write_text(BASE)
    assert main(["check", str(f), "--json-out", str(out)]) == 0
    text = capsys.readouterr().out
    d = json.loads(out.read_text())[0]
    assert d["treeify"] == "exact" and d["tree_nodes"] > 0 and not any("APPROXIMATION" in n for n in d["notes"])
    assert f"treeification: exact, {d['tree_nodes']:,} treeified nodes" in text


def test_completeness_enabled_false_skips_the_search_and_says_why(tmp_path):
    f = tmp_path / "h.circuit"
    f.write_text(BASE + "set completeness.enabled = false\n")
    out = tmp_path / "r.json"
    assert main(["check", str(f), "--json-out", str(out)]) == 0
    comp = json.loads(out.read_text())[0]["completeness"]
    assert comp["trials"] == [] and "set completeness.enabled = false" in comp["skipped"]


def test_minimality_off_scrubs_no_removal_and_every_reader_says_why():
    from circuitdsl.engine.check import run_check
    from circuitdsl.results import CheckResult

    h = compile_source(
        BASE + "expect minimality >= -1\nset tests.r = 4\nset tests.minimality = true\n", "x.circuit"
    ).hypothesis
    r = run_check(h, minimality=False, completeness=False)
    assert r.minimality.removals == () and "minimality disabled" in r.minimality.skipped
    (e,) = r.expects
    assert e.value is None and not e.passed and "minimality disabled" in e.reason
    assert r.tests.minimality.p is None and "needs the removals" in r.tests.minimality.undefined_reason
    back = CheckResult.from_json(json.loads(json.dumps(r.to_json())))
    assert back.minimality.skipped == r.minimality.skipped
    full = run_check(h, completeness=False)
    assert full.minimality.skipped is None
    assert {x.node for x in full.minimality.removals} == {"embed", "pos", "a0.0", "a0.2", "a1.0"}
