"""Claims that would change nothing are errors (SEMANTICS v3 section 6): a feature or position claim on
`out` (issue 11, point 2)."""

from __future__ import annotations

import pytest

from circuitdsl.compiler import compile_source

HEAD = "model smollm2-135m\ndataset d = fakegen(n = 4)\n"


def _codes(text):
    r = compile_source(HEAD + text)
    return r, [(d.code, d.span.line, d.span.col) for d in r.diagnostics if d.code != "N301"]


@pytest.mark.parametrize(
    "claim",
    [
        "node out depends on field answer",
        "node out depends on nothing",
        "node out at end",
        "node out at end depends on input",
        "node out depends on (field answer, token at end)",
    ],
)
def test_feature_or_position_claim_on_out_is_an_error(claim):
    r, codes = _codes(f"edge embed -> a1.0 -> out\n{claim}\n")
    assert r.hypothesis is None
    assert codes == [("E309", 4, 6)]
    d = next(d for d in r.diagnostics if d.code == "E309")
    assert d.hint and "out" in d.message


def test_claim_on_out_through_a_group_is_an_error():
    r, codes = _codes("group g = a1.0, out\nedge embed -> a1.0 -> out\nnode g depends on field answer\n")
    assert codes == [("E309", 5, 6)]
    assert "`g`" in next(d for d in r.diagnostics if d.code == "E309").message


@pytest.mark.parametrize("claim", ["node out", "node out depends on input"])
def test_plain_claim_on_out_states_what_out_is(claim):
    r, codes = _codes(f"edge embed -> a1.0 -> out\n{claim}\n")
    assert r.hypothesis is not None and codes == []
