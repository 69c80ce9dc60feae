"""The pytest plugin, run in pytester sessions: collection, item names, failure messages, options, -k, markers."""

from __future__ import annotations

import textwrap

import pytest

from .conftest import tiny_circuit

PYPROJECT = """
[tool.pytest.ini_options]
markers = ["slow: real-model tests"]

[tool.circuitdsl]
paths = ["hyps"]
"""

BROKEN = "model tiny\ndataset ind = induction(n = 8)\nnode a7.0 depends on input\nedge a7.0 -> out\n"


def _project(pytester, **files):
    pytester.makepyprojecttoml(PYPROJECT)
    hyps = pytester.mkdir("hyps")
    for name, text in files.items():
        (hyps / f"{name}.circuit").write_text(text)
    return hyps


def test_collects_one_item_per_expect_named_after_the_clause(pytester):
    _project(
        pytester,
        good=tiny_circuit(expects="expect recovered >= 0.5\nexpect recovered.lower >= 0.4"),
        broken=BROKEN,
        plain=tiny_circuit(expects=""),
    )
    pytester.makepyfile(test_other="def test_x():\n    pass\n")
    r = pytester.runpytest("--collect-only", "-q")
    out = r.stdout.str()
    assert "hyps/good.circuit::recovered >= 0.5" in out
    assert "hyps/good.circuit::recovered.lower >= 0.4" in out
    assert "hyps/broken.circuit::compile" in out
    assert "hyps/plain.circuit::check" in out
    assert "test_other.py::test_x" in out
    r.stdout.fnmatch_lines(["*5 tests collected*"])


def test_ini_option_wins_over_pyproject_and_other_folders_are_ignored(pytester):
    pytester.makeini("[pytest]\ncircuitdsl_paths = elsewhere\n")
    pytester.mkdir("elsewhere")
    (pytester.path / "elsewhere" / "a.circuit").write_text(tiny_circuit(expects="expect recovered >= 0.5"))
    pytester.mkdir("hyps")
    (pytester.path / "hyps" / "b.circuit").write_text(tiny_circuit(expects="expect recovered >= 0.5"))
    r = pytester.runpytest("--collect-only", "-q", ".")
    out = r.stdout.str()
    assert "elsewhere/a.circuit::recovered >= 0.5" in out
    assert "b.circuit" not in out
    # a file named on the command line is collected wherever it lies
    r = pytester.runpytest("--collect-only", "-q", "hyps/b.circuit")
    assert "hyps/b.circuit::recovered >= 0.5" in r.stdout.str()


def test_passing_and_failing_expects_with_a_readable_message(pytester):
    _project(pytester, h=tiny_circuit(expects="expect recovered >= 0.5\nexpect recovered >= 1.5"))
    r = pytester.runpytest("-p", "no:cacheprovider")
    r.assert_outcomes(passed=1, failed=1)
    out = r.stdout.str()
    assert "h.circuit: expect recovered >= 1.5" in out  # the failure's header
    # the failure shows the score, its interval, the threshold, raw F numbers and worst examples
    assert "expect recovered >= 1.5 failed (line 17)" in out
    assert "expected >= 1.5" in out
    assert "bootstrap 95% interval [" in out
    assert "F(model) = " in out and "F(scrubbed) = " in out and "F(baseline) = " in out
    assert "worst examples by |m(scrubbed) - m(model)|" in out
    assert "Traceback" not in out and "runtest" not in out


def test_language_errors_are_one_failing_item_with_the_diagnostics(pytester):
    _project(pytester, broken=BROKEN)
    r = pytester.runpytest("-p", "no:cacheprovider")
    r.assert_outcomes(failed=1)
    out = r.stdout.str()
    assert "has language errors" in out
    assert "error[E20" in out  # the rendered diagnostic, with its code
    assert "--> " in out and "broken.circuit:3:" in out


def test_keyword_selection_and_fail_fast(pytester):
    _project(pytester, h=tiny_circuit(expects="expect recovered >= 1.5\nexpect recovered.lower >= 0.4"))
    r = pytester.runpytest("-p", "no:cacheprovider", "-k", "lower")
    r.assert_outcomes(passed=1, deselected=1)
    r = pytester.runpytest("-p", "no:cacheprovider", "-x")
    r.assert_outcomes(failed=1)  # stopped at the first failure


def test_seed_and_sample_count_options_reach_the_check(pytester):
    _project(pytester, h=tiny_circuit(expects="expect recovered >= 5"))
    r = pytester.runpytest("-p", "no:cacheprovider", "--circuitdsl-seed", "3", "--circuitdsl-n", "16")
    r.assert_outcomes(failed=1)
    assert "(N=16), seed 3" in r.stdout.str()
    r = pytester.runpytest("-p", "no:cacheprovider", "--circuitdsl-n", "0")
    assert r.ret != 0
    assert "--circuitdsl-n must be a positive integer" in r.stderr.str()


def test_real_model_files_are_marked_slow(pytester):
    real = textwrap.dedent("""\
        model smollm2-135m
        dataset d = ioi(n = 8)
        edge embed -> out
        expect recovered >= 0.1
    """)
    hyps = _project(pytester, small=tiny_circuit(expects="expect recovered >= 0.5"))
    (hyps / "real.circuit").write_text(real)
    r = pytester.runpytest("--collect-only", "-q", "-m", "not slow")
    assert "small.circuit" in r.stdout.str() and "real.circuit" not in r.stdout.str()
    r = pytester.runpytest("--collect-only", "-q", "-m", "slow")
    assert "real.circuit::recovered >= 0.1" in r.stdout.str() and "small.circuit" not in r.stdout.str()


def test_one_check_per_file_shared_by_its_items(pytester, monkeypatch):
    import circuitdsl.engine.check as engine_check

    calls = []
    real = engine_check.run_check

    def counting(h, **kw):
        calls.append(h.name)
        return real(h, **kw)

    monkeypatch.setattr(engine_check, "run_check", counting)
    _project(
        pytester, h=tiny_circuit(expects="expect recovered >= 0.5\nexpect recovered.lower >= 0.4\nexpect kl <= 10")
    )
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    r.assert_outcomes(passed=3)
    assert calls == ["h"]


@pytest.mark.slow
def test_xdist_workers_check_their_own_files(pytester):
    """Two xdist workers, each booting torch: ~25-60 s on 2 shared cores, so it runs with `-m slow`."""
    _project(
        pytester,
        a=tiny_circuit(expects="expect recovered >= 0.5\nexpect recovered.lower >= 0.4"),
        b=tiny_circuit(expects="expect recovered >= 0.5", n=24),
    )
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", timeout=120)
    r.assert_outcomes(passed=3)


CRASHING_COMPILER = """
import circuitdsl.compiler as compiler

_compile = compiler.compile_file


def compile_file(path):
    if str(path).endswith("crash.circuit"):
        raise RecursionError("maximum recursion depth exceeded")
    return _compile(path)


compiler.compile_file = compile_file
"""


def test_a_file_that_crashes_the_compiler_is_one_failing_item_and_the_rest_run(pytester):
    _project(pytester, crash="model tiny\n", broken=BROKEN, good=tiny_circuit(expects="expect recovered >= 0.5"))
    pytester.makeconftest(CRASHING_COMPILER)
    r = pytester.runpytest("-q", "-p", "no:cacheprovider")
    out = r.stdout.str()
    assert "Interrupted" not in out and "errors during collection" not in out
    r.assert_outcomes(passed=1, failed=2)
    assert "hyps/crash.circuit::compile" in out and "could not be compiled" in out and "RecursionError" in out
    assert "hyps/broken.circuit::compile" in out


def test_a_check_that_crashes_fails_its_items_and_the_rest_run(pytester):
    _project(
        pytester,
        a=tiny_circuit(expects="expect recovered >= 0.5\nexpect kl <= 100"),
        b=tiny_circuit(expects="expect recovered >= 0.5"),
    )
    pytester.makeconftest("""
import circuitdsl.testing as testing

_check = testing.check


def check(h, **kw):
    if h.name == "a":
        raise ZeroDivisionError("a bug in the engine")
    return _check(h, **kw)


testing.check = check


def pytest_unconfigure(config):  # the session runs in this process: later sessions must get the real check
    testing.check = _check
""")
    r = pytester.runpytest("-q", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=1, failed=2)
    assert r.stdout.str().count("internal error while checking this file (ZeroDivisionError: a bug in the engine)") >= 2
