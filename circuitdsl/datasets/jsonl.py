"""The JSONL dataset format (docs/DATASETS.md): one JSON object per line, one example per object.

    {"text": "When Mary and John went", "answer": " Mary", "wrong": " John", "positions": {"IO": 1}, "template": 0}
    {"tokens": [5, 9, 2, 5], "answer": 9, "scored": [3], "positions": {"A1": 0, "A2": 3}, "A": 5}

`read_schema` needs neither torch nor a tokenizer (the compiler checks names with it); `load`
tokenizes and validates every row. Every problem is a Diagnostic pointing at the file, the line
and (where there is one) the offending key; all problems of a file are reported together.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitdsl.datasets.core import Dataset, Example
from circuitdsl.diagnostics import CircuitError, Diagnostic
from circuitdsl.ir import Span

__all__ = ["RESERVED_KEYS", "read_schema", "load", "MAX_DIAGNOSTICS"]

RESERVED_KEYS = ("text", "tokens", "answer", "wrong", "target", "scored", "positions", "id", "fields")
"""Keys with a meaning of their own; every other key of a row is a feature field."""

MAX_DIAGNOSTICS = 20
"""At most this many problems are reported per file (the rest are counted)."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class _Row:
    line: int
    raw: str
    obj: dict[str, Any]


class _Collector:
    def __init__(self, path: Path):
        self.file = str(path)
        self.diags: list[Diagnostic] = []
        self.dropped = 0
        self.marks: dict[int, tuple[str | None, tuple[_Mark, ...]]] = {}
        """Each row's text with its span markers taken out, and the markers (parsed once per row)."""
        self.bad_marks: set[int] = set()
        """Rows whose markers are malformed (E430 reported; not compared with the first row's positions)."""

    def span(self, row: _Row | None, key: str | None = None, line: int | None = None) -> Span:
        if row is None:
            n = line or 1
            return Span(self.file, n, 1, n, 2)
        col, end = 1, max(2, len(row.raw) + 1)
        if key is not None:
            m = re.search(r'"' + re.escape(key) + r'"\s*:', row.raw)
            if m:
                col, end = m.start() + 1, m.start() + len(key) + 3
        return Span(self.file, row.line, col, row.line, end)

    def error(self, code: str, message: str, hint: str, row: _Row | None = None, key: str | None = None, line=None,
              span: Span | None = None):  # fmt: skip
        if len(self.diags) >= MAX_DIAGNOSTICS:
            self.dropped += 1
            return
        self.diags.append(Diagnostic(code=code, message=message, span=span or self.span(row, key, line), hint=hint))

    def raise_if_any(self) -> None:
        if not self.diags:
            return
        self.diags.sort(key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
        if self.dropped:
            last = self.diags[-1]
            self.diags[-1] = Diagnostic(
                last.code, last.message, last.span, last.label, f"{last.hint} ({self.dropped} more problems not shown)"
            )
        raise CircuitError(self.diags)


class _BadNumber(ValueError):
    """A JSON number outside what a row can hold (see _parse_int / _parse_float)."""


def _parse_int(text: str) -> int:
    digits = text.lstrip("-").lstrip("0")
    if len(digits) > 19:  # before int(): Python refuses to convert more than 4,300 digits
        raise _BadNumber(f"the integer {text[:12]}... has {len(digits)} digits (at most 19)")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"the number {text[:24]} is beyond the largest float")
    return value


def _no_constant(name: str):
    raise _BadNumber(f"`{name}` is not JSON (JSON numbers are finite)")


def _decode(raw: str):
    """json.loads as the format says: finite numbers only (no NaN/Infinity), integers of at most 19 digits."""
    return json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant)


def _read_text(path: Path) -> str:
    """The file's text; E429 (with the line and column of a byte that is not UTF-8) if it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CircuitError(
            [Diagnostic("E429", f"dataset file not found: {path}", hint="paths are relative to the .circuit file")]
        ) from None
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise CircuitError(
            [Diagnostic("E429", f"cannot read dataset file {path}: {why}", hint="give the path of a JSONL file")]
        ) from None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        column = len(data[start : e.start].decode("utf-8", "replace")) + 1
        raise CircuitError([Diagnostic(
            "E429", f"dataset file {path} is not UTF-8 text: byte 0x{data[e.start]:02x} cannot start or continue a character",
            Span(str(path), line, column, line, column + 1), hint="a JSONL file is UTF-8 text: re-save it as UTF-8")]) from None  # fmt: skip


def _read_rows(path: Path, col: _Collector) -> list[_Row]:
    text = _read_text(path)
    rows = []
    # JSONL lines end at "\n" (optionally "\r\n"); U+2028, U+2029, \x85 and the other characters
    # `str.splitlines` would break at are valid inside a JSON string and stay in their row.
    for n, raw in enumerate(text.split("\n"), start=1):
        if raw.endswith("\r"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        try:
            obj = _decode(raw)
        except json.JSONDecodeError as e:
            col.error("E420", f"invalid JSON: {e.msg}", "each line of a JSONL file is one complete JSON object",
                      span=Span(col.file, n, e.colno, n, e.colno + 1))  # fmt: skip
            continue
        except _BadNumber as e:
            col.error("E420", f"invalid JSON: {e}", "each line of a JSONL file is one complete JSON object", line=n)
            continue
        except RecursionError:
            col.error(
                "E420",
                "invalid JSON: arrays or objects nested too deep",
                "a row's values nest a few levels at most",
                line=n,
            )
            continue
        if not isinstance(obj, dict):
            col.error(
                "E421",
                f"a row must be a JSON object, not {type(obj).__name__}",
                'write e.g. {"tokens": [1, 2], "answer": 3}',
                line=n,
            )
            continue
        rows.append(_Row(n, raw, obj))
    if not rows and not col.diags:
        col.error("E427", "the dataset file has no rows", "add one JSON object per line", line=1)
    return rows


def _row_fields(row: _Row, col: _Collector) -> dict[str, Any]:
    out = {k: v for k, v in row.obj.items() if k not in RESERVED_KEYS}
    nested = row.obj.get("fields", {})
    if not isinstance(nested, dict):
        col.error(
            "E421", "`fields` must be an object of feature values", 'write "fields": {"name": value}', row, "fields"
        )
        nested = {}
    for k, v in nested.items():
        if k in out:
            col.error(
                "E421",
                f"field `{k}` is given twice (at the top level and under `fields`)",
                "keep one of them",
                row,
                "fields",
            )
        out[k] = v
    for k in list(out):
        if not _NAME.match(k):
            col.error(
                "E421",
                f"field name `{k}` is not an identifier",
                "field names look like `io_name` (letters, digits, _)",
                row,
                k,
            )
            del out[k]
    return out


def _row_positions(row: _Row, col: _Collector) -> dict[str, Any]:
    """The row's named positions: `positions` {name: index or [indices]}, and the names of the text's span
    markers (their values are the _Mark objects, resolved to token indices by `_resolve_marks`)."""
    pos = row.obj.get("positions", {})
    if not isinstance(pos, dict):
        col.error(
            "E421",
            "`positions` must be an object {name: index or [indices]}",
            'write "positions": {"end": -1}',
            row,
            "positions",
        )
        pos = {}
    for k in list(pos):
        if not _NAME.match(k):
            col.error(
                "E421",
                f"position name `{k}` is not an identifier",
                "position names look like `S2` (letters, digits, _)",
                row,
                "positions",
            )
            pos = {kk: vv for kk, vv in pos.items() if kk != k}
    _, marks = _split_marks(row, col)
    if marks:
        pos = dict(pos)
        for m in marks:  # (a name both marked and in `positions` was refused: marks is then empty)
            pos.setdefault(m.name, []).append(m)
    return pos


# ---- named spans in `text` (docs/DATASETS.md, "Named spans") --------------------------------------

_MARK = re.compile(r"\[\[([A-Za-z_][A-Za-z0-9_]*):")


@dataclass(frozen=True)
class _Mark:
    name: str
    start: int
    """Character offsets of the span in the text with the markers taken out: [start, end)."""
    end: int
    col: int
    """1-based column of the marker's `[[` in the row's line (for diagnostics)."""


def _split_marks(row: _Row, col: _Collector) -> tuple[str | None, tuple[_Mark, ...]]:
    """(the text without markers, the markers), parsed once per row. `[[NAME:text]]` names the span `text`;
    a malformed marker is E430 (reported once) and the row's text is then None."""
    key = id(row)
    if key in col.marks:
        return col.marks[key]
    text = row.obj.get("text")
    result: tuple[str | None, tuple[_Mark, ...]] = (text if isinstance(text, str) else None, ())
    if isinstance(text, str) and "[[" in text:
        plain: list[str] = []
        marks: list[_Mark] = []
        i, n_plain, raw_from = 0, 0, 0
        bad = None
        while True:
            m = _MARK.search(text, i)
            if m is None:
                rest = text[i:]
                if "[[" in rest:
                    bad = ("a `[[` does not start a marker `[[NAME:text]]`", rest.index("[[") + i)
                plain.append(rest)
                break
            close = text.find("]]", m.end())
            if close < 0:
                bad = (f"marker `[[{m.group(1)}:` is never closed with `]]`", m.start())
                break
            inner = text[m.end() : close]
            if "[[" in inner:
                bad = (f"marker `[[{m.group(1)}:` contains another `[[` (markers do not nest)", m.start())
                break
            if not inner:
                bad = (f"marker `[[{m.group(1)}:]]` names an empty span", m.start())
                break
            plain.append(text[i : m.start()])
            n_plain += m.start() - i
            rc = row.raw.find(f"[[{m.group(1)}:", raw_from)
            raw_from = rc + 1 if rc >= 0 else raw_from
            marks.append(_Mark(m.group(1), n_plain, n_plain + len(inner), rc + 1 if rc >= 0 else 1))
            plain.append(inner)
            n_plain += len(inner)
            i = close + 2
        pos = row.obj.get("positions")
        both = sorted({mk.name for mk in marks} & set(pos)) if isinstance(pos, dict) else []
        if bad is not None:
            rc = row.raw.find("[[")
            col.bad_marks.add(key)
            col.error(
                "E430",
                f"`text`: {bad[0]}",
                'write a named span as [[NAME:text]], e.g. "Days: Monday,[[END: Tuesday,]]"',
                span=Span(col.file, row.line, rc + 1 if rc >= 0 else 1, row.line, (rc + 3) if rc >= 0 else 2),
            )
            result = (None, ())
        elif both:
            col.bad_marks.add(key)
            col.error("E430", f"position `{both[0]}` is both marked in `text` and given in `positions`",
                      "name each position one way", row, "positions")  # fmt: skip
            result = (None, ())
        else:
            result = ("".join(plain), tuple(marks))
    col.marks[key] = result
    return result


def _resolve_marks(row: _Row, toks: list[int], tokenizer: Any, col: _Collector) -> dict[str, list[int]] | None:
    """Each marker's token: the LAST token of its span. A span must start where a token starts (or at the
    first non-space character of a token that begins with spaces: `[[END:Wednesday,]]` names ' Wednesday',
    ',') and end where a token ends; E430 at the marker otherwise."""
    plain, marks = _split_marks(row, col)
    ends: list[int] = []
    for i in range(len(toks)):
        ends.append(len(tokenizer.decode(toks[: i + 1])))
    if plain is None or tokenizer.decode(toks) != plain:  # (None: markers refused, E430 already)
        col.error("E430", "the tokenizer does not give this `text` back when it decodes its tokens, so its named spans cannot be placed",
                  "give `tokens` and `positions` (token indices) for this row instead", row, "text")  # fmt: skip
        return None
    starts = [0] + ends[:-1]
    out: dict[str, list[int]] = {}
    ok = True
    for mk in marks:
        first = next((i for i, e in enumerate(ends) if e > mk.start), None)
        last = next((i for i, e in enumerate(ends) if e == mk.end), None)
        good_start = first is not None and (starts[first] == mk.start or plain[starts[first] : mk.start].isspace())
        if not good_start or last is None or last < (first or 0):
            lo = max(0, (first if first is not None else 0) - 2)
            hi = min(
                len(toks),
                (last if last is not None else next((i for i, e in enumerate(ends) if e >= mk.end), len(toks) - 1)) + 3,
            )
            pieces = " ".join(repr(tokenizer.decode([t])) for t in toks[lo:hi])
            col.error("E430", f"span `{mk.name}` ({plain[mk.start:mk.end]!r}) does not fall on token boundaries: "
                      f"around it the text is the tokens {pieces}",
                      "move the marker's edges to where tokens start and end (`circuitdsl tokens FILE --model M` shows them)",
                      span=Span(col.file, row.line, mk.col, row.line, mk.col + len(mk.name) + 3))  # fmt: skip
            ok = False
            continue
        out.setdefault(mk.name, []).append(last)
    return out if ok else None


def _schema(rows: list[_Row], col: _Collector) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not rows:
        return (), ()
    first = rows[0]
    f0 = set(_row_fields(first, col))
    p0 = set(_row_positions(first, col))
    for row in rows[1:]:
        _split_marks(row, col)
        if id(row) in col.bad_marks:
            continue
        for what, mine, ref in (
            ("fields", set(_row_fields(row, col)), f0),
            ("positions", set(_row_positions(row, col)), p0),
        ):
            if mine != ref:
                diff = []
                if ref - mine:
                    diff.append("missing " + ", ".join(f"`{k}`" for k in sorted(ref - mine)))
                if mine - ref:
                    diff.append("extra " + ", ".join(f"`{k}`" for k in sorted(mine - ref)))
                col.error(
                    "E425",
                    f"this row's {what} differ from line {first.line}'s: {'; '.join(diff)}",
                    f"every row must have the same {what} (a feature must be defined on every example)",
                    row,
                    "positions" if what == "positions" else None,
                )
    return tuple(sorted(f0)), tuple(sorted(p0))


def read_schema(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(field names, position names) common to every row. Needs no tokenizer and no torch."""
    path = Path(path)
    col = _Collector(path)
    rows = _read_rows(path, col)
    schema = _schema(rows, col)
    col.raise_if_any()
    return schema


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _token(value: Any, tokenizer: Any, row: _Row, key: str, col: _Collector, vocab_size: int | None) -> int | None:
    """One answer token from an id or a string that encodes to exactly one token."""
    if _is_int(value):
        if value < 0 or (vocab_size is not None and value >= vocab_size):
            bound = f"0..{vocab_size - 1}" if vocab_size is not None else ">= 0"
            col.error("E423", f"`{key}` token id {value} is out of range", f"token ids are {bound}", row, key)
            return None
        return value
    if isinstance(value, str):
        if tokenizer is None:
            col.error(
                "E424",
                f"`{key}` is a string but this model has no tokenizer",
                "give the token id (an integer)",
                row,
                key,
            )
            return None
        ids = list(tokenizer.encode(value))
        if len(ids) != 1:
            pieces = ", ".join(repr(tokenizer.decode([i])) for i in ids) if ids else "nothing"
            col.error(
                "E424",
                f"`{key}` {value!r} is {len(ids)} tokens ({pieces}), not one",
                "an answer must be a single token: pick another word, mind the leading space, or give the id",
                row,
                key,
            )
            return None
        return int(ids[0])
    col.error(
        "E421",
        f"`{key}` must be a token string or id (or a list of them), got {type(value).__name__}",
        'write e.g. "answer": " Mary"',
        row,
        key,
    )
    return None


def _tokens(row: _Row, tokenizer: Any, col: _Collector, vocab_size: int | None) -> list[int] | None:
    has_text, has_tokens = "text" in row.obj, "tokens" in row.obj
    if has_text and has_tokens:
        col.error("E421", "a row has both `text` and `tokens`", "give one of them", row, "tokens")
        return None
    if has_tokens:
        toks = row.obj["tokens"]
        if not isinstance(toks, list) or not toks or not all(_is_int(t) for t in toks):
            col.error(
                "E421",
                "`tokens` must be a non-empty list of token ids",
                'write e.g. "tokens": [4, 17, 4]',
                row,
                "tokens",
            )
            return None
        bad = [t for t in toks if t < 0 or (vocab_size is not None and t >= vocab_size)]
        if bad:
            bound = f"0..{vocab_size - 1}" if vocab_size is not None else ">= 0"
            col.error("E423", f"token id {bad[0]} is out of range", f"token ids are {bound}", row, "tokens")
            return None
        return list(toks)
    if has_text:
        text = row.obj["text"]
        if isinstance(text, str) and text:
            text, marks = _split_marks(row, col)
            if text is None:
                return None  # a malformed marker (E430, reported)
        if not isinstance(text, str) or not text:
            col.error("E421", "`text` must be a non-empty string", 'write e.g. "text": "The cat sat"', row, "text")
            return None
        if tokenizer is None:
            col.error(
                "E422",
                "this model has no tokenizer, so rows need `tokens`, not `text`",
                'give token ids: "tokens": [...]',
                row,
                "text",
            )
            return None
        toks = [int(t) for t in tokenizer.encode(text)]
        if not toks:
            col.error("E421", "`text` encodes to no tokens", "give some text", row, "text")
            return None
        return toks
    col.error("E422", "the row has neither `text` nor `tokens`", 'add "text": "..." (or "tokens": [ids])', row)
    return None


def _index(v: Any, n: int, row: _Row, key: str, what: str, col: _Collector) -> int | None:
    if not _is_int(v):
        col.error(
            "E421",
            f"{what} must be an integer index, got {v!r}",
            "indices are ints; negative ones count from the end",
            row,
            key,
        )
        return None
    i = v + n if v < 0 else v
    if not 0 <= i < n:
        col.error(
            "E423",
            f"{what} {v} is out of range for a row of {n} tokens",
            f"indices run from 0 to {n - 1} (or -{n} to -1)",
            row,
            key,
        )
        return None
    return i


def _answers(
    key: str, row: _Row, n_scored: int, tokenizer, col: _Collector, vocab_size
) -> list[int | list[int]] | None:
    """One entry per scored position: a token, or a list of tokens (an answer set, for logit_diff/prob_diff)."""
    value = row.obj[key]
    values = value if isinstance(value, list) else [value]
    if len(values) != n_scored:
        col.error(
            "E421",
            f"`{key}` has {len(values)} token(s) but the row scores {n_scored} position(s)",
            f'give one `{key}` per scored position; a set of tokens at one position is a nested list, e.g. [[" 1801", " 1802"]]',
            row,
            key,
        )
        return None
    out: list[int | list[int]] = []
    for v in values:
        if isinstance(v, list):
            if not v or any(isinstance(m, list) for m in v):
                col.error(
                    "E421",
                    f"a set of `{key}` tokens must be a non-empty list of tokens",
                    'write e.g. [[" 1801", " 1802"]]',
                    row,
                    key,
                )
                return None
            members = [_token(m, tokenizer, row, key, col, vocab_size) for m in v]
            if any(t is None for t in members):
                return None
            if len(set(members)) != len(members):
                col.error(
                    "E421", f"a set of `{key}` tokens lists a token twice", "list each token of a set once", row, key
                )
                return None
            out.append(members)  # type: ignore[arg-type]
        else:
            t = _token(v, tokenizer, row, key, col, vocab_size)
            if t is None:
                return None
            out.append(t)
    return out


def _targets(row: _Row, n_scored: int, col: _Collector) -> list[float] | None:
    """`target`: a finite number, or one per scored position (metric mse)."""
    value = row.obj["target"]
    values = value if isinstance(value, list) else [value]
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if not ok or len(values) != n_scored:
        col.error(
            "E421",
            f"`target` must be a finite number, or one per scored position ({n_scored})",
            'write e.g. "target": 3.5',
            row,
            "target",
        )
        return None
    return [float(v) for v in values]


def load(path: Path, tokenizer: Any, name: str, *, vocab_size: int | None = None, n_ctx: int | None = None) -> Dataset:
    """Read, tokenize and validate a JSONL dataset. Raises CircuitError listing every bad row.

    `tokenizer` is None for models whose inputs are token ids (rows then need `tokens` and integer
    answers); `vocab_size`, if given, bounds input token ids (answers are ids of the model's OUTPUT
    vocabulary, which may differ: the engine checks them against it); `n_ctx`, if given, is the
    longest row the model takes (E415 at the row). Each example's `origin` is its row (file, line),
    so that a later problem with it is reported there.
    """
    path = Path(path)
    col = _Collector(path)
    rows = _read_rows(path, col)
    field_names, position_names = _schema(rows, col)
    examples: list[Example] = []
    ids: dict[str, int] = {}
    for row in rows:
        toks = _tokens(row, tokenizer, col, vocab_size)
        if toks is None:
            continue
        n = len(toks)
        if n_ctx is not None and n > n_ctx:
            key = "tokens" if "tokens" in row.obj else "text"
            col.error("E415", f"the row is {n} tokens long; the model takes at most {n_ctx}",
                      "shorten the row, or use a model with a longer context", row, key)  # fmt: skip
            continue
        scored_raw = row.obj.get("scored", [-1])
        if _is_int(scored_raw):
            scored_raw = [scored_raw]
        if not isinstance(scored_raw, list) or not scored_raw:
            col.error(
                "E421", "`scored` must be a non-empty list of positions", 'write e.g. "scored": [-1]', row, "scored"
            )
            continue
        scored = [_index(s, n, row, "scored", "scored position", col) for s in scored_raw]
        if any(s is None for s in scored):
            continue
        if len(set(scored)) != len(scored):
            col.error("E421", "`scored` lists a position twice", "list each scored position once", row, "scored")
            continue
        if "answer" not in row.obj and "target" not in row.obj:
            col.error(
                "E422",
                "the row has no `answer`",
                'add "answer": a token string or id (one per scored position), or "target": a number (metric mse)',
                row,
            )
            continue
        answers = _answers("answer", row, len(scored), tokenizer, col, None) if "answer" in row.obj else []
        wrongs: list | None = []
        if "wrong" in row.obj:
            wrongs = _answers("wrong", row, len(scored), tokenizer, col, None)
        targets = _targets(row, len(scored), col) if "target" in row.obj else []
        positions: dict[str, tuple[int, ...]] = {}
        ok = answers is not None and wrongs is not None and targets is not None
        marked: dict[str, list[int]] = {}
        if _split_marks(row, col)[1]:
            got = _resolve_marks(row, toks, tokenizer, col)
            if got is None:
                continue
            marked = got
        for pname, pv in _row_positions(row, col).items():
            if pname in marked:
                positions[pname] = tuple(sorted(set(marked[pname])))
                continue
            vals = pv if isinstance(pv, list) else [pv]
            if not vals:
                col.error(
                    "E421", f"position `{pname}` lists no index", "give an index or a non-empty list", row, "positions"
                )
                ok = False
                continue
            idx = [_index(v, n, row, "positions", f"position `{pname}`", col) for v in vals]
            if any(i is None for i in idx):
                ok = False
                continue
            positions[pname] = tuple(idx)  # type: ignore[arg-type]
        rid = row.obj.get("id", "")
        if "id" in row.obj:
            if not (isinstance(rid, str) and rid) and not _is_int(rid):
                col.error(
                    "E421", "`id` must be a non-empty string or an integer", 'write e.g. "id": "ex-17"', row, "id"
                )
                ok = False
            elif str(rid) in ids:
                col.error(
                    "E426", f"id {str(rid)!r} was already used on line {ids[str(rid)]}", "ids must be unique", row, "id"
                )
                ok = False
            else:
                ids[str(rid)] = row.line
        if not ok:
            continue
        fields = {k: v for k, v in _row_fields(row, col).items() if k in field_names}
        bad_field = next((k for k, v in fields.items() if not _jsonable_value(v)), None)
        if bad_field is not None:
            col.error("E421", f"field `{bad_field}` must be a number, string, bool, null or a list of them",
                      f"objects are not feature values; lists nest at most {MAX_VALUE_DEPTH} deep", row, bad_field)  # fmt: skip
            continue
        text = _split_marks(row, col)[0] if isinstance(row.obj.get("text"), str) else None
        ex = Example.make(toks, answers, scored=scored, wrongs=wrongs, positions=positions, fields=fields, text=text,
                          id=str(rid) if "id" in row.obj else "", targets=targets)  # fmt: skip
        examples.append(dataclasses.replace(ex, origin=Span(col.file, row.line, 1, row.line, len(row.raw) + 1)))
    col.raise_if_any()
    # Rows with identical content and no `id` would share a content id: number the repeats.
    seen: dict[str, int] = {}
    for i, (row, ex) in enumerate(zip(rows, examples, strict=True)):
        if "id" not in row.obj and ex.id in seen:
            seen[ex.id] += 1
            examples[i] = dataclasses.replace(ex, id=f"{ex.id}-{seen[ex.id]}")
        else:
            seen.setdefault(ex.id, 0)
    return Dataset(
        name=name,
        examples=tuple(examples),
        field_names=field_names,
        position_names=position_names,
        description=f"JSONL file {path}",
    )


MAX_VALUE_DEPTH = 32
"""Lists in a feature value nest at most this deep (deeper: E421; no recursion without bound)."""


def _jsonable_value(v: Any) -> bool:
    """A number, string, bool, null, or a list of them nested at most MAX_VALUE_DEPTH deep (iterative)."""
    stack = [(v, 0)]
    while stack:
        x, depth = stack.pop()
        if x is None or isinstance(x, bool | int | float | str):
            continue
        if isinstance(x, list | tuple) and depth < MAX_VALUE_DEPTH:
            stack.extend((y, depth + 1) for y in x)
            continue
        return False
    return True
