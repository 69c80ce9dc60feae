"""JSONL rows with text and named spans `[[NAME:text]]` (issue 17, item 2), resolved by a tokenizer; a span
that does not fall on token boundaries is E430 at file:line:col. The tokenizer here is a toy word-level one
written for the test (a word keeps its leading space, as in GPT-style BPE), so expected indices are
counted by hand."""

from __future__ import annotations

import json
import re

import pytest

from circuitdsl.datasets import jsonl
from circuitdsl.diagnostics import CircuitError


class WordTokenizer:
    _PIECE = re.compile(r" ?[A-Za-z]+| ?[0-9]+|[^A-Za-z0-9]")

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        return [self.vocab.setdefault(p, len(self.vocab)) for p in self._PIECE.findall(text)]

    def decode(self, ids) -> str:
        inv = {v: k for k, v in self.vocab.items()}
        return "".join(inv[i] for i in ids)


def _write(tmp_path, rows):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return f


def test_spans_name_the_last_token_of_their_span(tmp_path):
    tok = WordTokenizer()
    f = _write(tmp_path, [
        {"text": "Days: [[A:Monday]], Tuesday,[[END: Wednesday,]]", "answer": " Thursday", "wrong": " Monday"},
        # a span may start at a token's leading space or just after it: ' Tuesday' either way
        {"text": "Days: Monday,[[A:Tuesday]],[[END:Wednesday,]]", "answer": " Thursday", "wrong": " Monday"},
    ])  # fmt: skip
    ds = jsonl.load(f, tok, "d")
    # tokens: 'Days' ':' ' Monday' ',' ' Tuesday' ',' ' Wednesday' ','
    a, b = ds.examples
    assert a.text == "Days: Monday, Tuesday, Wednesday,"
    assert dict(a.positions) == {"A": (2,), "END": (7,)}
    assert b.text == "Days: Monday,Tuesday,Wednesday,"
    assert dict(b.positions) == {"A": (4,), "END": (7,)}
    assert [tok.decode([t]) for t in b.tokens] == ["Days", ":", " Monday", ",", "Tuesday", ",", "Wednesday", ","]
    assert jsonl.read_schema(f) == ((), ("A", "END"))


def test_a_name_marked_twice_is_both_tokens_and_markers_mix_with_positions(tmp_path):
    f = _write(tmp_path, [{"text": "[[X:a]] b [[X:c]] d", "answer": " e", "positions": {"first": 0}}] * 2)
    e = jsonl.load(f, WordTokenizer(), "d").examples[0]
    assert dict(e.positions) == {"X": (0, 2), "first": (0,)}


@pytest.mark.parametrize("text, col, message", [
    ("Days: [[A:Mon]]day, Tuesday,", 17, "span `A` ('Mon') does not fall on token boundaries"),
    ("Days: Mon[[A:day]], Tuesday,", 20, "span `A` ('day')"),
    ("Days: [[A:Monday, Tuesday,", 17, "never closed"),
    ("Days: [[A:Monday [[B:x]]]], Tuesday,", 17, "do not nest"),
    ("Days: [[A:]] Monday, Tuesday,", 17, "empty span"),
])  # fmt: skip
def test_bad_spans_are_E430_at_the_marker(tmp_path, text, col, message):
    f = _write(tmp_path, [{"text": "Days: [[A: Monday]], Tuesday,", "answer": " x"}, {"text": text, "answer": " x"}])
    with pytest.raises(CircuitError) as ei:
        jsonl.load(f, WordTokenizer(), "d")
    d = ei.value.diagnostics
    assert [x.code for x in d] == ["E430"], [x.message for x in d]  # no follow-on E425 for the same row
    assert message in d[0].message and d[0].span.line == 2 and d[0].span.col == col, d[0]


def test_a_name_both_marked_and_positioned_is_refused(tmp_path):
    f = _write(tmp_path, [{"text": "[[A:a]] b", "answer": " c", "positions": {"A": 1}}] * 2)
    with pytest.raises(CircuitError) as ei:
        jsonl.load(f, WordTokenizer(), "d")
    assert ei.value.diagnostics[0].code == "E430" and "both marked" in ei.value.diagnostics[0].message


def test_text_the_tokenizer_does_not_give_back(tmp_path):
    class Lossy(WordTokenizer):
        def decode(self, ids):
            return super().decode(ids).lower()

    f = _write(tmp_path, [{"text": "[[A:Big]] dog", "answer": " c"}] * 2)
    with pytest.raises(CircuitError) as ei:
        jsonl.load(f, Lossy(), "d")
    assert "does not give this `text` back" in ei.value.diagnostics[0].message


def test_tokens_command_shows_each_named_position(tmp_path, capsys):
    from circuitdsl.cli import main

    f = _write(tmp_path, [{"tokens": [5, 9, 2, 5], "answer": 9, "wrong": 2, "positions": {"A1": 0, "A2": 3}}] * 3)
    out = tmp_path / "t.json"
    assert main(["tokens", str(f), "--model", "tiny", "--rows", "1", "--json-out", str(out)]) == 0
    o = capsys.readouterr().out
    assert "line 1: 4 tokens" in o and "A2 -> 3 5" in o and "scored -> 3 5: answer 9, wrong 2" in o
    assert "(2 more rows" in o and "3 rows, 1 layout(s)" in o
    doc = json.loads(out.read_text())
    assert doc["rows"][2]["positions"]["A1"] == [{"index": 0, "token": "5"}]
    assert main(["tokens", str(tmp_path / "nope.jsonl"), "--model", "tiny"]) == 2
    assert "E404" in capsys.readouterr().err


@pytest.mark.slow
def test_spans_with_smollm2s_tokenizer_through_the_cli(tmp_path, capsys):
    from circuitdsl.cli import main

    f = _write(tmp_path, [
        {"text": "Days: Monday, Tuesday, [[END:Wednesday,]]", "answer": " Thursday", "wrong": " Wednesday"},
        {"text": "Days: Tuesday, Wed[[END:nesday,]]", "answer": " Thursday", "wrong": " Wednesday"},
    ])  # fmt: skip
    assert main(["tokens", str(f), "--model", "smollm2-135m"]) == 2
    e = capsys.readouterr().err
    assert f"{f}:2:" in e and "E430" in e and "' Wednesday'" in e
