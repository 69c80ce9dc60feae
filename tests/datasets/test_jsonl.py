"""The JSONL dataset format: good rows load, every kind of bad row is a located diagnostic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitdsl.datasets.jsonl import load, read_schema
from circuitdsl.diagnostics import CircuitError, render


class CharTokenizer:
    """Each space-led word of a small vocabulary is one token; anything else is one token per char."""

    WORDS = [" Mary", " John", " went", " to", " the", " store", " gave", " a", " drink"]

    def encode(self, text):
        out, i = [], 0
        while i < len(text):
            for j, w in enumerate(self.WORDS):
                if text.startswith(w, i) and (i + len(w) == len(text) or text[i + len(w)] == " "):
                    out.append(1000 + j)
                    i += len(w)
                    break
            else:
                out.append(ord(text[i]))
                i += 1
        return out

    def decode(self, ids):
        return "".join(self.WORDS[i - 1000] if i >= 1000 else chr(i) for i in ids)


def write(tmp_path: Path, lines: list) -> Path:
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return p


def errors(path: Path, tokenizer=None, **kw):
    with pytest.raises(CircuitError) as ei:
        load(path, tokenizer, "d", **kw)
    return ei.value.diagnostics


def test_token_rows(tmp_path):
    p = write(
        tmp_path,
        [
            {"tokens": [5, 9, 2, 5], "answer": 9, "wrong": 2, "positions": {"A1": 0, "A2": -1}, "A": 5, "id": "r1"},
            "",
            {
                "tokens": [7, 3, 4, 7],
                "answer": 3,
                "wrong": 4,
                "positions": {"A1": 0, "A2": 3},
                "fields": {"A": 7},
                "id": "r2",
            },
        ],
    )
    assert read_schema(p) == (("A",), ("A1", "A2"))
    ds = load(p, None, "mine")
    assert ds.name == "mine" and len(ds) == 2 and ds.field_names == ("A",) and ds.position_names == ("A1", "A2")
    e = ds[0]
    assert e.tokens == (5, 9, 2, 5) and e.answers == (9,) and e.wrongs == (2,) and e.id == "r1"
    assert e.scored_positions == (3,) and e.position("A2") == (3,) and e.field("A") == 5
    assert len(ds.layouts()) == 1


def test_text_rows_with_tokenizer_and_multi_position(tmp_path):
    p = write(
        tmp_path,
        [
            {
                "text": " Mary went to the store",
                "answer": [" to", " the"],
                "scored": [1, 2],
                "positions": {"names": [0]},
                "template": 0,
            },
            {
                "text": " John went to the store",
                "answer": [1002, " the"],
                "wrong": [" Mary", " John"],
                "scored": [1, 2],
                "positions": {"names": [0, 1]},
                "template": 1,
            },
        ],
    )
    tok = CharTokenizer()
    ds = load(p, tok, "t")
    assert ds[0].tokens == (1000, 1002, 1003, 1004, 1005) and ds[0].text == " Mary went to the store"
    assert ds[0].answers == (1003, 1004) and ds[0].scored == (1, 2) and ds[0].wrongs == ()
    assert ds[1].wrongs == (1000, 1001) and ds[1].position("names") == (0, 1)
    assert ds[0].layout != ds[1].layout


def test_duplicate_content_gets_distinct_ids(tmp_path):
    row = {"tokens": [1, 2, 3], "answer": 4}
    ds = load(write(tmp_path, [row, row]), None, "d")
    assert ds[0].id != ds[1].id and ds[1].id.startswith(ds[0].id)


def test_invalid_json_points_at_line_and_column(tmp_path):
    p = write(tmp_path, [{"tokens": [1], "answer": 2}, '{"tokens": [1, 2], "answer": }'])
    (d,) = errors(p)
    assert d.code == "E420" and d.span.line == 2 and d.span.col == 30 and d.span.file == str(p)
    with pytest.raises(CircuitError):
        read_schema(p)


def test_missing_answer(tmp_path):
    (d,) = errors(write(tmp_path, [{"tokens": [1, 2]}]))
    assert d.code == "E422" and "no `answer`" in d.message and d.span.line == 1 and d.hint


def test_position_out_of_range_names_the_key(tmp_path):
    p = write(tmp_path, [{"tokens": [1, 2, 3], "answer": 2, "positions": {"S": 3}}])
    (d,) = errors(p)
    assert d.code == "E423" and "position `S` 3 is out of range for a row of 3 tokens" in d.message
    assert d.span.col == p.read_text().index('"positions"') + 1
    assert d.hint == "indices run from 0 to 2 (or -3 to -1)"


def test_multi_token_answer(tmp_path):
    p = write(tmp_path, [{"text": " Mary went", "answer": " Bob"}])
    (d,) = errors(p, CharTokenizer())
    assert d.code == "E424" and "is 4 tokens" in d.message and "single token" in d.hint


def test_inconsistent_fields_and_positions(tmp_path):
    p = write(
        tmp_path,
        [
            {"tokens": [1, 2], "answer": 1, "A": 1, "positions": {"x": 0}},
            {"tokens": [1, 2], "answer": 1, "B": 1, "positions": {"x": 0}},
            {"tokens": [1, 2], "answer": 1, "A": 1, "positions": {"y": 0}},
        ],
    )
    ds = errors(p)
    assert [(d.code, d.span.line) for d in ds] == [("E425", 2), ("E425", 3)]
    assert "fields differ from line 1's: missing `A`; extra `B`" in ds[0].message
    assert "positions differ" in ds[1].message
    with pytest.raises(CircuitError) as ei:
        read_schema(p)
    assert len(ei.value.diagnostics) == 2


def test_text_without_tokenizer_and_bad_ids(tmp_path):
    p = write(
        tmp_path,
        [
            {"text": "hi", "answer": 1},
            {"tokens": [1, 99], "answer": 1},
            {"tokens": [1, 2], "answer": "x"},
            {"tokens": [1, 2], "answer": [1, 2]},
            {"tokens": [1, 2], "answer": 1, "id": "a"},
            {"tokens": [1, 3], "answer": 1, "id": "a"},
            [1, 2],
        ],
    )
    ds = errors(p, vocab_size=50)
    got = [(d.code, d.span.line) for d in ds]
    assert got == [("E422", 1), ("E423", 2), ("E424", 3), ("E421", 4), ("E426", 6), ("E421", 7)]


def test_empty_and_missing_files(tmp_path):
    (d,) = errors(write(tmp_path, [""]))
    assert d.code == "E427"
    with pytest.raises(CircuitError) as ei:
        read_schema(tmp_path / "nope.jsonl")
    assert ei.value.diagnostics[0].code == "E429"


def test_rendered_diagnostic_golden(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"tokens": [1, 2, 3], "answer": 2}\n{"tokens": [1, 2], "answer": 2, "scored": [5]}\n')
    (d,) = errors(p)
    assert render([d], "concise") == (
        f"{p}:2:33: E423 scored position 5 is out of range for a row of 2 tokens "
        "(help: indices run from 0 to 1 (or -2 to -1))"
    )
    full = render([d])
    assert full.splitlines()[0] == "error[E423]: scored position 5 is out of range for a row of 2 tokens"
    assert '2 | {"tokens": [1, 2], "answer": 2, "scored": [5]}' in full
    assert "^^^^^^^^" in full
