"""circuitdsl.strategies: argument validation names the bad value; generated inputs have the generators'
shape; hypothesis variants stay valid; generated .circuit sources compile to diagnostics, never a traceback."""

from __future__ import annotations

import json
import re

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings

from circuitdsl import strategies as S
from circuitdsl.compiler import compile_source
from circuitdsl.datasets import registry
from circuitdsl.diagnostics import Diagnostic, has_errors
from circuitdsl.ir import Feature, FeatureKind, NodeKind
from circuitdsl.testing import compile_hypothesis

from .conftest import tiny_circuit

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
H = compile_hypothesis(tiny_circuit(expects="expect recovered >= 0.5", feature="(field B, token at A1)"))


class WordTokenizer:
    """A word-level tokenizer: ` word`, `word` and punctuation are one token each (ids assigned on first sight)."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        return [self.ids.setdefault(p, len(self.ids)) for p in re.findall(r" ?[A-Za-z]+| ?[^A-Za-z\s]", text)]

    def decode(self, ids) -> str:
        inv = {v: k for k, v in self.ids.items()}
        return "".join(inv[i] for i in ids)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: S.induction_examples(length=3), r"length must be >= 5, got 3"),
        (lambda: S.induction_examples(vocab=100), r"vocab must be between 4 and 48, got 100"),
        (
            lambda: S.induction_examples(length=40),
            r"length: sequences of 40 tokens are longer than the tiny model's context \(32\)",
        ),
        (lambda: S.induction_examples(length=10, a1_positions=(9,)), r"a1_positions: 9 is not a valid A1 index"),
        (lambda: S.repeat_examples(length=10, vocab=8), r"length = 10 needs 10 distinct tokens but vocab has 8"),
        (lambda: S.ioi_prompts(tokenizer=WordTokenizer(), order="CBA"), r"order must be .*'CBA'"),
        (lambda: S.ioi_prompts(tokenizer=WordTokenizer(), templates=99), r"templates must be between 1 and 16, got 99"),
        (lambda: S.ioi_prompts(tokenizer=WordTokenizer(), templates=(0, 42)), r"templates: 42 is not a template index"),
        (lambda: S.ioi_prompts(tokenizer=WordTokenizer(), names=2), r"names must be 0 \(all\) or at least 3, got 2"),
        (lambda: S.generator_examples("nosuch"), r"unknown dataset generator 'nosuch'"),
        (lambda: S.generator_examples("induction", params={"colour": 1}), r"no parameter 'colour'"),
        (lambda: S.generator_examples("induction", rows=0), r"rows must be >= 1, got 0"),
        (lambda: S.jsonl_rows("/nonexistent/x.jsonl"), r"'/nonexistent/x.jsonl' is not a readable JSONL file"),
        (lambda: S.circuit_sources(names=("model",)), r"names: 'model' is not an identifier"),
        (lambda: S.circuit_sources(models=()), r"models must be a non-empty tuple"),
    ],
)
def test_bad_arguments_name_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: S.induction_examples(length="16"), r"length must be an int, got '16'"),
        (lambda: S.ioi_prompts(tokenizer=None), r"tokenizer must have encode"),
        (lambda: S.drop_node("hypotheses/x.circuit"), r"expected a compiled circuitdsl.ir.Hypothesis, got str"),
        (lambda: S.coarser_features("input"), r"feature must be an ir.Feature, got 'input'"),
        (lambda: S.jsonl_rows(3), r"path must be a str or Path, got 3"),
    ],
)
def test_wrong_types_name_the_value(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def _generator_layouts(name, **kw):
    return {e.layout for e in registry.build(name, kw.pop("tokenizer", None), kw).examples}


@FAST
@given(S.induction_examples(length=10, a1_positions=(0, 3)))
def test_induction_inputs_have_the_generators_layout_and_fields(x):
    assert x.layout in _generator_layouts("induction", n=8, length=10, layouts=2, a1=0, seed=0) | _generator_layouts(
        "induction", n=8, length=10, layouts=1, a1=3, seed=0
    )
    a, b = x.field("A"), x.field("B")
    assert x.token_at("A1") == a == x.token_at("A2") and x.token_at("B1") == b and x.answers == (b,)
    assert x.tokens.count(a) == 2 and x.tokens.count(b) == 1


@FAST
@given(S.repeat_examples(length=5))
def test_repeat_inputs(x):
    assert x.tokens[:5] == x.tokens[5:] and len(set(x.tokens[:5])) == 5
    assert x.layout in _generator_layouts("repeat", n=4, length=5, seed=0)


TOK = WordTokenizer()


@FAST
@given(S.ioi_prompts(tokenizer=TOK, templates=(0, 2)))
def test_ioi_prompts_come_from_the_templates_and_pools(x):
    from circuitdsl.datasets import ioi

    assert x.field("io") in ioi.NAMES and x.field("s") in ioi.NAMES and x.field("io") != x.field("s")
    assert x.text.startswith(("When", "Then")) and x.field("template") in (0, 2)
    assert x.token_at("IO") == TOK.encode(" " + x.field("io"))[0] == x.answers[0]
    assert x.token_at("S2") == x.token_at("S1") == x.wrongs[0]
    layouts = _generator_layouts("ioi", tokenizer=TOK, n=8, templates=[0, 2], seed=0)
    assert x.layout in layouts


def test_generator_rows_and_jsonl_rows(tmp_path):
    lengths = set()

    @settings(max_examples=10, deadline=None)
    @given(S.generator_examples("induction", params={"length": 8}, rows=4))
    def rows_of(x):
        lengths.add(len(x.tokens))

    rows_of()
    assert lengths == {8}
    path = tmp_path / "d.jsonl"
    rows = [{"tokens": [1, 2, 3, 1], "answer": 2, "A": 1}, {"tokens": [4, 5, 6, 4], "answer": 5, "A": 4}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    seen = set()

    @settings(max_examples=20, deadline=None)
    @given(S.jsonl_rows(path))
    def collect(x):
        seen.add(x.tokens)

    collect()
    assert seen == {(1, 2, 3, 1), (4, 5, 6, 4)}


def _valid(h) -> None:
    """Every claimed node lies on a claimed path from an embedding to out; edges run forward."""
    from circuitdsl.engine.derive import upstream

    out = [v for v in h.graph if v.kind is NodeKind.OUT]
    assert len(out) == 1
    for c in h.claims:
        v = c.node
        if v.kind is not NodeKind.OUT:
            assert nx.has_path(h.graph, v, out[0]), f"{v} does not reach out in {h.name}"
        if v.kind not in (NodeKind.EMBED, NodeKind.POS, NodeKind.OUT):
            assert any(nx.has_path(h.graph, u, v) for u in h.graph if u.kind in (NodeKind.EMBED, NodeKind.POS))
    for e in h.edges:
        assert e.sender in upstream(e.receiver, h.model.shape)
    assert set(h.graph.nodes) == set(h.claimed_nodes)


@FAST
@given(S.variants(H))
def test_variants_are_valid_hypotheses(v):
    _valid(v)
    assert v.name != H.name


@FAST
@given(S.drop_edge(H))
def test_drop_edge_removes_exactly_one_edge_or_prunes(v):
    assert set(v.edges) < set(H.edges)


@FAST
@given(S.add_edge(H))
def test_add_edge_adds_one_forward_edge(v):
    assert len(set(v.edges) - set(H.edges)) == 1 and set(H.edges) <= set(v.edges)


def test_coarser_features():
    b, a1 = Feature(FeatureKind.FIELD, ("B",)), Feature(FeatureKind.TOKEN_AT, ("A1",))
    tup = Feature(FeatureKind.TUPLE, parts=(b, a1))
    assert set(S.coarser_features(tup)) == {a1, b, Feature(FeatureKind.CONSTANT)}
    assert S.coarser_features(Feature(FeatureKind.CONSTANT)) == ()
    ident = S.coarser_features(Feature(FeatureKind.IDENTITY), fields=("A",))
    assert ident == (Feature(FeatureKind.FIELD, ("A",)), Feature(FeatureKind.CONSTANT))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(S.circuit_sources())
def test_generated_sources_compile_to_diagnostics(text):
    result = compile_source(text, "<fuzz>")
    assert all(isinstance(d, Diagnostic) for d in result.diagnostics)
    assert (result.hypothesis is None) == has_errors(result.diagnostics)


def test_strategies_module_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; import circuitdsl.strategies as S; from circuitdsl.testing import compile_hypothesis; "
        "S.variants(compile_hypothesis('hypotheses/induction_naive.circuit')); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    assert out.stdout.strip() == "False"


# ---- family_pairs: (x, x') for `ablate unclaimed by paired D2` ------------------------------------
PAIRED_TINY = """model tiny
dataset a = induction(n = 16, seed = 0, length = 10, layouts = 2)
dataset b = induction(n = 16, seed = 3, length = 10, layouts = 2)
metric loss
ablate unclaimed by paired b
node embed depends on input
edge embed -> out
"""


def _induction_rows(seed):
    return registry.build("induction", None, {"n": 16, "seed": seed, "length": 10, "layouts": 2}).examples


@FAST
@given(S.family_pairs(compile_hypothesis(PAIRED_TINY), max_seed=20))
def test_generator_pairs_are_rows_of_both_generators_at_shifted_seeds(pair):
    x, y = pair
    assert x.layout == y.layout
    # x is row j of the file's `a` with its seed shifted by k, y row j of `b` with its seed shifted by the same k
    hits = [(k, rows.index(x)) for k in range(21) if x in (rows := _induction_rows(k))]
    assert hits and any(_induction_rows(3 + k)[j] == y for k, j in hits)


def test_ioi_pairs_are_the_abc_corruption_of_the_drawn_prompt():
    from circuitdsl.datasets import ioi

    h = compile_hypothesis(
        PAIRED_TINY.replace(
            "induction(n = 16, seed = 0, length = 10, layouts = 2)", "ioi(n = 8, names = 8, templates = 2)"
        )
        .replace("induction(n = 16, seed = 3, length = 10, layouts = 2)", "ioi_abc(n = 8, names = 8, templates = 2)")
        .replace("metric loss", "metric logit_diff")
    )
    layouts = _generator_layouts("ioi", tokenizer=TOK, n=8, templates=2, names=8, seed=0)
    names8 = ioi.vocabulary(TOK, 8)[0]

    @FAST
    @given(S.family_pairs(h, tokenizer=TOK))
    def check(pair):
        x, y = pair
        assert x.layout == y.layout and x.layout in layouts
        assert not x.field("corrupted") and y.field("corrupted")
        for f in ("template", "order", "place", "object"):
            assert x.field(f) == y.field(f)
        assert y.field("clean_io") == x.field("io") and y.field("clean_s") == x.field("s")
        assert y.answers == x.answers and y.wrongs == x.wrongs
        abc = {y.field("io"), y.field("s"), y.field("s2")}
        assert len(abc) == 3 and not abc & {x.field("io"), x.field("s")} and abc <= set(names8)
        assert x.field("template") in (0, 1) and {x.field("io"), x.field("s")} <= set(names8)

    check()


def test_jsonl_pairs_are_rows_at_one_index(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    rows_a = [{"tokens": [1, 2, 3, 1], "answer": 2}, {"tokens": [4, 5, 6, 7, 4], "answer": 5}]
    rows_b = [
        {"tokens": [9, 8, 7, 9], "answer": 2},
        {"tokens": [10, 11, 12, 13, 10], "answer": 5},
        {"tokens": [1, 1], "answer": 1},
    ]
    a.write_text("\n".join(json.dumps(r) for r in rows_a) + "\n")
    b.write_text("\n".join(json.dumps(r) for r in rows_b) + "\n")
    h = compile_hypothesis(
        f'model tiny\ndataset a = "{a}"\ndataset b = "{b}"\nmetric loss\nablate unclaimed by paired b\n'
        "node embed depends on input\nedge embed -> out\n"
    )
    seen = set()

    @settings(max_examples=20, deadline=None)
    @given(S.family_pairs(h))
    def collect(pair):
        assert pair[0].layout == pair[1].layout
        seen.add((pair[0].tokens, pair[1].tokens))

    collect()
    assert seen == {((1, 2, 3, 1), (9, 8, 7, 9)), ((4, 5, 6, 7, 4), (10, 11, 12, 13, 10))}


def test_family_pairs_needs_a_paired_hypothesis():
    with pytest.raises(ValueError, match=r"does not use `ablate unclaimed by paired D2` \(it uses resample\)"):
        S.family_pairs(H)
    with pytest.raises(TypeError, match="expected a compiled circuitdsl.ir.Hypothesis"):
        S.family_pairs("x.circuit")
