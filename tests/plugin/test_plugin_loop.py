"""The plugin in a researcher's loop (issue 17): phase lines while a file is checked, --circuitdsl-n on
JSONL files, minimality only when an expect reads it, one check per file shared with Python tests
(`circuitdsl_result`), and a CI job's JSON read back with CheckResult.from_json + assert_faithful."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import tiny_circuit

PYPROJECT = """
[tool.circuitdsl]
paths = ["hyps"]
"""

# embed, pos, the two previous-token heads and the four induction heads: every claimed node but `out`
# sends an edge, so the minimality search removes these 8 (counted by hand from tiny_circuit's edges)
REMOVABLE = 8


def _project(pytester, **files):
    pytester.makepyprojecttoml(PYPROJECT)
    hyps = pytester.mkdir("hyps")
    for name, text in files.items():
        (hyps / name).write_text(text)
    return hyps


@pytest.fixture
def calls(monkeypatch):
    """The keyword arguments of every engine check the session runs."""
    import circuitdsl.engine.check as engine_check

    seen = []
    real = engine_check.run_check

    def counting(h, **kw):
        seen.append(kw)
        return real(h, **kw)

    monkeypatch.setattr(engine_check, "run_check", counting)
    return seen


def test_progress_lines_name_the_file_and_phase(pytester):
    _project(pytester, **{"h.circuit": tiny_circuit(n=12, expects="expect minimality >= -100")})
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--circuitdsl-progress=on")
    r.assert_outcomes(passed=1)
    lines = [ln.strip() for ln in r.stdout.lines if ": check: " in ln]
    assert all(re.fullmatch(r"h\.circuit: check: .* \[\d+ s\]", ln) for ln in lines), lines  # seconds since the start
    lines = [re.sub(r" \[\d+ s\]$", "", ln) for ln in lines]
    assert "h.circuit: check: loading model" in lines and "h.circuit: check: scrubbing the hypothesis" in lines
    assert (
        "h.circuit: check: minimality 1/8" in lines and f"h.circuit: check: minimality {REMOVABLE}/{REMOVABLE}" in lines
    )
    # auto (the default) is quiet for the embedded tiny model
    (pytester.path / "hyps" / "h.circuit").write_text(tiny_circuit(n=12, expects="expect recovered >= 0"))
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    r.assert_outcomes(passed=1)
    assert ": check: " not in r.stdout.str()


def test_auto_progress_for_a_real_model_file(pytester, monkeypatch):
    import circuitdsl.pytest_plugin as plugin

    monkeypatch.setattr(plugin, "FAST_MODELS", ())  # the tiny file stands in for a real-model one
    _project(pytester, **{"h.circuit": tiny_circuit(n=12, expects="expect recovered >= 0")})
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    r.assert_outcomes(passed=1)
    assert "h.circuit: check: scrubbing the hypothesis" in r.stdout.str()
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--circuitdsl-progress=off")
    assert ": check: " not in r.stdout.str()


def test_minimality_runs_only_when_an_expect_reads_it(pytester, calls):
    _project(
        pytester,
        **{
            "a.circuit": tiny_circuit(n=12, expects="expect recovered >= 0"),
            "b.circuit": tiny_circuit(n=12, expects="expect minimality >= -100"),
        },
    )
    pytester.makepyfile(
        test_skipped="""
        def test_says_why(circuitdsl_result):
            r = circuitdsl_result("hyps/a.circuit")
            assert r.minimality.removals == () and r.minimality.skipped == "minimality not run: no expect of the file reads it"
            assert "not run: no expect of the file reads it" in r.completeness.skipped
    """
    )
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "hyps", "test_skipped.py")
    r.assert_outcomes(passed=3)
    assert [kw["minimality"] for kw in calls] == [False, True]  # a.circuit then b.circuit; the Python test reused a's


def test_a_python_test_shares_the_files_check(pytester, calls):
    _project(pytester, **{"h.circuit": tiny_circuit(n=12, expects="expect recovered >= 0.5\nexpect kl <= 10")})
    pytester.makepyfile(
        test_h="""
        import pytest
        from circuitdsl.testing import assert_faithful

        def test_faithful(circuitdsl_result):
            r = circuitdsl_result("hyps/h.circuit")
            assert_faithful(r, mean_abs_delta_at_most=r.mean_abs_delta + 1e-9)
            with pytest.raises(AssertionError, match="mean_abs_delta"):
                assert_faithful(r, mean_abs_delta_at_most=r.mean_abs_delta / 2)

        def test_removals(circuitdsl_result):
            r = circuitdsl_result("hyps/h.circuit", minimality=True)  # asks for more than the items read
            assert len(r.minimality.removals) == 8 and r.minimality.skipped is None
            assert circuitdsl_result("hyps/h.circuit") is r  # and the richer check is shared from then on
    """
    )
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "hyps", "test_h.py")
    r.assert_outcomes(passed=4)
    assert [kw["minimality"] for kw in calls] == [False, True]  # the items' check, then one with minimality


def test_circuitdsl_n_takes_the_first_rows_of_a_jsonl_file(pytester):
    from circuitdsl.datasets.induction import induction

    rows = [
        {"tokens": list(e.tokens), "answer": e.answers[0]}
        for e in induction(n=12, seed=3, length=10, vocab=48, layouts=1, a1=2)
    ]
    hyps = _project(
        pytester,
        **{
            "h.circuit": 'model tiny\ndataset d = "d.jsonl"\nmetric loss\nedge embed, pos -> a0.0\n'
            "edge a0.0 -> a1.0.k\nedge embed -> a1.0\nedge a1.0 -> out\nexpect recovered >= 100\n"
        },
    )
    (hyps / "d.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--circuitdsl-n", "5")
    r.assert_outcomes(failed=1)
    out = r.stdout.str()
    assert "(N=5)" in out
    # the first five of the file's 12 rows, in file order
    from circuitdsl.testing import check, compile_hypothesis, with_sample_count

    res = check(with_sample_count(compile_hypothesis(hyps / "h.circuit"), 5), completeness=False, minimality=False)
    assert [e.tokens for e in res.examples] == [tuple(x["tokens"]) for x in rows[:5]]


def test_ci_json_read_back_with_from_json_and_assert_faithful(tmp_path, capsys):
    """docs/CI.md's recipe: `check --json-out` in one job, a Python test of the JSON in another."""
    from circuitdsl.cli import main
    from circuitdsl.results import CheckResult
    from circuitdsl.testing import assert_faithful

    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit(n=12, expects="expect recovered >= 0"))
    assert main(["check", str(f), "--no-minimality", "--no-completeness", "--json-out", str(tmp_path / "r.json")]) == 0
    raw = json.loads((tmp_path / "r.json").read_text())
    r = CheckResult.from_json(raw[0])
    assert r.mean_abs_delta == raw[0]["mean_abs_delta"] and r.n == 12
    assert_faithful(r, mean_abs_delta_at_most=raw[0]["mean_abs_delta"])
    with pytest.raises(AssertionError, match=re.escape("mean_abs_delta")):
        assert_faithful(r, mean_abs_delta_at_most=raw[0]["mean_abs_delta"] * 0.5)
