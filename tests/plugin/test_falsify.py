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


# ---- `ablate unclaimed by paired D2`: the search draws pairs (x, x') ------------------------------
def paired_circuit(feature: str = "field B") -> str:
    """tiny_circuit's claims with two induction datasets paired row by row (equal layouts at equal index:
    induction puts row i in layout i % layouts for every seed)."""
    src = tiny_circuit(expects="", feature=feature)
    src = src.replace(
        "dataset ind = induction(n = 32, seed = 0, length = 10, layouts = 1)",
        "dataset a = induction(n = 32, seed = 0, length = 10, layouts = 2)\n"
        "dataset b = induction(n = 32, seed = 1, length = 10, layouts = 2)\n"
        "ablate unclaimed by paired b",
    )
    assert "paired b" in src
    return src


PAIRED_WRONG = paired_circuit(feature="field A")


def test_paired_datasets_pair_by_layout():
    from circuitdsl.datasets import registry

    a = registry.build("induction", None, {"n": 32, "seed": 0, "length": 10, "layouts": 2}).examples
    b = registry.build("induction", None, {"n": 32, "seed": 1, "length": 10, "layouts": 2}).examples
    assert all(x.layout == y.layout for x, y in zip(a, b)) and len({x.layout for x in a}) == 2


def test_paired_scores_are_the_engines_for_a_row_of_the_dataset():
    """A row of D scored as a pair gets exactly its per-example scores from the scrub of D paired with D2,
    with D's own pair (its row of D2) whatever x' was passed."""
    from circuitdsl.falsify import Falsifier

    h = compile_hypothesis(PAIRED_WRONG)
    fz = Falsifier(h, seed=0)
    assert fz.paired and fz.other.name == "b"
    mm, ms, _ = fz.dataset_scores()
    for i in (0, 5, 12):
        for other in (fz.other.examples[i], fz.other.examples[(i + 2) % 32]):
            s = fz.score((fz.ds.examples[i], other))
            assert s.in_dataset and s.paired == fz.other.examples[i]
            assert s.m_model == pytest.approx(mm[i], abs=1e-6) and s.m_scrubbed == pytest.approx(ms[i], abs=1e-6)
        assert fz.score(fz.ds.examples[i]).m_scrubbed == pytest.approx(ms[i], abs=1e-6)  # a row needs no pair


def test_paired_score_of_a_new_input_depends_on_its_pair():
    from circuitdsl.datasets import registry
    from circuitdsl.falsify import Falsifier

    h = compile_hypothesis(PAIRED_WRONG)
    fz = Falsifier(h, seed=0)
    a = registry.build("induction", None, {"n": 32, "seed": 7, "length": 10, "layouts": 2}).examples
    b = registry.build("induction", None, {"n": 32, "seed": 8, "length": 10, "layouts": 2}).examples
    s1, s2 = fz.score((a[0], b[0])), fz.score((a[0], b[2]))
    assert not s1.in_dataset and s1.paired == b[0] and s2.paired == b[2]
    assert s1.m_model == pytest.approx(s2.m_model, abs=1e-6)  # the clean run does not see x'
    assert s1.m_scrubbed != pytest.approx(s2.m_scrubbed, abs=1e-4)  # the unclaimed parts ran on x'
    assert fz.score((a[0], b[0])) is s1 and fz.tried == 2  # cached by both ids
    assert fz.score((a[0], b[1])) is None and fz.rejected == 1  # x' of another layout than x
    with pytest.raises(TypeError, match="needs its paired row"):
        fz.score(a[0])
    plain = Falsifier(compile_hypothesis(WRONG), seed=0)
    with pytest.raises(TypeError, match="not paired: score takes one Example"):
        plain.score((a[0], b[0]))


def test_paired_search_finds_a_counterexample_with_a_paired_input():
    h = compile_hypothesis(PAIRED_WRONG)
    cx = falsify(h, max_examples=15, seed=0, threshold=1.0)
    assert cx.found and cx.paired and cx.threshold == 1.0
    s, w = cx.shrunk, cx.worst
    assert s.paired is not None and s.paired.layout == s.example.layout
    assert w.paired is not None and w.paired.layout == w.example.layout and w.abs_delta >= s.abs_delta >= 1.0
    text = cx.render()
    assert "COUNTEREXAMPLE (shrunk)" in text and "paired: " in text


def test_paired_search_is_reproducible_for_a_seed():
    h = compile_hypothesis(PAIRED_WRONG)
    a = falsify(h, max_examples=5, seed=1, threshold=1e6)
    b = falsify(h, max_examples=5, seed=1, threshold=1e6)
    assert not a.found and a.worst == b.worst and a.tried == b.tried and a.worst.paired is not None


def test_paired_cli(tmp_path, capsys):
    f = tmp_path / "paired.circuit"
    f.write_text(PAIRED_WRONG)
    assert main(["falsify", str(f), "--max-examples", "15", "--threshold", "1"]) == 1
    out, err = capsys.readouterr()
    assert "COUNTEREXAMPLE (shrunk)" in out and "paired: " in out and err == ""
