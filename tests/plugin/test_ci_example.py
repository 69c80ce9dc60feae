"""docs/CI.md's copy-paste example (tests/plugin/example/) runs and passes in its own pytest session."""

from __future__ import annotations

import shutil

from .conftest import EXAMPLE, HERE


def test_the_copy_paste_example_passes(pytester):
    for item in ("pyproject.toml", "hypotheses", "tests"):
        src = EXAMPLE / item
        if src.is_dir():
            shutil.copytree(src, pytester.path / item)
        else:
            shutil.copy(src, pytester.path / item)
    r = pytester.runpytest("-p", "no:cacheprovider", "-v")
    r.assert_outcomes(passed=4)
    out = r.stdout.str()
    assert "hypotheses/induction.circuit::recovered >= 0.9 PASSED" in out
    assert "tests/test_induction.py::test_induction_circuit PASSED" in out


def test_docs_show_the_example_verbatim():
    doc = (HERE.parents[1] / "docs" / "CI.md").read_text()
    for item in ("pyproject.toml", "hypotheses/induction.circuit", "tests/test_induction.py"):
        assert (EXAMPLE / item).read_text().strip() in doc, f"docs/CI.md does not show {item} verbatim"
