"""JSONL answers: a set of tokens at a scored position (logit_diff / prob_diff), numeric targets (mse),
and answer ids that are not bounded by the INPUT vocabulary (docs/DATASETS.md)."""

from __future__ import annotations

import json

import pytest

from circuitdsl.datasets.jsonl import load
from circuitdsl.diagnostics import CircuitError


def _write(tmp_path, *rows):
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _codes(p, **kw):
    with pytest.raises(CircuitError) as e:
        load(p, None, "d", **kw)
    return [(d.code, d.span.line) for d in e.value.diagnostics]


def test_answer_sets_greater_than_style(tmp_path):
    # "The war lasted from 1732 to 17" -> years above 32 vs at-or-below (token ids stand for two-digit years)
    p = _write(
        tmp_path,
        {"tokens": [1, 2, 32], "answer": [[33, 34, 35]], "wrong": [[30, 31, 32]]},
        {"tokens": [1, 2, 5], "answer": 9, "wrong": 4},
    )
    ds = load(p, None, "d")
    a, b = ds.examples
    assert a.answer_set(0) == (33, 34, 35) and a.wrong_set(0) == (30, 31, 32) and a.answers == (33,)
    assert b.answer_set(0) == (9,) and b.wrong_set(0) == (4,) and b.answer_sets == ()


def test_answer_sets_per_scored_position(tmp_path):
    p = _write(tmp_path, {"tokens": [1, 2, 3], "scored": [1, 2], "answer": [[4, 5], 6], "wrong": [7, [8]]})
    e = load(p, None, "d").examples[0]
    assert (e.answer_set(0), e.answer_set(1), e.wrong_set(0), e.wrong_set(1)) == ((4, 5), (6,), (7,), (8,))


def test_a_flat_list_is_one_answer_per_scored_position_not_a_set(tmp_path):
    p = _write(tmp_path, {"tokens": [1, 2, 3], "answer": [4, 5]})
    assert _codes(p) == [("E421", 1)]


def test_bad_sets(tmp_path):
    p = _write(
        tmp_path,
        {"tokens": [1, 2, 3], "answer": [[]]},
        {"tokens": [1, 2, 3], "answer": [[4, 4]]},
        {"tokens": [1, 2, 3], "answer": [[4, [5]]]},
        {"tokens": [1, 2, 3], "answer": [[4, -1]]},
    )
    assert _codes(p) == [("E421", 1), ("E421", 2), ("E421", 3), ("E423", 4)]


def test_targets_for_mse(tmp_path):
    p = _write(
        tmp_path,
        {"tokens": [1, 2, 3], "target": 2.5},
        {"tokens": [1, 2], "target": [1], "answer": 0},
        {"tokens": [1, 2, 3], "scored": [0, 2], "target": [0.5, -1]},
    )
    a, b, c = load(p, None, "d").examples
    assert a.targets == (2.5,) and a.answers == () and b.targets == (1.0,) and b.answers == (0,)
    assert c.targets == (0.5, -1.0)


def test_bad_targets(tmp_path):
    p = _write(
        tmp_path,
        {"tokens": [1, 2], "target": "x"},
        {"tokens": [1, 2], "target": [1, 2]},
        {"tokens": [1, 2], "target": True},
        {"tokens": [1, 2]},
    )
    assert _codes(p) == [("E421", 1), ("E421", 2), ("E421", 3), ("E422", 4)]


def test_answers_are_not_bounded_by_the_input_vocabulary(tmp_path):
    # an output vocabulary larger than the input one: answer 20 with 8 input tokens is for the engine to check
    p = _write(tmp_path, {"tokens": [1, 2, 7], "answer": 20, "wrong": [[21, 22]]})
    e = load(p, None, "d", vocab_size=8).examples[0]
    assert e.answers == (20,) and e.wrong_set(0) == (21, 22)
    assert _codes(_write(tmp_path, {"tokens": [1, 2, 8], "answer": 2}), vocab_size=8) == [("E423", 1)]


def test_ids_of_plain_rows_do_not_change(tmp_path):
    # content ids of rows without sets or targets are what they were (saved results name them)
    from circuitdsl.datasets.core import Example

    e = Example.make([1, 2, 3], 4, wrongs=5)
    assert e.id == "7be1a65cfa292735"  # as computed before answer sets existed
    assert Example.make([1, 2, 3], [[4, 6]], wrongs=5).id != e.id
