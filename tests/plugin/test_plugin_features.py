"""Issue 11, point 3, through the pytest plugin: two folders each with a `feats.py`, collected and checked in one
session, each file scored with the function of its own folder."""

from __future__ import annotations

from .conftest import tiny_circuit

PYPROJECT = '[tool.circuitdsl]\npaths = ["hyps"]\n'


def test_each_file_gets_the_feats_py_of_its_folder(pytester):
    pytester.makepyprojecttoml(PYPROJECT)
    for name, body in (
        ("a", "def f(example):\n    return example.field('B')\n"),
        ("b", "def f(example):\n    raise RuntimeError('this is b/feats.py')\n"),
    ):
        d = pytester.mkdir("hyps") / name if name == "a" else pytester.path / "hyps" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "feats.py").write_text(body)
        (d / "h.circuit").write_text(tiny_circuit(expects="expect recovered >= 0.1", feature="feats:f", n=16))
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "hyps")
    r.assert_outcomes(passed=1, failed=1)
    out = r.stdout.str()
    assert "this is b/feats.py" in out
