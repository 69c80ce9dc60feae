"""Phases are selectable (issue 17, item 4): `check --no-minimality`, `--only scores,minimality,completeness,tests`;
the JSON's `phases` says which ran."""

from __future__ import annotations

import json

import pytest

from circuitdsl.cli import main
from tests.cli.conftest import tiny_circuit


def _check(tmp_path, *flags, expect="expect recovered >= -100"):
    src = tmp_path / "t.circuit"
    src.write_text(tiny_circuit(n=8, expect=expect))
    out = tmp_path / "t.json"
    rc = main(["check", str(src), "--json-out", str(out), *flags])
    return rc, (json.loads(out.read_text())[0] if out.exists() else None)


def test_only_scores_and_minimality_skips_completeness_and_tests(tmp_path, capsys):
    rc, r = _check(tmp_path, "--only", "scores,minimality")
    assert rc == 0, capsys.readouterr().err
    assert r["phases"] == {"scores": True, "minimality": True, "completeness": False, "tests": False}
    assert r["completeness"]["trials"] == [] and r["completeness"]["skipped"]
    assert r["minimality"]["removals"]  # a1.0 was removed once


def test_no_minimality_runs_no_removal_and_says_so(tmp_path, capsys):
    rc, r = _check(tmp_path, "--no-minimality", "--no-completeness")
    o = capsys.readouterr().out
    assert rc == 0
    # (the equivalence test is on by default and costs no scrub: the tests phase ran)
    assert r["phases"] == {"scores": True, "minimality": False, "completeness": False, "tests": True}
    assert r["minimality"]["removals"] == [] and "--no-minimality" in r["minimality"]["skipped"]
    assert "not run" in o
    # scores do not depend on which phases ran
    rc2, full = _check(tmp_path, "--no-completeness")
    assert full["f_scrubbed"] == r["f_scrubbed"] and full["recovered"] == r["recovered"]


def test_an_expect_on_a_skipped_phase_fails_with_the_reason(tmp_path, capsys):
    rc, r = _check(tmp_path, "--only", "scores", expect="expect minimality >= -100")
    assert rc == 1
    assert "--no-minimality" in r["expects"][0]["reason"]


@pytest.mark.parametrize("only, message", [("scores,speed", "unknown phase `speed`"), (",", "unknown phase")])
def test_bad_only_is_a_usage_error(tmp_path, capsys, only, message):
    rc, _ = _check(tmp_path, "--only", only)
    assert rc == 2 and message in capsys.readouterr().err


def test_tests_flag_conflicts_with_only_without_tests(tmp_path, capsys):
    rc, _ = _check(tmp_path, "--only", "scores,minimality", "--tests", "5")
    assert rc == 2 and "leaves it out" in capsys.readouterr().err
