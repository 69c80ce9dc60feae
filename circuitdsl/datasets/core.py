"""Examples, datasets and layouts (SEMANTICS.md section 1, Positions). No torch here.

An Example is already tokenized: `tokens` are model token ids (no BOS unless the dataset
put one there). Its *layout* is (token length, the indices of its named positions); activations
are only ever exchanged between examples of one layout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from circuitdsl.ir import Span

__all__ = ["Example", "Dataset", "Layout", "feature_value_key"]

Layout = tuple[int, tuple[tuple[str, tuple[int, ...]], ...]]


def _freeze(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def feature_value_key(v: Any) -> Any:
    """Feature values are compared exactly; floats after rounding to 1e-9 (SEMANTICS.md section 3). A value
    compares by what it holds, not by its Python type or spelling: numpy (or torch) scalars as the numbers
    they hold, arrays and lists as tuples, mappings and sets by content whatever their order."""
    if v is None or isinstance(v, bool | int | str | bytes):
        return v
    if isinstance(v, float):
        return round(v, 9)
    if isinstance(v, tuple | list):
        return tuple(feature_value_key(x) for x in v)
    if isinstance(v, Mapping):
        return ("dict", tuple(sorted(((feature_value_key(k), feature_value_key(x)) for k, x in v.items()), key=repr)))
    if isinstance(v, set | frozenset):
        return ("set", tuple(sorted((feature_value_key(x) for x in v), key=repr)))
    if getattr(v, "shape", None) == () and hasattr(v, "item"):  # a numpy / torch scalar
        return feature_value_key(v.item())
    if hasattr(v, "tolist"):  # an array
        return feature_value_key(v.tolist())
    return v


@dataclass(frozen=True)
class Example:
    tokens: tuple[int, ...]
    answers: tuple[int, ...]
    """The answer token at each scored position."""
    scored: tuple[int, ...] = ()
    """Scored positions; empty means the last position."""
    wrongs: tuple[int, ...] = ()
    """The wrong-answer token at each scored position (for logit_diff); may be empty."""
    positions: tuple[tuple[str, tuple[int, ...]], ...] = ()
    """Named token positions, sorted by name. A name may stand for several indices (e.g. the
    second half of a repeated sequence); `token at NAME` is then the tuple of those tokens."""
    fields: tuple[tuple[str, Any], ...] = ()
    """Feature fields, sorted by name; values are JSON scalars or (nested) tuples."""
    text: str | None = None
    id: str = ""
    """Stable id: the dataset's `id` field, or else a hash of the content (set by `with_id`)."""
    answer_sets: tuple[tuple[int, ...], ...] = ()
    """Where the answer at some scored position is a set of tokens (logit_diff / prob_diff): one tuple per
    scored position (a single answer is a set of one); `answers` then holds each set's first token.
    Empty: the answer at position i is the one token answers[i]."""
    wrong_sets: tuple[tuple[int, ...], ...] = ()
    """The same for `wrongs`."""
    targets: tuple[float, ...] = ()
    """A numeric target value at each scored position (metric mse); may be empty."""
    origin: Span | None = field(default=None, compare=False, repr=False)
    """Where the example was read from (a JSONL file's row), for diagnostics about it; None for
    generated examples. Not part of the example's identity."""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.content_id())

    def content_id(self) -> str:
        content = [self.tokens, self.answers, self.scored, self.wrongs, self.positions, _jsonable(self.fields)]
        if self.answer_sets or self.wrong_sets or self.targets:  # (absent: the ids examples always had)
            content += [self.answer_sets, self.wrong_sets, self.targets]
        payload = json.dumps(content, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:16]

    @property
    def scored_positions(self) -> tuple[int, ...]:
        return self.scored or (len(self.tokens) - 1,)

    def answer_set(self, i: int) -> tuple[int, ...]:
        """The answer tokens at the i-th scored position (one token unless the dataset gave a set)."""
        return self.answer_sets[i] if self.answer_sets else (self.answers[i],)

    def wrong_set(self, i: int) -> tuple[int, ...]:
        """The wrong-answer tokens at the i-th scored position."""
        return self.wrong_sets[i] if self.wrong_sets else (self.wrongs[i],)

    @property
    def layout(self) -> Layout:
        return (len(self.tokens), self.positions)

    def position(self, name: str) -> tuple[int, ...]:
        for k, v in self.positions:
            if k == name:
                return v
        raise KeyError(name)

    def token_at(self, name: str) -> int | tuple[int, ...]:
        idx = self.position(name)
        return self.tokens[idx[0]] if len(idx) == 1 else tuple(self.tokens[i] for i in idx)

    def field(self, name: str) -> Any:
        for k, v in self.fields:
            if k == name:
                return v
        raise KeyError(name)

    @staticmethod
    def make(
        tokens,
        answers,
        *,
        scored=(),
        wrongs=(),
        positions: Mapping[str, int | Sequence[int]] | None = None,
        fields: dict[str, Any] | None = None,
        text: str | None = None,
        id: str = "",
        targets=(),
    ) -> Example:
        """Build an Example from plain Python values (lists, dicts). An answer (or wrong answer) at a scored
        position may be a list of tokens, a set (metrics logit_diff, prob_diff)."""
        answers, answer_sets = _answer_sets(answers)
        wrongs, wrong_sets = _answer_sets(wrongs)
        targets = (targets,) if isinstance(targets, int | float) else tuple(float(t) for t in targets)
        return Example(
            tokens=tuple(int(t) for t in tokens),
            answers=answers,
            answer_sets=answer_sets,
            wrong_sets=wrong_sets,
            targets=tuple(float(t) for t in targets),
            scored=tuple(int(s) for s in scored),
            wrongs=wrongs,
            positions=tuple(
                sorted(
                    (k, (int(v),) if isinstance(v, int) else tuple(int(i) for i in v))
                    for k, v in (positions or {}).items()
                )
            ),
            fields=tuple(sorted((k, _freeze(v)) for k, v in (fields or {}).items())),
            text=text,
            id=str(id),
        )


def _answer_sets(v) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """(first token per position, sets per position or () when every position has one token)."""
    if isinstance(v, int):
        return (v,), ()
    entries = [tuple(int(t) for t in x) if isinstance(x, list | tuple) else (int(x),) for x in v]
    if any(not x for x in entries):
        raise ValueError("an answer set is empty")
    firsts = tuple(x[0] for x in entries)
    return firsts, (tuple(entries) if any(len(x) != 1 for x in entries) else ())


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


@dataclass(frozen=True)
class Dataset:
    """A named, ordered collection of examples. Pools for random draws are ordered by id."""

    name: str
    examples: tuple[Example, ...]
    field_names: tuple[str, ...] = ()
    position_names: tuple[str, ...] = ()
    description: str = ""
    _by_id: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({e.id: i for i, e in enumerate(self.examples)})

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    def index_of(self, example_id: str) -> int:
        return self._by_id[example_id]

    def layouts(self) -> dict[Layout, tuple[int, ...]]:
        """Example indices per layout, each pool ordered by example id."""
        pools: dict[Layout, list[int]] = {}
        for i, e in enumerate(self.examples):
            pools.setdefault(e.layout, []).append(i)
        return {k: tuple(sorted(v, key=lambda i: self.examples[i].id)) for k, v in pools.items()}
