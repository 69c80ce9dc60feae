"""circuitdsl.falsify and `circuitdsl falsify` on a deliberately wrong tiny hypothesis."""

from __future__ import annotations

import pytest

from circuitdsl.cli import main
from circuitdsl.falsify import falsify
from circuitdsl.testing import compile_hypothesis

from .conftest import tiny_circuit

# Wrong on purpose: the induction heads' output is claimed to depend on A (the current token), not on
# B (the token to copy), so their class draws hand them inputs with another B.
WRONG = tiny_circuit(expects="", feature="field A")


def test_finds_a_shrunk_counterexample_on_a_wrong_hypothesis():
    h = compile_hypothesis(WRONG)
    cx = falsify(h, max_examples=15, seed=0)
    assert cx.found
    assert cx.threshold == pytest.approx(0.5 * abs(cx.gap))
    s, w = cx.shrunk, cx.worst
    assert s.abs_delta >= cx.threshold and s.abs_delta == pytest.approx(abs(s.m_scrubbed - s.m_model))
    assert w.abs_delta >= s.abs_delta
    # shrunk: simpler than the largest departure seen (smaller tokens, fewer distinct fillers)
    x = s.example
    assert sum(x.tokens) <= sum(w.example.tokens)
    assert len(set(x.tokens)) <= len(set(w.example.tokens))
    assert len(set(x.tokens)) <= 4  # A, B and at most two filler tokens survive shrinking
    assert "COUNTEREXAMPLE (shrunk)" in cx.render()


def test_scores_are_the_engines_for_an_example_of_the_dataset():
    """An input that is already in the dataset gets exactly its per-example scores from the scrub of D."""
    from circuitdsl.falsify import Falsifier

    h = compile_hypothesis(WRONG)
    fz = Falsifier(h, seed=0)
    mm, ms, _ = fz.dataset_scores()
    for i in (0, 5):
        s = fz.score(fz.ds.examples[i])
        assert s.in_dataset
        assert s.m_model == pytest.approx(mm[i], abs=1e-6) and s.m_scrubbed == pytest.approx(ms[i], abs=1e-6)


def test_search_is_reproducible_for_a_seed():
    h = compile_hypothesis(WRONG)
    a = falsify(h, max_examples=5, seed=1, threshold=1e6)
    b = falsify(h, max_examples=5, seed=1, threshold=1e6)
    assert not a.found and a.worst == b.worst and a.tried == b.tried


def test_cli(tmp_path, capsys):
    f = tmp_path / "wrong.circuit"
    f.write_text(WRONG)
    assert main(["falsify", str(f), "--max-examples", "15"]) == 1
    out, err = capsys.readouterr()
    assert "COUNTEREXAMPLE (shrunk)" in out and "m(model)" in out and "|delta|" in out and err == ""
    assert main(["falsify", str(f), "--max-examples", "3", "--threshold", "1000"]) == 0
    out, _ = capsys.readouterr()
    assert "no input reached the threshold" in out and "largest departure seen" in out
    assert main(["falsify", str(f), "--max-examples", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "error[E902]: --max-examples must be a positive integer, not 0" in err
    bad = tmp_path / "bad.circuit"
    bad.write_text("model tiny\ndataset d = induction(n = 8)\nedge a9.0 -> out\n")
    assert main(["falsify", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "error[E20" in err


def test_bad_arguments():
    h = compile_hypothesis(WRONG)
    with pytest.raises(ValueError, match="max_examples must be a positive int, got 0"):
        falsify(h, max_examples=0)
    with pytest.raises(ValueError, match="threshold must be a positive number, got -1"):
        falsify(h, threshold=-1)
    with pytest.raises(TypeError, match="got str"):
        falsify("wrong.circuit")
