"""Dataset diagnostics point at the JSONL file, line and column (issue 18): lines end only at "\\n",
every bad value is a diagnostic (never a traceback), and a problem found later, by the engine, is
still reported at the example's row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitdsl.datasets.jsonl import load, read_schema
from circuitdsl.diagnostics import CircuitError, render


def _rows(n: int = 4, **extra) -> list[dict]:
    return [{"tokens": [1, 2, 3, 4], "answer": 2, "positions": {"A": 0}, "f": i % 2, **extra} for i in range(n)]


def _write(tmp_path: Path, lines: list, name: str = "d.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join((x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines),
                 encoding="utf-8")  # fmt: skip
    return p


def _errors(path: Path, **kw) -> list:
    with pytest.raises(CircuitError) as e:
        load(path, None, "d", **kw)
    return list(e.value.diagnostics)


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85", "\u2028\u2029"])
def test_line_separators_inside_a_json_string_are_valid_json(tmp_path, sep):
    rows = _rows(3)
    rows[1]["note"] = f"before{sep}after"
    rows = [{**r, "note": r.get("note", "plain")} for r in rows]
    p = _write(tmp_path, rows)
    ds = load(p, None, "d")
    assert len(ds) == 3 and ds[1].field("note") == f"before{sep}after"
    assert read_schema(p) == (("f", "note"), ("A",))


def test_a_line_separator_does_not_shift_later_line_numbers(tmp_path):
    rows = _rows(4)
    rows[0]["note"] = "x\u2028y"
    rows = [{**r, "note": r.get("note", "z")} for r in rows]
    p = _write(tmp_path, rows[:2] + ['{"tokens": [1, 2], "answer": 1,'] + rows[2:])
    (d,) = _errors(p)
    assert d.code == "E420" and d.span.file == str(p) and d.span.line == 3


def test_not_utf8_is_a_line_and_column(tmp_path):
    p = tmp_path / "d.jsonl"
    good = json.dumps(_rows(1)[0]).encode()
    p.write_bytes(good + b"\n" + good.replace(b'"f"', b'"\xe9f"') + b"\n")
    (d,) = _errors(p)
    assert d.code == "E429" and (d.span.line, d.span.col) == (2, good.index(b'"f"') + 2)
    assert "0xe9" in d.message and "byte offset" not in d.message


def test_crlf_and_a_byte_order_mark_are_read(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\r\n" for r in _rows(3)))
    assert len(load(p, None, "d")) == 3


@pytest.mark.parametrize("value, words", [
    ("9" * 5000, "5000 digits"), ("1e999", "beyond the largest float"), ("NaN", "`NaN` is not JSON"),
    ("-Infinity", "`-Infinity` is not JSON"), ("[" * 100000 + "]" * 100000, "nested too deep"),
])  # fmt: skip
def test_hostile_numbers_and_nesting_are_e420_at_their_line(tmp_path, value, words):
    lines = [json.dumps(r) for r in _rows(3)]
    lines[1] = lines[1].replace('"answer": 2', f'"answer": {value}')
    (d,) = _errors(_write(tmp_path, lines))
    assert d.code == "E420" and d.span.line == 2 and words in d.message


def test_a_deeply_nested_field_value_is_refused_without_recursion(tmp_path):
    rows = _rows(3)
    rows[2]["f"] = json.loads("[" * 500 + "1" + "]" * 500)
    (d,) = _errors(_write(tmp_path, rows))
    assert d.code == "E421" and d.span.line == 3 and "nest at most" in d.hint


def test_a_row_longer_than_the_models_context_is_e415_at_its_tokens(tmp_path):
    rows = _rows(3)
    rows[1]["tokens"] = list(range(40))
    p = _write(tmp_path, rows)
    (d,) = _errors(p, n_ctx=32)
    assert d.code == "E415" and d.span.line == 2 and "40 tokens" in d.message and "32" in d.message
    raw = p.read_text().splitlines()[1]
    assert d.span.col == raw.index('"tokens"') + 1


def test_many_bad_lines_are_capped(tmp_path):
    p = _write(tmp_path, ['{"tokens": [1]'] * 5000)
    diags = _errors(p)
    assert len(diags) == 20 and "4980 more problems" in diags[-1].hint
    assert len(render(diags, "full")) < 20_000


def test_examples_remember_their_row(tmp_path):
    p = _write(tmp_path, _rows(3))
    ds = load(p, None, "d")
    assert [(e.origin.file, e.origin.line) for e in ds] == [(str(p), 1), (str(p), 2), (str(p), 3)]
    assert ds[0] == type(ds[0])(**{**ds[0].__dict__, "origin": None})  # not part of an example's identity
