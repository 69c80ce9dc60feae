"""The ioi / ioi_abc generators on SmolLM2's real tokenizer."""

from __future__ import annotations

import pytest

from circuitdsl.datasets import registry
from circuitdsl.datasets.ioi import BABA_TEMPLATES, NAMES, POSITIONS, IOIError


def build(tok, name="ioi", **args):
    return registry.build(name, tok, args)


def test_registered_with_schema():
    for name in ("ioi", "ioi_abc"):
        info = registry.get(name)
        assert info is not None
        assert set(POSITIONS) == set(info.positions) == {"IO", "S1", "S1_plus1", "S2", "END"}
        assert {"io", "s", "order", "template"} <= set(info.fields)
        assert dict(info.params)["n"] == 32 and dict(info.params)["seed"] == 0


def test_names_places_objects_are_single_tokens(smollm2_tokenizer):
    tok = smollm2_tokenizer
    ds = build(tok, n=64, templates="all")
    for e in ds:
        for slot in ("IO", "S1", "S2"):
            (i,) = e.position(slot)
            assert tok.encode(" " + tok.decode([e.tokens[i]]).strip()) == [e.tokens[i]]
        assert e.token_at("IO") == e.answers[0] == tok.encode(" " + e.field("io"))[0]
        assert e.token_at("S1") == e.token_at("S2") == e.wrongs[0] == tok.encode(" " + e.field("s"))[0]
        assert e.position("S1_plus1") == (e.position("S1")[0] + 1,)
        assert e.position("END") == (len(e.tokens) - 1,)
        assert e.tokens == tuple(tok.encode(e.text))  # natural tokenization, no BOS
        assert e.text.endswith((" to", " said to"))


def test_example_prompt_and_orders(smollm2_tokenizer):
    ds = build(smollm2_tokenizer, n=4)
    abba, baba = ds[0], ds[1]
    assert abba.field("order") == "ABBA" and baba.field("order") == "BABA"
    io, s = abba.field("io"), abba.field("s")
    assert abba.text == f"When {io} and {s} went to the {abba.field('place')}, {s} gave a {abba.field('object')} to"
    io, s = baba.field("io"), baba.field("s")
    assert baba.text.startswith(f"When {s} and {io} went")
    assert abba.position("IO")[0] < abba.position("S1")[0]
    assert baba.position("S1")[0] < baba.position("IO")[0]


def test_layout_shared_within_template_and_order(smollm2_tokenizer):
    ds = build(smollm2_tokenizer, n=96, templates="all")
    by_key: dict = {}
    for e in ds:
        by_key.setdefault((e.field("template"), e.field("order")), set()).add(e.layout)
    assert len(by_key) == 2 * len(BABA_TEMPLATES)
    assert all(len(layouts) == 1 for layouts in by_key.values())
    # the default dataset (one template, both orders) has two layouts of n/2 rows each
    pools = build(smollm2_tokenizer, n=32).layouts()
    assert sorted(len(v) for v in pools.values()) == [16, 16]


def test_abc_is_paired_by_row(smollm2_tokenizer):
    tok = smollm2_tokenizer
    clean = build(tok, n=40, seed=3, templates="all")
    abc = build(tok, "ioi_abc", n=40, seed=3, templates="all")
    assert len(clean) == len(abc) == 40
    for x, y in zip(clean, abc):
        assert x.layout == y.layout
        for f in ("template", "order", "place", "object"):
            assert x.field(f) == y.field(f)
        names = {y.field("io"), y.field("s"), y.field("s2")}
        assert len(names) == 3 and not names & {x.field("io"), x.field("s")}
        assert y.answers == x.answers and y.wrongs == x.wrongs  # scored against the clean names
        assert y.field("clean_io") == x.field("io") and y.field("corrupted") is True
        # only the three name tokens differ
        diff = [i for i, (a, b) in enumerate(zip(x.tokens, y.tokens)) if a != b]
        named = {x.position(p)[0] for p in ("IO", "S1", "S2")}
        assert set(diff) == named


def test_deterministic_and_seed_dependent(smollm2_tokenizer):
    a = build(smollm2_tokenizer, n=16, seed=1)
    b = build(smollm2_tokenizer, n=16, seed=1)
    c = build(smollm2_tokenizer, n=16, seed=2)
    assert a.examples == b.examples
    assert [e.tokens for e in a] != [e.tokens for e in c]
    # a prefix of a longer draw: rows do not depend on n
    assert build(smollm2_tokenizer, n=24, seed=1).examples[:16] == a.examples
    assert len({e.id for e in build(smollm2_tokenizer, n=200, seed=0)}) == 200  # no duplicate rows


def test_names_param_restricts_pool(smollm2_tokenizer):
    ds = build(smollm2_tokenizer, n=32, names=4)
    used = {e.field("io") for e in ds} | {e.field("s") for e in ds}
    assert len(used) <= 4 and used <= set(NAMES)


@pytest.mark.parametrize(
    "args, msg",
    [
        ({"n": 0}, "n must be"),
        ({"order": "AB"}, "order must be"),
        ({"templates": 99}, "templates must be between"),
        ({"templates": [0, 42]}, "template indices"),
        ({"names": 2}, "names must be"),
    ],
)
def test_bad_arguments_name_the_value(smollm2_tokenizer, args, msg):
    with pytest.raises(IOIError, match=msg):
        build(smollm2_tokenizer, **args)


def test_needs_a_tokenizer():
    with pytest.raises(IOIError, match="tokenizer"):
        build(None, n=2)
